/**
 * The rule every fuzz case must obey, for the in-process runner and the process-level cases alike: exit 0
 * with the output the verb prescribes, or exit 1 with exactly one CNI error object on stdout and one line
 * on stderr; never a stack trace. DEL may also print one line per config field it went on without.
 * @module
 */

import { SUPPORTED_VERSIONS } from "../../lib/version.ts";

/** What one invocation returned. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

const VERSIONS: readonly string[] = SUPPORTED_VERSIONS;
/** A JavaScript stack frame as V8 prints it ("    at fn (file:///x.ts:1:2)"). */
const STACK_FRAME = /^\s*at (async )?\S.*:\d+:\d+\)?$/m;

function oneJsonLine(stdout: string): Record<string, unknown> | string {
  if (!stdout.endsWith("\n") || stdout.indexOf("\n") !== stdout.length - 1) return "stdout is not one line";
  try {
    const v = JSON.parse(stdout);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : "stdout is not a JSON object";
  } catch {
    return "stdout is not JSON";
  }
}

/**
 * stderr without the lines a DEL prints for config fields it went on without (README, DEL: reported on
 * stderr when there is no usable log file), each one "ipoib: DEL goes on without: ..." line.
 */
function withoutDelReports(verb: string | undefined, stderr: string): string {
  if (verb !== "DEL") return stderr;
  return stderr.split(/(?<=\n)/).filter((line) => !/^ipoib: DEL goes on without: [^\n]*\n$/.test(line)).join(
    "",
  );
}

/** The problems with `o` as the outcome of an invocation with `env`; empty when it obeys the rule. */
export function outcomeProblems(env: Record<string, string>, outcome: Outcome): string[] {
  const problems: string[] = [];
  if (STACK_FRAME.test(outcome.stdout) || STACK_FRAME.test(outcome.stderr)) {
    problems.push("stack trace printed");
  }
  const verb = env.CNI_COMMAND;
  const o = { ...outcome, stderr: withoutDelReports(verb, outcome.stderr) };
  if (o.code === 0) {
    if (!verb) {
      if (o.stdout !== "" || !o.stderr.startsWith("CNI ipoib plugin")) problems.push("no about text");
      return problems;
    }
    if (o.stderr !== "") problems.push(`stderr on success: ${o.stderr.slice(0, 200)}`);
    if (verb === "ADD" || verb === "VERSION") {
      const v = oneJsonLine(o.stdout);
      if (typeof v === "string") problems.push(`${verb} succeeded but ${v}: ${o.stdout.slice(0, 200)}`);
      else if (!VERSIONS.includes(v.cniVersion as string) && verb === "ADD") {
        problems.push(`ADD result has cniVersion ${JSON.stringify(v.cniVersion)}`);
      } else if (verb === "VERSION" && !Array.isArray(v.supportedVersions)) {
        problems.push("VERSION without list");
      }
    } else if (o.stdout !== "") problems.push(`${verb} succeeded but printed ${o.stdout.slice(0, 200)}`);
    return problems;
  }
  if (o.code !== 1) {
    problems.push(`exit code ${o.code}`);
    return problems;
  }
  const e = oneJsonLine(o.stdout);
  if (typeof e === "string") {
    problems.push(`failed but ${e}: ${o.stdout.slice(0, 200)}`);
    return problems;
  }
  const keys = Object.keys(e).sort().join(",");
  if (keys !== "cniVersion,code,details,msg") problems.push(`error object has keys ${keys}`);
  if (!Number.isInteger(e.code) || (e.code as number) < 1) problems.push(`error code ${e.code}`);
  if (typeof e.msg !== "string" || e.msg === "") problems.push("error without msg");
  // 999 is the plugin's "unexpected exception"; an IPAM plugin's own 999 (host-local uses it) is passed on.
  if (e.code === 999 && !String(e.msg).startsWith("IPAM plugin ")) problems.push(`internal error: ${e.msg}`);
  if (typeof e.details !== "string") problems.push("error details not a string");
  if (!VERSIONS.includes(e.cniVersion as string)) problems.push(`error cniVersion ${e.cniVersion}`);
  if (!o.stderr.startsWith("ipoib: ") || o.stderr.indexOf("\n") !== o.stderr.length - 1) {
    problems.push(`stderr is not one "ipoib:" line: ${o.stderr.slice(0, 200)}`);
  }
  return problems;
}

/** The CNI error code of a failed outcome, for the histogram. */
export function errorCode(o: Outcome): number | null {
  try {
    return o.code === 1 ? JSON.parse(o.stdout).code ?? null : null;
  } catch {
    return null;
  }
}
