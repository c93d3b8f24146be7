/**
 * Running one measured process the way a container runtime runs a CNI plugin (support/run.ts:
 * CNI_* environment only, the config on stdin, wall time from spawn to exit), and measuring its peak
 * RSS from the OS through GNU time (`%M`: the largest resident set of the process and of the children
 * it waited for). RSS is taken in separate runs so that the wrapper never adds to a wall time. CPU time
 * (user + system, the process and what it waited for) is the growth of getrusage(RUSAGE_CHILDREN) of
 * this process across one run, so it is exact only while one child runs at a time.
 * @module
 */

import { type PluginRun, runPlugin } from "../support/run.ts";

/** A command line, the environment it runs with (nothing else of the bench's is passed on), its stdin. */
export interface Invocation {
  argv: string[];
  env: Record<string, string>;
  stdin?: Uint8Array;
}

const GNU_TIME = "/usr/bin/time";

/** Runs `inv` once and measures its wall time. */
export function run(inv: Invocation): Promise<PluginRun> {
  return runPlugin(inv.argv, inv.env, inv.stdin ?? new Uint8Array());
}

const RUSAGE_CHILDREN = -1;
let libc: Deno.DynamicLibrary<{ getrusage: { parameters: ["i32", "buffer"]; result: "i32" } }> | undefined;

/** User + system CPU milliseconds of all waited-for children of this process so far. */
function childrenCpuMs(): number {
  libc ??= Deno.dlopen("libc.so.6", { getrusage: { parameters: ["i32", "buffer"], result: "i32" } });
  const usage = new BigInt64Array(18); // struct rusage: utime and stime (timeval) first
  if (libc.symbols.getrusage(RUSAGE_CHILDREN, usage) !== 0) throw new Error("getrusage failed");
  const [us, uu, ss, su] = [usage[0]!, usage[1]!, usage[2]!, usage[3]!].map(Number);
  return (us! + ss!) * 1000 + (uu! + su!) / 1000;
}

/** Runs `inv` once (nothing else may run meanwhile) and measures its wall and CPU time. */
export async function runWithCpu(inv: Invocation): Promise<PluginRun & { cpuMs: number }> {
  const before = childrenCpuMs();
  const r = await run(inv);
  return { ...r, cpuMs: childrenCpuMs() - before };
}

/** True when GNU time is installed (Debian package `time`); the shell keyword cannot report RSS. */
export function haveGnuTime(): boolean {
  try {
    return Deno.statSync(GNU_TIME).isFile;
  } catch {
    return false;
  }
}

/**
 * Runs `inv` under GNU time and returns its peak RSS in KiB with the run (whose wall time includes
 * the wrapper and is not reported). `scratch` is a file the wrapper may overwrite.
 */
export async function runRss(inv: Invocation, scratch: string): Promise<{ run: PluginRun; rssKb: number }> {
  const r = await run({ ...inv, argv: [GNU_TIME, "-q", "-f", "%M", "-o", scratch, ...inv.argv] });
  const text = Deno.readTextFileSync(scratch).trim().split("\n").at(-1) ?? "";
  const rssKb = Number(text);
  if (!Number.isFinite(rssKb) || rssKb <= 0) throw new Error(`GNU time reported no RSS: "${text}"`);
  return { run: r, rssKb };
}
