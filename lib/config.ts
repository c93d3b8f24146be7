/**
 * The network configuration on stdin: decoded, validated with zod, and normalised. The zod schema is the
 * one declaration of every field: {@link NetConf} is derived from it, defaults and transforms included.
 * Fields no verb reads are not kept: the IPAM plugin receives the original stdin bytes, untouched.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { interfaceNameProblem } from "./env.ts";
import { DEFAULT_LOG_MAX_SIZE, LOG_LEVELS } from "./log.ts";
import type { ResultDns } from "./result.ts";
import { z } from "zod";
import { DEFAULT_VERSION, isSupportedVersion, isUnsetVersion, SUPPORTED_VERSIONS } from "./version.ts";

/** Seconds the plugin waits for the IPAM plugin when the config does not say. */
const DEFAULT_IPAM_TIMEOUT_SECONDS = 30;

const ifname = z.string().superRefine((name, ctx) => {
  const problem = interfaceNameProblem(name);
  if (problem) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `is not a valid interface name: it ${problem}` });
  }
});

// A plugin name is looked up in CNI_PATH: a path or anything a shell would treat specially must never reach exec.
// "" is no plugin: Go's reference plugins run IPAM only for a non-empty ipam.type.
const ipamType = z.string().regex(
  /^(?:[A-Za-z0-9][A-Za-z0-9._-]*)?$/,
  "must be a bare plugin name, not a path",
);

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

const dns: z.ZodType<ResultDns, z.ZodTypeDef, unknown> = z.object({
  nameservers: strings.optional(),
  domain: z.string().optional(),
  search: strings.optional(),
  options: strings.optional(),
});

/**
 * `value` with every object member whose value is null left out, at any depth (array elements are kept).
 * Go's encoding/json leaves a field untouched for null, so to the reference plugins `"mtu": null` is the
 * same as no `mtu`; the schema reads the config the same way, for every field at once. Iterative, not
 * recursive: stdin may nest as deep as 1 MiB of brackets allows.
 */
export function withoutNulls(value: unknown): unknown {
  const container = (v: unknown): Record<string, unknown> | null =>
    v === null || typeof v !== "object" ? null : (Array.isArray(v) ? [] : {}) as Record<string, unknown>;
  const out = container(value);
  if (out === null) return value;
  const work: [object, Record<string, unknown>][] = [[value as object, out]];
  for (let next = work.pop(); next !== undefined; next = work.pop()) {
    const [from, to] = next;
    const isArray = Array.isArray(from);
    for (const [key, member] of Object.entries(from)) {
      if (member === null && !isArray) continue;
      const copy = container(member);
      to[key] = copy ?? member;
      if (copy !== null) work.push([member as object, copy]);
    }
  }
  return out;
}

/**
 * Every field the verbs read, with its default. Unknown fields are dropped from the model only: the IPAM
 * plugin is given the runtime's bytes. A null member is read as absent ({@link withoutNulls}). libcni sends
 * `"cniVersion": ""` for a .conf without one; that, null and an absent field mean 0.1.0 (libcni's and the Go
 * skel's reading). `ipam` absent, `{}`, or with no or an empty `type` means no IPAM plugin (layer 2 only), as
 * Go's macvlan runs IPAM only for a non-empty `ipam.type`.
 */
