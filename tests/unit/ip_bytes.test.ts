/**
 * lib/ip.ts as the one parser of address text into the bytes ffi/netlink.ts sends, and the one
 * formatter of the bytes it returns. No permissions.
 */

import { assertEquals } from "@std/assert";
import {
  cidrBytes,
  formatCidr,
  formatHwaddr,
  formatIpBytes,
  type IpBytes,
  ipBytes,
  maskCidr,
  parseIp,
} from "../../lib/ip.ts";

const ip = (s: string): IpBytes => ipBytes(s)!;

Deno.test("ipBytes: IPv4 and IPv6 to bytes", () => {
  assertEquals(ipBytes("10.1.0.5"), { family: 4, bytes: new Uint8Array([10, 1, 0, 5]) });
  assertEquals(ip("0.0.0.0").bytes, new Uint8Array(4));
  assertEquals(ip("::").bytes, new Uint8Array(16));
  assertEquals(ipBytes("fd00::5"), {
    family: 6,
    bytes: new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
  });
  assertEquals(ip("1:2:3:4:5:6:7:8").bytes, new Uint8Array([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]));
  assertEquals(
    ip("::ffff:10.0.0.1").bytes,
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1]),
  );
  assertEquals(ip("FE80::1").bytes[0], 0xfe);
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.-1",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7::8",
      "12345::",
      "fe80::1%eth0",
      "g::1",
      "::1.2.3",
      // An IPv4 address is only allowed as the last 32 bits: one parser refuses this everywhere.
      "1.2.3.4::1",
    ]
  ) {
    assertEquals(ipBytes(bad), null, bad);
    assertEquals(parseIp(bad), null, bad);
    assertEquals(cidrBytes(`${bad}/8`), null, bad);
  }
});

Deno.test("cidrBytes and maskCidr", () => {
  assertEquals(cidrBytes("10.1.0.5/24"), { family: 4, bytes: new Uint8Array([10, 1, 0, 5]), prefix: 24 });
  assertEquals(cidrBytes("::/0")!.prefix, 0);
  assertEquals(cidrBytes("fd00::5/128")!.prefix, 128);
  for (
    const bad of ["10.1.0.5", "10.1.0.5/33", "fd00::/129", "10.0.0.0/08", "10.0.0.0/", "/8", "10.0.0.0/8/8"]
  ) {
    assertEquals(cidrBytes(bad), null, bad);
  }
  const masked = (s: string) => maskCidr(cidrBytes(s)!);
  assertEquals(masked("10.1.2.3/16").bytes, new Uint8Array([10, 1, 0, 0]));
  assertEquals(masked("10.1.2.255/25").bytes, new Uint8Array([10, 1, 2, 128]));
  assertEquals(masked("10.1.2.3/0").bytes, new Uint8Array(4));
  assertEquals(masked("10.1.2.3/32").bytes, new Uint8Array([10, 1, 2, 3]));
  assertEquals(formatCidr(masked("fd00:1:2:3:4::1/60")), "fd00:1:2::/60");
});

Deno.test("formatIpBytes: dotted quad, RFC 5952, short buffers as zeros", () => {
  assertEquals(formatIpBytes({ family: 4, bytes: new Uint8Array([192, 0, 2, 1]) }), "192.0.2.1");
  assertEquals(formatIpBytes({ family: 4, bytes: new Uint8Array(0) }), "0.0.0.0");
  assertEquals(formatIpBytes({ family: 6, bytes: new Uint8Array(0) }), "::");
  const round = (s: string) => formatIpBytes(ip(s));
  assertEquals(round("fd00:0:0:0:0:0:0:5"), "fd00::5");
  assertEquals(round("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1"); // first of equal runs
  assertEquals(round("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1"); // a single zero group stays
  assertEquals(round("FE80::ABCD"), "fe80::abcd");
  assertEquals(round("::1"), "::1");
  assertEquals(round("1::"), "1::");
  assertEquals(round("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
  // The text form and the bytes form agree.
  assertEquals(parseIp("FE80::ABCD")?.ip, round("FE80::ABCD"));
});

Deno.test("hardware addresses: ethernet and 20-byte IPoIB", () => {
  assertEquals(formatHwaddr(new Uint8Array([2, 0xfc, 0, 0, 0, 1])), "02:fc:00:00:00:01");
  assertEquals(formatHwaddr(new Uint8Array(0)), "");
  const ib = Uint8Array.from([
    0x80,
    0,
    2,
    8,
    0xfe,
    0x80,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    2,
    0xc9,
    3,
    0,
    0x4d,
    0xe6,
    0x41,
  ]);
  assertEquals(formatHwaddr(ib), "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:4d:e6:41");
});
