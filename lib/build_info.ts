/**
 * Version information printed by `--version`. `make build` stamps a copy of this file with the release
 * version, the git commit and the build date before compiling; a source checkout reports these defaults.
 * @module
 */

/** What `ipoib --version` reports. */
export const BUILD_INFO = {
  version: "0.1.0-dev",
  commit: "unknown",
  date: "unknown",
} as const;