const schema = z.preprocess(
  withoutNulls,
  z.object({
    cniVersion: z.union([z.enum(SUPPORTED_VERSIONS), z.literal("")]).optional()
      .transform((v) => v || DEFAULT_VERSION),
    name: z.string().min(1),
    type: z.string().min(1),
    master: ifname,
    ipam: z.object({ type: ipamType.optional() }).optional().transform((ipam) => ipam?.type || null),
    /** 0 means not set, as in the reference plugins: the child takes the master's MTU. */
    mtu: z.number().int().refine((n) => n === 0 || (n >= 68 && n <= 65535), "must be 0 or 68-65535")
      .optional().transform((n) => n || undefined),
    /** Partition key without the membership bit (0x0001-0x7fff). */
    pkey: pkey.optional(),
    dns: dns.optional(),
    prevResult: z.record(z.unknown()).optional(),
    logFile: z.string().startsWith("/", "must be an absolute path").optional(),
    logLevel: z.enum(LOG_LEVELS).default("error"),
    /** Bytes; at this size the log file is renamed to `<logFile>.1` (replacing it) and a new one begun. */
    logMaxSize: z.number().int().min(4096).max(1 << 30).default(DEFAULT_LOG_MAX_SIZE),
    /** Seconds one IPAM run may take before it is killed. */
    ipamTimeout: z.number().int().min(1).max(600).default(DEFAULT_IPAM_TIMEOUT_SECONDS),
  }).transform(({ ipam, ipamTimeout, ...fields }) => ({
    ...fields,
    /** `ipam.type`; null when no IPAM plugin is named: layer 2 only, no addresses. */
    ipamType: ipam,
    ipamTimeoutSeconds: ipamTimeout,
  })),
);

/** The validated configuration the verbs work from (derived from the schema). */
export type NetConf = z.output<typeof schema>;

/** Top-level fields DEL can do without: when one is unusable, DEL goes on as if it were not set. */
const OPTIONAL_FOR_DEL = new Set<string>([
  "master",
  "mtu",
  "pkey",
  "dns",
  "prevResult",
  "logFile",
  "logLevel",
  "logMaxSize",
  "ipamTimeout",
]);

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

/** The decoded config as an object, or code 7. */
function asObject(decoded: unknown): Record<string, unknown> {
  if (decoded === null || typeof decoded !== "object" || Array.isArray(decoded)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "network configuration must be a JSON object",
      `got ${describe(decoded)}`,
    );
  }
  return decoded as Record<string, unknown>;
}

