/**
 * lib/ipam.ts withVersion: the config re-sent to an IPAM plugin at an older cniVersion is the original text
 * with only the top-level cniVersion value replaced.
 */
import { assertEquals, assertThrows } from "@std/assert";
import { withVersion } from "../../lib/ipam.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const swap = (text: string) => dec(withVersion(enc(text), "0.4.0"));

Deno.test("withVersion replaces only the top-level value, keeping numbers, spacing and escapes as written", () => {
  const text = `{"n":12345678901234567890,"f":1.0,"e":1E+2,"s":"a\\"}{\\\\","ipam":{"cniVersion":"1.0.0"},` +
    `\n  "cniVersion" :\t"1.0.0" , "z":[{"cniVersion":"1.0.0"},"]"]}`;
  assertEquals(swap(text), text.replace(`"cniVersion" :\t"1.0.0"`, `"cniVersion" :\t"0.4.0"`));
});

Deno.test("withVersion matches the key however it is escaped, and every duplicate of it", () => {
  assertEquals(swap(`{"cni\\u0056ersion":"1.0.0","name":"n"}`), `{"cni\\u0056ersion":"0.4.0","name":"n"}`);
  assertEquals(
    swap(`{"cniVersion":"1.0.0","cniVersion":"1.1.0"}`),
    `{"cniVersion":"0.4.0","cniVersion":"0.4.0"}`,
  );
});

Deno.test("withVersion adds cniVersion first when the config has none; keeps non-ASCII bytes", () => {
  assertEquals(swap(` {"name":"café"}`), ` {"cniVersion":"0.4.0","name":"café"}`);
  assertEquals(swap(`{ }`), `{"cniVersion":"0.4.0" }`);
  assertEquals(swap(`{"cniVersion":null,"x":true}`), `{"cniVersion":"0.4.0","x":true}`);
});

Deno.test("withVersion refuses what is not a JSON object", () => {
  assertThrows(() => swap(`[1]`), SyntaxError);
  assertThrows(() => swap(`{"a":"unterminated}`), SyntaxError);
});
