import { assertEquals } from "@std/assert";
import { canonicalCidr, canonicalIp, ipFamily } from "../../lib/ip.ts";

Deno.test("canonicalIp spells equal IPv6 addresses the same", () => {
  assertEquals(canonicalIp("fd00::5"), "fd00:0000:0000:0000:0000:0000:0000:0005");
  assertEquals(canonicalIp("FD00:0:0:0:0:0:0:5"), canonicalIp("fd00::5"));
  assertEquals(canonicalIp("::"), "0000:0000:0000:0000:0000:0000:0000:0000");
  assertEquals(canonicalIp("::ffff:10.0.0.1"), "0000:0000:0000:0000:0000:ffff:0a00:0001");
});

Deno.test("canonicalIp refuses malformed addresses", () => {
  for (const bad of ["1.2.3", "256.1.1.1", "fd00:::1", "1::2::3", "g::1", "1:2:3:4:5:6:7:8:9", "", "abc"]) {
    assertEquals(canonicalIp(bad), null, bad);
  }
});

Deno.test("canonicalCidr checks the prefix length per family", () => {
  assertEquals(canonicalCidr("10.0.0.1/24"), "10.0.0.1/24");
  assertEquals(canonicalCidr("10.0.0.1/33"), null);
  assertEquals(canonicalCidr("fd00::1/128"), "fd00:0000:0000:0000:0000:0000:0000:0001/128");
  assertEquals(canonicalCidr("10.0.0.1"), null);
});

Deno.test("ipFamily tells 4 from 6", () => {
  assertEquals([ipFamily("10.0.0.0/8"), ipFamily("::/0"), ipFamily("x")], [4, 6, 0]);
});
