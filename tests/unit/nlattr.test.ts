/**
 * ffi/nlattr.ts: netlink attribute decoding from hand-built bytes. Attribute headers and values are
 * in host byte order; every Deno target (x86_64, aarch64) is little-endian, so the bytes below are.
 */

import { assertEquals } from "@std/assert";
import { attrString, attrU16, parseAttributes } from "../../ffi/nlattr.ts";
import { attrU32 } from "../standin/driver.ts";

/** Bytes from hex, one attribute per argument for readability ("0600 0100 0180 0000"). */
function hex(...parts: string[]): Uint8Array {
  const digits = parts.join("").replaceAll(" ", "");
  return Uint8Array.from(digits.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
}

Deno.test("host byte order is little-endian, as the hand-built bytes below assume", () => {
  assertEquals(new Uint8Array(Uint16Array.of(0x0102).buffer)[0], 0x02);
});

Deno.test("parseAttributes splits padded attributes and strips the nested and byte-order flags", () => {
  const attrs = parseAttributes(hex(
    "0600 0100 0180 0000", // len 6, type 1: u16 0x8001, then 2 bytes of padding
    "0800 0280 04000000", // len 8, type 2 | NLA_F_NESTED (0x8000): u32 4
    "0900 0340 6162636465 000000", // len 9, type 3 | NLA_F_NET_BYTEORDER: "abcde" without a NUL, padded
  ));
  assertEquals([...attrs.keys()], [1, 2, 3]);
  assertEquals(attrU16(attrs, 1), 0x8001);
  assertEquals(attrU32(attrs, 2), 4);
  assertEquals(attrString(attrs, 3), "abcde");
  // A value is a view of its own bytes only, without header or padding.
  assertEquals(attrs.get(1), hex("0180"));
});

Deno.test("parseAttributes reads a nest's value as attributes again (IFLA_LINKINFO → IFLA_INFO_DATA)", () => {
  const message = hex(
    "1c00 1280", // IFLA_LINKINFO (18) | NLA_F_NESTED, len 28
    "0a00 0100 69706f696200 0000", // IFLA_INFO_KIND (1): "ipoib\0", len 10, padded to 12
    "0c00 0280 0600 0200 0100 0000", // IFLA_INFO_DATA (2) | NLA_F_NESTED: IFLA_IPOIB_MODE (2) = 1
  );
  const linkinfo = parseAttributes(parseAttributes(message).get(18)!);
  assertEquals(attrString(linkinfo, 1), "ipoib");
  assertEquals(attrU16(parseAttributes(linkinfo.get(2)!), 2), 1);
});

Deno.test("parseAttributes stops at a malformed header; a repeated type keeps the last value", () => {
  const attrs = parseAttributes(hex(
    "0600 0100 0100 0000", // type 1 = 1
    "0600 0100 0200 0000", // type 1 = 2
    "0c00 0500 0700 0000", // claims 12 bytes where 8 remain
  ));
  assertEquals([...attrs.keys()], [1]);
  assertEquals(attrU16(attrs, 1), 2);
  // A length below the header's own size, and a trailing partial header, end the walk too.
  assertEquals(parseAttributes(hex("0200 0100 0600")).size, 0);
  assertEquals(parseAttributes(hex("0600 01")).size, 0);
  assertEquals(parseAttributes(new Uint8Array(0)).size, 0);
});

Deno.test("attrU16/attrU32/attrString: null when absent; the fixed sizes must match exactly", () => {
  const attrs = new Map([[1, hex("0180")], [2, hex("04000000")], [3, hex("780079")]]);
  assertEquals(attrU16(attrs, 9), null);
  assertEquals(attrU32(attrs, 9), null);
  assertEquals(attrString(attrs, 9), null);
  assertEquals(attrU32(attrs, 1), null);
  assertEquals(attrU16(attrs, 2), null);
  assertEquals(attrU32(attrs, 2), 4);
  assertEquals(attrString(attrs, 3), "x");
  // A view into a larger buffer at an odd offset decodes the same.
  assertEquals(attrU16(new Map([[1, hex("ff0280ff").subarray(1, 3)]]), 1), 0x8002);
});
