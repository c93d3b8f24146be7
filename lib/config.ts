/**
 * The network configuration on stdin: decoded, validated (lib/json_checks.ts), and normalised.
 * Unknown fields are kept: the IPAM plugin receives the original stdin untouched.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { interfaceNameProblem } from "./env.ts";
import {
  boolean,
  integer,
  Issue,
  nonEmptyString,
  oneOf,
  optional,
  passthrough,
  type Path,
  record,
  string,
  stringArray,
} from "./json_checks.ts";
import {
  type CniVersion,
  DEFAULT_VERSION,
  isSupportedVersion,
  LATEST_VERSION,
  SUPPORTED_VERSIONS,
} from "./version.ts";

/** Log levels of the optional log file, least to most verbose. */
export const LOG_LEVELS = ["error", "info", "debug"] as const;

/** Seconds the plugin waits for the IPAM plugin when the config does not say. */
export const DEFAULT_IPAM_TIMEOUT_SECONDS = 30;

/** The validated configuration the verbs work from. */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  master: string;
  /** Null when `ipam` is `{}`: layer 2 only, no addresses. */
  ipamType: string | null;
  mtu?: number;
  /** Partition key without the membership bit (0x0001-0x7fff). */
  pkey?: number;
  dns?: Dns;
  prevResult?: Record<string, unknown>;
  runtimeConfig: Record<string, unknown>;
  logFile?: string;
  logLevel: typeof LOG_LEVELS[number];
  ipamTimeoutSeconds: number;
  /** The decoded object as the runtime sent it, unknown fields included. */
  raw: Record<string, unknown>;
}

/** DNS settings as CNI results carry them. */
export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

function ifname(value: unknown, path: Path): string {
  const name = string(value, path);
  const problem = interfaceNameProblem(name);
  if (problem) throw new Issue(path, `is not a valid interface name: it ${problem}`);
  return name;
}

// A plugin name is looked up in CNI_PATH: a path or anything a shell would treat specially must never reach exec.
function pluginName(value: unknown, path: Path): string {
  const name = string(value, path);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new Issue(path, "must be a bare plugin name, not a path");
  }
  return name;
}

/** A partition key given as a number or a string ("0x8002", "32770") without the membership bit, or null. */
export function partitionKey(value: number | string): number | null {
  const n = typeof value === "number"
    ? value
    : /^0x[0-9a-f]{1,4}$/i.test(value)
    ? Number.parseInt(value, 16)
    : /^[0-9]{1,5}$/.test(value)
    ? Number(value)
    : NaN;
  const key = n & 0x7fff;
  return !Number.isInteger(n) || n < 0 || n > 0xffff || key === 0 ? null : key;
}

/** The message for a pkey that {@link partitionKey} refuses. */
export const PKEY_PROBLEM =
  "must be a partition key 0x0001-0x7fff (the membership bit 0x8000 may be set); 0 and 0x8000 are invalid";

function pkey(value: unknown, path: Path): number {
  if (typeof value !== "number" && typeof value !== "string") throw new Issue(path, "Invalid input");
  const key = partitionKey(value);
  if (key === null) throw new Issue(path, PKEY_PROBLEM);
  return key;
}

function logFile(value: unknown, path: Path): string {
  const file = string(value, path);
  if (!file.startsWith("/")) throw new Issue(path, "must be an absolute path");
  return file;
}

const optionalStrings = (v: unknown, p: Path) => optional(v, p, stringArray);
const anything = (v: unknown) => v;

/** The fields the verbs use, checked in this order: the first problem is the one reported. */
function checkFields(input: Record<string, unknown>): CheckedFields {
  const at = (key: string): [unknown, Path] => [input[key], [key]];
  return {
    cniVersion: string(...at("cniVersion")),
    name: nonEmptyString(...at("name")),
    type: nonEmptyString(...at("type")),
    master: ifname(...at("master")),
    ipam: passthrough(...at("ipam"), { type: (v, p) => optional(v, p, pluginName) }),
    mtu: optional(...at("mtu"), (v, p) => integer(v, p, 68, 65535)),
    pkey: optional(...at("pkey"), pkey),
    dns: optional(...at("dns"), (v, p) =>
      passthrough(v, p, {
        nameservers: optionalStrings,
        domain: (v, p) => optional(v, p, string),
        search: optionalStrings,
        options: optionalStrings,
      })),
    args: optional(...at("args"), (v, p) => record(v, p, anything)),
    runtimeConfig: optional(...at("runtimeConfig"), (v, p) => record(v, p, anything)),
    prevResult: optional(...at("prevResult"), (v, p) => record(v, p, anything)),
    capabilities: optional(...at("capabilities"), (v, p) => record(v, p, boolean)),
    logFile: optional(...at("logFile"), logFile),
    logLevel: optional(...at("logLevel"), (v, p) => oneOf(v, p, LOG_LEVELS)),
    ipamTimeout: optional(...at("ipamTimeout"), (v, p) => integer(v, p, 1, 600)),
  };
}

