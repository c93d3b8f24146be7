/**
 * The CNI_* environment a runtime passes to a plugin, validated per verb as the CNI spec requires.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** The verbs of CNI spec 1.1.0. */
export const VERBS = ["ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"] as const;

/** One of {@link VERBS}. */
export type Verb = typeof VERBS[number];

/** The validated CNI_* variables of one invocation. */
export interface CniEnv {
  command: Verb;
  containerId: string;
  /** Empty when the runtime gave none (allowed on DEL, VERSION, GC, STATUS). */
  netns: string;
  ifname: string;
  args: CniArgs;
  /** CNI_PATH split on ':' with empty entries dropped. */
  path: string[];
}

/** CNI_ARGS decoded. Known keys are typed; the rest are kept as given. */
export interface CniArgs {
  ignoreUnknown: boolean;
  values: Record<string, string>;
}

type Variable = "CNI_CONTAINERID" | "CNI_NETNS" | "CNI_IFNAME" | "CNI_PATH";

/** Which variables each verb needs (CNI spec 1.1.0, "Parameters"). */
const REQUIRED: Record<Verb, readonly Variable[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  VERSION: [],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
};

/** CNI_ARGS keys this plugin understands; kubelet always sends the K8S_* ones. */
const KNOWN_ARGS = new Set([
  "IgnoreUnknown",
  "K8S_POD_NAME",
  "K8S_POD_NAMESPACE",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
]);

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Why `name` is not a valid Linux interface name, or null when it is.
 * The kernel's rules (dev_valid_name): 1-15 bytes, not "." or "..", no '/', ':' or whitespace.
 */
export function interfaceNameProblem(name: string): string | null {
  if (name.length === 0) return "is empty";
  if (new TextEncoder().encode(name).length > 15) return "is longer than 15 bytes";
  if (name === "." || name === "..") return `may not be "${name}"`;
  // deno-lint-ignore no-control-regex
  if (/[/:\s\x00]/.test(name)) return "contains '/', ':', a NUL or whitespace";
  return null;
}

/** Parses CNI_ARGS (`K=V;K=V`); unknown keys are refused unless IgnoreUnknown is true. */
export function parseCniArgs(raw: string): CniArgs {
  const values: Record<string, string> = {};
  for (const pair of raw.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) {
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `CNI_ARGS: "${pair}" is not KEY=VALUE`,
        `CNI_ARGS=${raw}`,
      );
    }
    values[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const ignore = (values.IgnoreUnknown ?? "").toLowerCase();
  const ignoreUnknown = ignore === "1" || ignore === "true";
  if (!ignoreUnknown) {
    const unknown = Object.keys(values).filter((k) => !KNOWN_ARGS.has(k));
    if (unknown.length > 0) {
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `CNI_ARGS: unknown key ${unknown.map((k) => `"${k}"`).join(", ")}`,
        "set IgnoreUnknown=1 to pass keys this plugin does not use",
      );
    }
  }
  return { ignoreUnknown, values };
}

/** Validates the CNI_* variables for the verb in CNI_COMMAND; a missing or invalid one is error code 4. */
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
  if (ifname !== "") {
    const problem = interfaceNameProblem(ifname);
    if (problem) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_IFNAME "${ifname}" ${problem}`);
  }
  return {
    command: verb,
    containerId,
    netns: env.CNI_NETNS ?? "",
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ""),
    path: (env.CNI_PATH ?? "").split(":").filter((p) => p !== ""),
  };
}
