/**
 * Pure parts of ffi/: library lookup order. Runs with no permissions: importing the FFI modules must
 * not load or touch anything.
 */

import { assertEquals } from "@std/assert";
import { libraryCandidates, PRIVATE_LIB_DIR } from "../../ffi/load.ts";
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
