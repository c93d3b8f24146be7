/**
 * The attachment lock files as a test sees them from outside the plugin: where they are and who holds
 * one. The naming rule is stated here independently of ffi/lock.ts, so a test that finds the file
 * checks the rule the README documents.
 * @module
 */

import { attachmentMark } from "../lib/mark.ts";
import { run } from "./net.ts";

/** Where the plugin keeps its lock files (README, "Network configuration reference"). */
export const LOCK_DIR = "/run/ipoib-cni/locks";

/**
 * The file name of an attachment's lock: the first 16 bytes of the SHA-256 of its mark (lib/mark.ts) in
 * lower-case hex, then ".lock".
 */
export async function lockFileName(network: string, containerId: string, ifname: string): Promise<string> {
  const mark = await attachmentMark(network, containerId, ifname);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(mark)));
  return `${Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("")}.lock`;
}

/**
 * The pids, other than this process, with a descriptor open on the file at `path`, from /proc/PID/fd as
 * the shell's `-ef` (same device and inode) sees it; Deno itself refuses /proc without --allow-all.
 */
export function processesHolding(path: string): number[] {
  const out = run(
    "sh",
    "-c",
    'for f in /proc/[0-9]*/fd/*; do [ "$f" -ef "$1" ] && echo "${f#/proc/}"; done; true',
    "sh",
    path,
  );
  const pids = new Set(out.split("\n").filter((l) => l !== "").map((l) => Number(l.split("/")[0])));
  pids.delete(Deno.pid);
  return [...pids].sort((a, b) => a - b);
}
