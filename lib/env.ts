/**
 * The CNI_* environment a runtime passes to a plugin, validated per verb as the CNI spec requires.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** The verbs of CNI spec 1.1.0. */
export const VERBS = ["ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"] as const;

/** One of {@link VERBS}. */
export type Verb = typeof VERBS[number];

/** The validated CNI_* variables of one invocation. CNI_ARGS is not read: its keys are for the IPAM plugin. */
export interface CniEnv {
  command: Verb;
  containerId: string;
  /** Empty when the runtime gave none (allowed on DEL, VERSION, GC, STATUS). */
  netns: string;
  /**
   * On DEL it may be a name the kernel refuses or expands (see {@link interfaceNameProblem}): ADD refused
   * it, so no link of ours has it.
   */
  ifname: string;
  /** CNI_PATH split on ':' with empty entries dropped; may be empty (see {@link requireCniPath}). */
  path: string[];
}

/**
 * Set by this plugin, to its pid, in the environment of every IPAM plugin it runs. A plugin started with
 * it set was started, directly or through a wrapper or symlink of any name, as the IPAM plugin of this
 * plugin: it refuses at once ({@link refuseNestedRun}), so an `ipam.type` that leads back here can never
 * start a chain of plugin processes.
 */
export const DELEGATOR_VARIABLE = "IPOIB_CNI_DELEGATOR";

/** The message of the refusal of a nested run; a DEL that receives it from its IPAM DEL knows no lease exists. */
export const NESTED_RUN_REFUSED = "ipam.type runs this plugin itself";

/**
 * Code 7 when `environ` carries {@link DELEGATOR_VARIABLE}: this run is this plugin's own IPAM plugin. Checked
 * before any lock is taken or anything executed (the parent holds the attachment's lock).
 */
export function refuseNestedRun(environ: Record<string, string | undefined>): void {
  const parent = environ[DELEGATOR_VARIABLE];
  if (parent === undefined) return;
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    NESTED_RUN_REFUSED,
    `started as the IPAM plugin of ipoib-cni process ${parent} (${DELEGATOR_VARIABLE} is set); ` +
      "name an IPAM plugin such as host-local in ipam.type",
  );
}

type Variable = "CNI_CONTAINERID" | "CNI_NETNS" | "CNI_IFNAME";

/**
 * Which variables each verb needs (CNI spec 1.1.0, "CNI operations"). CNI_PATH is optional there except
 * for GC; this plugin needs it only to execute an IPAM plugin ({@link requireCniPath}).
 */
const REQUIRED: Record<Verb, readonly Variable[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
  VERSION: [],
  GC: [],
  STATUS: [],
};

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Bytes the kernel's isspace() accepts (lib/ctype.c, `_S`): \t \n \v \f \r, space, and 0xa0 (Latin-1's
 * no-break space), which is also a byte of many UTF-8 characters ("à" is c3 a0).
 */
const KERNEL_SPACE_BYTES = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0]);

/**
 * Runes Go's unicode.IsSpace accepts (Latin-1: \t \n \v \f \r, space, U+0085, U+00A0; beyond: Unicode's
 * White_Space). Not JavaScript's `\s`, which lacks U+0085 and adds U+FEFF.
 */
const GO_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/**
 * Why the kernel refuses `name` for a link, or null when it accepts it (net/core/dev.c, dev_valid_name):
 * 1-15 bytes, not "." or "..", no '/', ':' or byte that isspace() accepts (0xa0 included: "à").
 */
export function kernelNameProblem(name: string): string | null {
  if (name.length === 0) return "is empty";
  const bytes = new TextEncoder().encode(name);
  if (bytes.length > 15) return "is longer than 15 bytes";
  if (name === "." || name === "..") return `may not be "${name}"`;
  // deno-lint-ignore no-control-regex
  if (/[/:\x00]/.test(name) || bytes.some((b) => KERNEL_SPACE_BYTES.has(b))) {
    return "contains '/', ':', a NUL or whitespace (a byte the kernel's isspace() accepts)";
  }
  return null;
}

/** Why Go's skel refuses CNI_IFNAME `name` beyond the kernel's rules: a rune unicode.IsSpace accepts (U+0085). */
function goSpaceProblem(name: string): string | null {
  return GO_SPACE.test(name) ? "contains whitespace (a character Go's unicode.IsSpace accepts)" : null;
}

/**
 * Why no link or lease of ours can carry CNI_IFNAME `name`, or null: the kernel refuses it
 * ({@link kernelNameProblem}), or Go's skel does on every verb (a rune unicode.IsSpace accepts), so no
 * IPAM plugin built on it can hold a lease under it. DEL of such a name has nothing to do.
 */
export function unusableIfnameProblem(name: string): string | null {
  return kernelNameProblem(name) ?? goSpaceProblem(name);
}

/**
 * Why `name` is not a name the kernel gives a new link as asked, or null when it is: what
 * {@link kernelNameProblem} refuses, and a name holding '%', which the kernel takes as a template
 * (dev_alloc_name expands "net%d" to "net0").
 */
export function interfaceNameProblem(name: string): string | null {
  const problem = kernelNameProblem(name);
  if (problem !== null) return problem;
  if (name.includes("%")) return "contains '%', which the kernel expands as a template (net%d becomes net0)";
  return null;
}

/**
 * Validates the CNI_* variables for the verb in CNI_COMMAND. CNI_ARGS is passed to the IPAM plugin as
 * given and never judged here: the plugin reads none of its keys (static reads IP, for example).
 * @throws CniError code 4 for a missing or invalid variable. On DEL an invalid CNI_IFNAME is accepted:
 * ADD refused it, so DEL has only the IPAM lease to release.
 */
export function parseEnvironment(env: Record<string, string | undefined>): CniEnv {
  const command = env.CNI_COMMAND ?? "";
  if (!(VERBS as readonly string[]).includes(command)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      command === "" ? "CNI_COMMAND is not set" : `CNI_COMMAND: unknown verb "${command}"`,
      `expected one of ${VERBS.join(", ")}`,
    );
  }
  const verb = command as Verb;
  for (const name of REQUIRED[verb]) {
    if (!env[name]) throw new CniError(ErrorCode.InvalidEnvironment, `${name} is required for ${verb}`);
  }
  const containerId = env.CNI_CONTAINERID ?? "";
  if (containerId !== "" && !CONTAINER_ID.test(containerId)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_CONTAINERID "${containerId}" is invalid`,
      "it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'",
    );
  }
  const ifname = env.CNI_IFNAME ?? "";
  if (ifname !== "" && verb !== "DEL") {
    const problem = interfaceNameProblem(ifname) ?? goSpaceProblem(ifname);
    if (problem) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_IFNAME "${ifname}" ${problem}`);
  }
  return {
    command: verb,
    containerId,
    netns: env.CNI_NETNS ?? "",
    ifname,
    path: (env.CNI_PATH ?? "").split(":").filter((p) => p !== ""),
  };
}

/**
 * Code 4 unless CNI_PATH names at least one directory: called only when the verb must execute an IPAM
 * plugin (an `ipam: {}` network executes nothing and needs none).
 */
export function requireCniPath(env: CniEnv, ipamType: string): void {
  if (env.path.length === 0) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_PATH is required for ${env.command}`,
      `the IPAM plugin "${ipamType}" is looked up in CNI_PATH`,
    );
  }
}
