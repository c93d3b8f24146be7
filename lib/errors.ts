/**
 * The CNI error type and the codes of the CNI specification (1.1.0, "Error" section).
 * @module
 */

/** Error codes reserved by the CNI specification, plus the ones this plugin uses. */
export const ErrorCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in network configuration. */
  UnsupportedField: 2,
  /** Container unknown or does not exist. */
  UnknownContainer: 3,
  /** Invalid necessary environment variables. */
  InvalidEnvironment: 4,
  /** I/O failure. */
  IoFailure: 5,
  /** Failed to decode content. */
  DecodingFailure: 6,
  /** Invalid network config. */
  InvalidNetworkConfig: 7,
  /** CNI_NETNS is not a network namespace. */
  InvalidNetns: 8,
  /** Try again later. */
  TryAgainLater: 11,
  /** The plugin is not available (STATUS). */
  PluginNotAvailable: 50,
  /** The plugin is available but with limited connectivity (STATUS). */
  LimitedConnectivity: 51,
  /** A kernel (netlink) operation failed. */
  KernelFailure: 100,
  /** The IPAM plugin failed or returned something unusable. */
  IpamFailure: 101,
  /** CHECK found the attachment differs from what ADD made. */
  CheckFailed: 102,
  /** A system library could not be loaded. */
  LibraryMissing: 103,
  /** An unexpected internal error. */
  Internal: 999,
} as const;

/** An error that the plugin reports to the runtime as a CNI error object. */
export class CniError extends Error {
  /** The CNI error code. */
  readonly code: number;
  /** Extra detail for operators: the underlying cause, the kernel's text, a path. */
  readonly details: string;

  constructor(code: number, msg: string, details = "", options?: ErrorOptions) {
    super(msg, options);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }
}

/** The JSON shape the runtime reads on stdout when a plugin fails. */
export interface CniErrorObject {
  cniVersion: string;
  code: number;
  msg: string;
  details: string;
}

/** Turns anything thrown into a CNI error; an unexpected exception becomes code 999 with its message. */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof Error) return new CniError(ErrorCode.Internal, e.message || e.name, e.name, { cause: e });
  return new CniError(ErrorCode.Internal, String(e));
}

/** The error object for stdout. */
export function errorObject(e: CniError, cniVersion: string): CniErrorObject {
  return { cniVersion, code: e.code, msg: e.message, details: e.details };
}

/** The message of an error and of each error in its cause chain, joined for a log line. */
export function causeChain(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 8; depth++) {
    if (cur instanceof CniError) {
      parts.push(`[${cur.code}] ${cur.message}${cur.details ? ` (${cur.details})` : ""}`);
    } else if (cur instanceof Error) parts.push(`${cur.name}: ${cur.message}`);
    else parts.push(String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(" <- ");
}