/** Decodes stdin as JSON; undecodable content is error code 6. */
export function decodeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      "network configuration is not valid JSON",
      e instanceof Error ? e.message : String(e),
    );
  }
}

/** The cniVersion a failure should be reported in: the config's when it names a supported one, else the latest. */
export function requestedVersion(decoded: unknown): string {
  if (decoded && typeof decoded === "object" && !Array.isArray(decoded)) {
    const v = (decoded as Record<string, unknown>).cniVersion;
    if (isSupportedVersion(v)) return v;
  }
  return LATEST_VERSION;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function valueAt(obj: unknown, path: (string | number)[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string | number, unknown>)[key];
  }
  return cur;
}

/** The checked and copied fields of a config (unknown ones kept in `ipam` and `dns`). */
export interface CheckedFields {
  cniVersion: string;
  name: string;
  type: string;
  master: string;
  ipam: Record<string, unknown>;
  mtu?: number;
  pkey?: number;
  dns?: Dns;
  args?: Record<string, unknown>;
  runtimeConfig?: Record<string, unknown>;
  prevResult?: Record<string, unknown>;
  capabilities?: Record<string, boolean>;
  logFile?: string;
  logLevel?: typeof LOG_LEVELS[number];
  ipamTimeout?: number;
}

/**
 * Validates a decoded network configuration. Errors name the field and its bad value: code 1 for an
 * unsupported cniVersion, 2 for an unsupported value, 7 for anything else invalid. `check` (throwing an
 * Issue at the first problem) is replaceable only so that a test can compare it with a reference.
 */
export function parseNetConf(
  decoded: unknown,
  check: (input: Record<string, unknown>) => CheckedFields = checkFields,
): NetConf {
  if (decoded === null || typeof decoded !== "object" || Array.isArray(decoded)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "network configuration must be a JSON object",
      `got ${describe(decoded)}`,
    );
  }
  const raw = decoded as Record<string, unknown>;
  if (raw.cniVersion !== undefined && !isSupportedVersion(raw.cniVersion)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cniVersion ${describe(raw.cniVersion)} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  let c: CheckedFields;
  try {
    c = check({ ...raw, cniVersion: raw.cniVersion ?? DEFAULT_VERSION });
  } catch (issue) {
    if (!(issue instanceof Issue)) throw issue;
    const field = issue.path.join(".") || "(root)";
    const value = valueAt(raw, issue.path);
    const problem = value === undefined ? "is missing" : `${describe(value)} ${issue.message.toLowerCase()}`;
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `invalid network configuration: field "${field}" ${problem}`,
      issue.message,
    );
  }
  const ipamType = (c.ipam.type as string | undefined) ?? null;
  if (ipamType === null && Object.keys(c.ipam).length > 0) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      'invalid network configuration: field "ipam.type" is missing',
      'use "ipam": {} for an interface without addresses',
    );
  }
  if (ipamType === "dhcp") {
    throw new CniError(
      ErrorCode.UnsupportedField,
      'field "ipam.type" "dhcp" is not supported',
      "the CNI dhcp daemon cannot lease for IPoIB (a 20-byte hardware address needs an RFC 4390 client identifier); use host-local, static or whereabouts",
    );
  }
  return {
    cniVersion: c.cniVersion as CniVersion,
    name: c.name,
    type: c.type,
    master: c.master,
    ipamType,
    mtu: c.mtu,
    pkey: c.pkey,
    dns: c.dns,
    prevResult: c.prevResult,
    runtimeConfig: c.runtimeConfig ?? {},
    logFile: c.logFile,
    logLevel: c.logLevel ?? "error",
    ipamTimeoutSeconds: c.ipamTimeout ?? DEFAULT_IPAM_TIMEOUT_SECONDS,
    raw,
  };
}
