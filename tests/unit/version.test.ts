import { assertEquals, assertThrows } from "@std/assert";
import { CniError } from "../../lib/errors.ts";
import {
  compareVersions,
  configVersion,
  isSupportedVersion,
  requestedVersion,
  requireVersion,
  SUPPORTED_VERSIONS,
} from "../../lib/version.ts";

Deno.test("SUPPORTED_VERSIONS lists every version from 0.1.0 to 1.1.0 in order", () => {
  assertEquals([...SUPPORTED_VERSIONS], ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
  const sorted = [...SUPPORTED_VERSIONS].sort(compareVersions);
  assertEquals(sorted, [...SUPPORTED_VERSIONS]);
});

Deno.test("compareVersions compares numerically", () => {
  assertEquals(compareVersions("0.10.0", "0.9.0") > 0, true);
  assertEquals(compareVersions("1.0.0", "1.0.0"), 0);
  assertEquals(compareVersions("0.3.1", "0.4.0") < 0, true);
});

Deno.test("isSupportedVersion accepts only listed strings", () => {
  assertEquals(isSupportedVersion("0.3.1"), true);
  assertEquals(isSupportedVersion("0.3.2"), false);
  assertEquals(isSupportedVersion(1), false);
});

Deno.test("requireVersion refuses older versions with code 1", () => {
  requireVersion("0.4.0", "0.4.0", "CHECK");
  const e = assertThrows(() => requireVersion("0.3.1", "0.4.0", "CHECK"), CniError) as CniError;
  assertEquals(e.code, 1);
  assertEquals(e.message, "CHECK requires cniVersion 0.4.0 or later");
});

Deno.test('configVersion and requestedVersion read "", null and an absent cniVersion as 0.1.0 (libcni\'s .conf)', () => {
  assertEquals(configVersion({ cniVersion: "" }), "0.1.0");
  assertEquals(configVersion({ cniVersion: null }), "0.1.0");
  assertEquals(requestedVersion({ cniVersion: null }), "0.1.0");
  assertEquals(configVersion({ name: "n" }), "0.1.0");
  assertEquals(configVersion({ cniVersion: "0.4.0" }), "0.4.0");
  assertEquals(configVersion({ cniVersion: 4 }), 4);
  assertEquals(configVersion(null), undefined);
  assertEquals(configVersion([]), undefined);
  assertEquals(requestedVersion({ cniVersion: "" }), "0.1.0");
  assertEquals(requestedVersion({}), "0.1.0");
  assertEquals(requestedVersion(undefined), "1.1.0");
  assertEquals(requestedVersion({ cniVersion: "9.9.9" }), "1.1.0");
});
