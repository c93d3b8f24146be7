/**
 * Pure parts of ffi/: library lookup order, address encoders and parsers. Runs with no
 * permissions: importing the FFI modules must not load or touch anything.
 */

import { assertEquals, assertThrows } from "@std/assert";
import { CniError, ErrorCode } from "../../lib/errors.ts";
import { libraryCandidates, PRIVATE_LIB_DIR } from "../../ffi/load.ts";
import {
  formatHwaddr,
  formatIp,
  maskCidr,
  parseCidr,
  parseHwaddr,
  parseIp,
  tryParseIp,
} from "../../ffi/inet.ts";
// Imported for their side effects only: none may dlopen or need a permission at import time.
import "../../ffi/netlink.ts";
import "../../ffi/netns.ts";

Deno.test("library lookup: ipoib.d beside the executable first, then the system soname", () => {
  assertEquals(PRIVATE_LIB_DIR, "ipoib.d");
  assertEquals(libraryCandidates("libnl-3.so.200", "/opt/cni/bin/ipoib"), [
    "/opt/cni/bin/ipoib.d/libnl-3.so.200",
    "libnl-3.so.200",
  ]);
  assertEquals(libraryCandidates("libnl-route-3.so.200", "/usr/bin/deno"), [
    "/usr/bin/ipoib.d/libnl-route-3.so.200",
    "libnl-route-3.so.200",
  ]);
  assertEquals(libraryCandidates("libnl-3.so.200", "/ipoib"), ["/ipoib.d/libnl-3.so.200", "libnl-3.so.200"]);
  assertEquals(libraryCandidates("libnl-3.so.200", "ipoib"), ["./ipoib.d/libnl-3.so.200", "libnl-3.so.200"]);
  // Unknown executable (no read permission): the system copy only.
  assertEquals(libraryCandidates("libnl-3.so.200", null), ["libnl-3.so.200"]);
});

Deno.test("parseIp: IPv4 and IPv6 to bytes", () => {
  assertEquals(parseIp("10.1.0.5"), { family: 4, bytes: new Uint8Array([10, 1, 0, 5]) });
  assertEquals(parseIp("0.0.0.0").bytes, new Uint8Array(4));
  assertEquals(parseIp("::").bytes, new Uint8Array(16));
  assertEquals(parseIp("fd00::5"), {
    family: 6,
    bytes: new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
  });
  assertEquals(
    parseIp("1:2:3:4:5:6:7:8").bytes,
    new Uint8Array([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]),
  );
  assertEquals(
    parseIp("::ffff:10.0.0.1").bytes,
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1]),
  );
  assertEquals(parseIp("FE80::1").bytes[0], 0xfe);
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
    ]
  ) {
    assertEquals(tryParseIp(bad), null, bad);
  }
  const e = assertThrows(() => parseIp("nope"), CniError);
  assertEquals(e.code, ErrorCode.InvalidNetworkConfig);
});

Deno.test("parseCidr and maskCidr", () => {
  assertEquals(parseCidr("10.1.0.5/24"), { family: 4, bytes: new Uint8Array([10, 1, 0, 5]), prefix: 24 });
  assertEquals(parseCidr("::/0").prefix, 0);
  assertEquals(parseCidr("fd00::5/128").prefix, 128);
  for (
    const bad of ["10.1.0.5", "10.1.0.5/33", "fd00::/129", "10.0.0.0/08", "10.0.0.0/", "/8", "10.0.0.0/8/8"]
  ) {
    assertThrows(() => parseCidr(bad), CniError, "invalid CIDR", bad);
  }
  assertEquals(maskCidr(parseCidr("10.1.2.3/16")).bytes, new Uint8Array([10, 1, 0, 0]));
  assertEquals(maskCidr(parseCidr("10.1.2.255/25")).bytes, new Uint8Array([10, 1, 2, 128]));
  assertEquals(maskCidr(parseCidr("10.1.2.3/0")).bytes, new Uint8Array(4));
  assertEquals(maskCidr(parseCidr("10.1.2.3/32")).bytes, new Uint8Array([10, 1, 2, 3]));
  assertEquals(formatIp(6, maskCidr(parseCidr("fd00:1:2:3:4::1/60")).bytes), "fd00:1:2::");
});

Deno.test("formatIp: dotted quad, RFC 5952, zero-length default destinations", () => {
  assertEquals(formatIp(4, new Uint8Array([192, 0, 2, 1])), "192.0.2.1");
  // libnl gives a zero-length address for a default route: it must print as all zeros.
  assertEquals(formatIp(4, new Uint8Array(0)), "0.0.0.0");
  assertEquals(formatIp(6, new Uint8Array(0)), "::");
  const round = (s: string) => formatIp(parseIp(s).family, parseIp(s).bytes);
  assertEquals(round("fd00:0:0:0:0:0:0:5"), "fd00::5");
  assertEquals(round("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1"); // first of equal runs
  assertEquals(round("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1"); // a single zero group stays
  assertEquals(round("FE80::ABCD"), "fe80::abcd");
  assertEquals(round("::1"), "::1");
  assertEquals(round("1::"), "1::");
  assertEquals(round("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
});

Deno.test("hardware addresses: ethernet and 20-byte IPoIB", () => {
  assertEquals(formatHwaddr(new Uint8Array([2, 0xfc, 0, 0, 0, 1])), "02:fc:00:00:00:01");
  assertEquals(formatHwaddr(new Uint8Array(0)), "");
  const ib = "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:4d:e6:41";
  const bytes = parseHwaddr(ib)!;
  assertEquals(bytes.length, 20);
  assertEquals(formatHwaddr(bytes), ib);
  assertEquals(formatHwaddr(parseHwaddr("AA:BB:CC:DD:EE:FF")!), "aa:bb:cc:dd:ee:ff");
  for (const bad of ["", "aa:bb:", "a:bb", "aabb", "gg:00"]) assertEquals(parseHwaddr(bad), null, bad);
});
