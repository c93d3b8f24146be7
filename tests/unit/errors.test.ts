import { assertEquals } from "@std/assert";
import { causeChain, CniError, errorObject, toCniError } from "../../lib/errors.ts";

Deno.test("errorObject has cniVersion, code, msg and details", () => {
  assertEquals(errorObject(new CniError(7, "bad", "why"), "1.0.0"), {
    cniVersion: "1.0.0",
    code: 7,
    msg: "bad",
    details: "why",
  });
});

Deno.test("toCniError turns unexpected exceptions into code 999 with their message", () => {
  const e = toCniError(new TypeError("x is undefined"));
  assertEquals([e.code, e.message, e.details], [999, "x is undefined", "TypeError"]);
  assertEquals(toCniError("plain").code, 999);
  const kept = new CniError(4, "env");
  assertEquals(toCniError(kept), kept);
});

Deno.test("causeChain lists each cause", () => {
  const inner = new Error("EEXIST");
  const outer = new CniError(100, "create failed", "kernel", { cause: inner });
  assertEquals(causeChain(outer), "[100] create failed (kernel) <- Error: EEXIST");
});
