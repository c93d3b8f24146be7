/**
 * The network configuration on stdin: decoded, validated with zod, and normalised.
 * Unknown fields are kept: the IPAM plugin receives the original stdin untouched.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { interfaceNameProblem } from "./env.ts";
import { z } from "zod";
import { type CniVersion, DEFAULT_VERSION, isSupportedVersion, SUPPORTED_VERSIONS } from "./version.ts";

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

const ifname = z.string().superRefine((name, ctx) => {
  const problem = interfaceNameProblem(name);
  if (problem) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `is not a valid interface name: it ${problem}` });
  }
});

// A plugin name is looked up in CNI_PATH: a path or anything a shell would treat specially must never reach exec.
const pluginName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be a bare plugin name, not a path");

/** A partition key given as a number or a string ("0x8002", "32770") without the membership bit, or null. */
function partitionKey(value: number | string): number | null {
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
const PKEY_PROBLEM =
  "must be a partition key 0x0001-0x7fff (the membership bit 0x8000 may be set); 0 and 0x8000 are invalid";

const pkey = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const key = partitionKey(v);
  if (key === null) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: PKEY_PROBLEM });
    return z.NEVER;
  }
  return key;
});

const strings = z.array(z.string());

/** The fields the verbs use; unknown ones are kept (passthrough) for the IPAM plugin. */
const schema = z.object({
  cniVersion: z.string(),
  name: z.string().min(1),
  type: z.string().min(1),
  master: ifname,
  ipam: z.object({ type: pluginName.optional() }).passthrough(),
  mtu: z.number().int().min(68).max(65535).optional(),
  pkey: pkey.optional(),
  dns: z.object({
    nameservers: strings.optional(),
    domain: z.string().optional(),
    search: strings.optional(),
    options: strings.optional(),
  }).passthrough().optional(),
  args: z.record(z.unknown()).optional(),
  runtimeConfig: z.record(z.unknown()).optional(),
  prevResult: z.record(z.unknown()).optional(),
  capabilities: z.record(z.boolean()).optional(),
  logFile: z.string().startsWith("/", "must be an absolute path").optional(),
  logLevel: z.enum(LOG_LEVELS).optional(),
  ipamTimeout: z.number().int().min(1).max(600).optional(),
}).passthrough();

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

/**
 * Validates a decoded network configuration. Errors name the field and its bad value: code 1 for an
 * unsupported cniVersion, 2 for an unsupported value, 7 for anything else invalid.
 */
export function parseNetConf(decoded: unknown): NetConf {
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
  const parsed = schema.safeParse({ ...raw, cniVersion: raw.cniVersion ?? DEFAULT_VERSION });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".") || "(root)";
    const value = valueAt(raw, issue.path);
    const problem = value === undefined ? "is missing" : `${describe(value)} ${issue.message.toLowerCase()}`;
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `invalid network configuration: field "${field}" ${problem}`,
      issue.message,
    );
  }
  const c = parsed.data;
  const ipamType = c.ipam.type ?? null;
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
