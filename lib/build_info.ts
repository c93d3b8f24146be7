/**
 * Version information printed by `--version`. `make build` writes the release version, the git commit and
 * the build date into the staged copy of build_info.json before compiling (packaging/stage.ts); a source
 * checkout reports the defaults there.
 * @module
 */

import info from "./build_info.json" with { type: "json" };

/** What `ipoib --version` reports. */
export const BUILD_INFO: { readonly version: string; readonly commit: string; readonly date: string } = info;
