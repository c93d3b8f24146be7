import { assertEquals } from "@std/assert";
import { cidrBytes, formatCidr, isIp, parseCidr, parseIp } from "../../lib/ip.ts";

/** The canonical spelling of an address, as parseIp gives it; null when `s` is not one. */
const canonicalIp = (s: string) => parseIp(s)?.ip ?? null;

/** The canonical spelling of "address/prefix" (cidrBytes then formatCidr); null when `s` is not one. */
function canonicalCidr(s: string): string | null {
  const c = cidrBytes(s);
  return c === null ? null : formatCidr(c);
}

Deno.test("canonicalIp spells equal IPv6 addresses the same (RFC 5952)", () => {
  assertEquals(canonicalIp("fd00::5"), "fd00::5");
  assertEquals(canonicalIp("FD00:0:0:0:0:0:0:5"), "fd00::5");
  assertEquals(canonicalIp("fd00:0000:0000:0000:0000:0000:0000:0005"), "fd00::5");
  assertEquals(canonicalIp("::"), "::");
  assertEquals(canonicalIp("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
  assertEquals(canonicalIp("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
});

Deno.test("canonicalIp refuses malformed addresses", () => {
  for (
    const bad of [
      "1.2.3",
      "256.1.1.1",
      "010.0.0.1",
      "fd00:::1",
      "1::2::3",
      "g::1",
      "1:2:3:4:5:6:7:8:9",
      "",
      "abc",
    ]
  ) {
    assertEquals(canonicalIp(bad), null, bad);
  }
});

Deno.test("canonicalCidr checks the prefix length per family", () => {
  assertEquals(canonicalCidr("10.0.0.1/24"), "10.0.0.1/24");
  assertEquals(canonicalCidr("10.0.0.1/33"), null);
  assertEquals(canonicalCidr("FD00::1/128"), "fd00::1/128");
  assertEquals(canonicalCidr("10.0.0.1"), null);
});

Deno.test("parseCidr and isIp tell 4 from 6 for prefixes and addresses", () => {
  assertEquals([parseCidr("10.0.0.0/8")?.family, parseCidr("::/0")?.family, isIp("10.1.1.1"), isIp("x")], [
    4,
    6,
    4,
    0,
  ]);
});
