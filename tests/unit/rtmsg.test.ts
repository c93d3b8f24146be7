/**
 * ffi/rtmsg.ts: RTM_NEWROUTE bodies decoded from hand-built bytes (little-endian host order, as
 * tests/unit/nlattr.test.ts checks). The kernel's own messages are compared with iproute2's reading in
 * tests/integration/netlink.test.ts; these cover what a test namespace cannot easily produce.
 */

import { assertEquals } from "@std/assert";
import { decodeRoute, type RouteInfo } from "../../ffi/rtmsg.ts";
import { formatCidr, formatIpBytes } from "../../lib/ip.ts";

function hex(...parts: string[]): Uint8Array {
  const digits = parts.join("").replaceAll(" ", "");
  return Uint8Array.from(digits.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
}

function text(r: RouteInfo) {
  const { gw, ...rest } = r;
  return { ...rest, dst: formatCidr(r.dst), ...(gw ? { gw: formatIpBytes(gw) } : {}) };
}

Deno.test("decodeRoute: a single-path route with RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_PRIORITY, RTA_TABLE, metrics", () => {
  const body = hex(
    "02 10 00 00 fe 03 00 01 00000000", // rtmsg: AF_INET, /16, table 254, boot, universe, unicast
    "0800 0100 0a600000", // RTA_DST 10.96.0.0
    "0800 0500 0a630001", // RTA_GATEWAY 10.99.0.1
    "0800 0400 03000000", // RTA_OIF 3
    "0800 0600 32000000", // RTA_PRIORITY 50
    "0800 0f00 e8030000", // RTA_TABLE 1000 (rtm_table says 254: the attribute wins)
    "1400 0800 0800 0200 14050000 0800 0800 b0040000", // RTA_METRICS: RTAX_MTU 1300, RTAX_ADVMSS 1200
  );
  assertEquals(decodeRoute(body).map(text), [{
    family: 4,
    dst: "10.96.0.0/16",
    gw: "10.99.0.1",
    index: 3,
    metric: 50,
    table: 1000,
    scope: 0,
    type: 1,
    mtu: 1300,
    advmss: 1200,
  }]);
});

Deno.test("decodeRoute: RTA_MULTIPATH gives one entry per rtnexthop; RTA_VIA is a gateway of another family", () => {
  const body = hex(
    "02 00 00 00 fe 03 00 01 00000000", // AF_INET default route, main table
    "3400 0900", // RTA_MULTIPATH, 52 bytes
    "1000 00 00 03000000 0800 0500 0a630001", // rtnexthop dev 3, RTA_GATEWAY 10.99.0.1
    "2000 00 00 05000000 1600 1200 0a00 fd000000000000000000000000000001 0000", // dev 5, RTA_VIA fd00::1
  );
  assertEquals(decodeRoute(body).map(text), [
    { family: 4, dst: "0.0.0.0/0", gw: "10.99.0.1", index: 3, metric: 0, table: 254, scope: 0, type: 1 },
    { family: 4, dst: "0.0.0.0/0", gw: "fd00::1", index: 5, metric: 0, table: 254, scope: 0, type: 1 },
  ]);
});

Deno.test("decodeRoute: no RTA_DST is a zero destination; no nexthop at all is one entry without index", () => {
  // An unreachable IPv6 route: no RTA_OIF, no gateway; rtm_table alone names the table.
  assertEquals(decodeRoute(hex("0a 00 00 00 64 03 00 07 00000000")).map(text), [
    { family: 6, dst: "::/0", metric: 0, table: 100, scope: 0, type: 7 },
  ]);
});

Deno.test("decodeRoute: nothing for another family or a body shorter than struct rtmsg", () => {
  assertEquals(decodeRoute(hex("80 00 00 00 fe 03 00 01 00000000")), []); // RTNL_FAMILY_IPMR
  assertEquals(decodeRoute(hex("02 00 00 00 fe 03 00 01 0000")), []);
  // A malformed rtnexthop ends the walk; the route is still listed once.
  assertEquals(
    decodeRoute(hex("02 08 00 00 fe 03 00 01 00000000", "0c00 0900 ffff 00 00 03000000")).length,
    1,
  );
});
