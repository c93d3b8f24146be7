/**
 * CNI specification versions this plugin speaks, and how they compare.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** Every CNI version this plugin accepts in a network configuration and can print a result in. */
export const SUPPORTED_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

/** One of {@link SUPPORTED_VERSIONS}. */
export type CniVersion = typeof SUPPORTED_VERSIONS[number];

/** The version assumed when a configuration names none (as libcni does). */
export const DEFAULT_VERSION: CniVersion = "0.1.0";

/** The newest version: used for errors reported before a configuration could be read. */
export const LATEST_VERSION: CniVersion = "1.1.0";

/** True when `v` is a version this plugin supports. */
export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares two dotted versions numerically: negative, zero or positive like a sort comparator. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split(".").map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Throws error code 1 unless `version` is at least `minimum`; `what` names the verb or feature. */
export function requireVersion(version: string, minimum: string, what: string): void {
  if (compareVersions(version, minimum) < 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `${what} requires cniVersion ${minimum} or later`,
      `the network configuration has cniVersion ${version}`,
    );
  }
}

/**
 * True when a cniVersion value means "none given": absent, null or "". libcni sends "" for a .conf without
 * one, and Go's JSON decoding leaves the field empty for null; both then read it as {@link DEFAULT_VERSION}.
 */
export function isUnsetVersion(v: unknown): v is undefined | null | "" {
  return v === undefined || v === null || v === "";
}

/**
 * The cniVersion a decoded config asks for: absent, null and "" mean {@link DEFAULT_VERSION}
 * ({@link isUnsetVersion}); anything that is not a config object yields undefined.
 */
export function configVersion(decoded: unknown): unknown {
  if (decoded === null || typeof decoded !== "object" || Array.isArray(decoded)) return undefined;
  const v = (decoded as Record<string, unknown>).cniVersion;
  return isUnsetVersion(v) ? DEFAULT_VERSION : v;
}

/** The cniVersion a failure is reported in: the decoded config's when it names a supported one, else the latest. */
export function requestedVersion(decoded: unknown): CniVersion {
  const v = configVersion(decoded);
  return isSupportedVersion(v) ? v : LATEST_VERSION;
}