/** Code 1 for a cniVersion this plugin does not speak (absent, null and "" mean 0.1.0). */
function requireSupportedVersion(raw: Record<string, unknown>): void {
  const v = raw.cniVersion;
  if (!isUnsetVersion(v) && !isSupportedVersion(v)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cniVersion ${describe(v)} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
}

/** The code 7 error for one zod issue, naming the field and its bad value. */
function invalidField(raw: Record<string, unknown>, issue: z.ZodIssue): CniError {
  const field = issue.path.join(".") || "(root)";
  const value = valueAt(raw, issue.path);
  const problem = value === undefined ? "is missing" : `${describe(value)} ${issue.message.toLowerCase()}`;
  return new CniError(
    ErrorCode.InvalidNetworkConfig,
    `invalid network configuration: field "${field}" ${problem}`,
    issue.message,
  );
}

/**
 * The IPAM problems no verb may execute: `dhcp` (code 2); this plugin itself, by the config's own `type` or
 * the running executable's name (code 7), which would start a chain of plugin processes that never ends.
 * Null when the IPAM type is usable or there is none.
 */
function ipamProblem(conf: NetConf, selfName: string | undefined): CniError | null {
  if (conf.ipamType === "dhcp") {
    return new CniError(
      ErrorCode.UnsupportedField,
      'field "ipam.type" "dhcp" is not supported',
      "the CNI dhcp daemon cannot lease for IPoIB (a 20-byte hardware address needs an RFC 4390 client identifier); use host-local, static or whereabouts",
    );
  }
  if (conf.ipamType !== null && (conf.ipamType === conf.type || conf.ipamType === selfName)) {
    return new CniError(
      ErrorCode.InvalidNetworkConfig,
      `invalid network configuration: field "ipam.type" ${describe(conf.ipamType)} names this plugin itself`,
      "the IPAM plugin would run this plugin again, without end; name an IPAM plugin such as host-local",
    );
  }
  return null;
}

/**
 * Validates a decoded network configuration for ADD, CHECK, GC and STATUS.
 * @param decoded the JSON value read from stdin
 * @param selfName the basename of the running executable: an `ipam.type` naming it is refused
 * @throws CniError code 1 for an unsupported cniVersion, 2 for an unsupported value (dhcp), 7 for
 * anything else invalid; the message names the field and its bad value.
 */
export function parseNetConf(decoded: unknown, selfName?: string): NetConf {
  const raw = asObject(decoded);
  requireSupportedVersion(raw);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalidField(raw, parsed.error.issues[0]!);
  const problem = ipamProblem(parsed.data, selfName);
  if (problem !== null) throw problem;
  return parsed.data;
}

/** What DEL works from, and what it could not read (for the log). */
export interface DelConf {
  /** `master` is "" when DEL could not read it (no link has that name). */
  conf: NetConf;
  /** One line per field DEL went on without: the field, its value and why ADD would refuse it. */
  ignored: string[];
}

/**
 * Reads a config for DEL, which must be able to finish: only the name, the type and `ipam` are needed
 * (besides a supported cniVersion, which Go's reference plugins require on DEL too). Any other field that
 * ADD would refuse is treated as not set and listed in `ignored`, and so is an absent `master` (a marked
 * child is found without it). An IPAM type ADD refuses (a path, dhcp, this plugin itself) can hold no lease
 * of ours: `ipam` is then read as `{}`, nothing is executed.
 * @param decoded the JSON value read from stdin
 * @param selfName the basename of the running executable
 * @throws CniError code 7 when the config is not an object or name, type or ipam is unusable (ipam not an
 * object, ipam.type a path); code 1 for an unsupported cniVersion.
 */
export function parseDelConf(decoded: unknown, selfName?: string): DelConf {
  const raw = asObject(decoded);
  requireSupportedVersion(raw);
  const ignored: string[] = [];
  const lenient: Record<string, unknown> = { ...raw };
  let masterUnusable = false;
  let ipamTypeUnusable = false;
  for (;;) {
    const parsed = schema.safeParse(lenient);
    if (parsed.success) {
      const conf = parsed.data;
      const problem = ipamTypeUnusable ? null : ipamProblem(conf, selfName);
      if (problem !== null) {
        ignored.push(`${problem.message}; no lease of it can exist, nothing executed`);
        conf.ipamType = null;
      }
      if (masterUnusable) conf.master = "";
      return { conf, ignored };
    }
    const issue = parsed.error.issues[0]!;
    const field = String(issue.path[0] ?? "");
    if (field === "ipam" && issue.path[1] === "type" && !ipamTypeUnusable) {
      // A type ADD refuses (a path): ADD never executed it, so it holds no lease; DEL executes nothing.
      ignored.push(`${invalidField(raw, issue).message}; no lease of it can exist, nothing executed`);
      lenient.ipam = {};
      ipamTypeUnusable = true;
      continue;
    }
    if (field === "master" && !(field in lenient)) {
      // Deleting a marked child needs no master: it only recognises an unmarked one in the host.
      ignored.push('field "master" is missing');
      masterUnusable = true;
      lenient.master = "unused";
      continue;
    }
    if (!OPTIONAL_FOR_DEL.has(field) || !(field in lenient)) throw invalidField(raw, issue);
    ignored.push(invalidField(raw, issue).message);
    delete lenient[field];
    if (field === "master") {
      masterUnusable = true;
      lenient.master = "unused"; // replaced by "" once parsed
    }
  }
}

/** One entry of `cni.dev/valid-attachments` (CNI spec 1.1.0, GC). */
export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

const validAttachments = z.array(z.object({ containerID: z.string(), ifname: z.string() }));

/**
 * The `cni.dev/valid-attachments` of a GC config (CNI spec 1.1.0, "GC: Clean up any stale resources"): the
 * attachments whose resources must stay. Null when the field is absent or null: without the list nothing is
 * known to be stale. Read only by GC, so that no other verb can fail on it.
 * @throws CniError code 7 when the field is not an array of {containerID, ifname} strings: deleting from a
 * list that cannot be read could delete an attachment in use.
 */
export function parseValidAttachments(decoded: unknown): ValidAttachment[] | null {
  const raw = asObject(decoded);
  const value = raw["cni.dev/valid-attachments"];
  if (value === undefined || value === null) return null;
  const parsed = validAttachments.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw invalidField(raw, { ...issue, path: ["cni.dev/valid-attachments", ...issue.path] });
  }
  return parsed.data.map(({ containerID, ifname }) => ({ containerID, ifname }));
}
