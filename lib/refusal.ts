/**
 * Records of refusal: when ADD finds CNI_IFNAME already taken in the pod by a link that is not this
 * attachment's, it records which link that was (the pod namespace's identity and the link's ifindex)
 * before failing. The runtime's DEL that follows the failed ADD then knows that link is another's, even
 * when it is of the driver's kind on the same master (Go macvlan's eth0) or carries a mark of the same
 * container id and ifname (another network of this plugin): DEL leaves it, and removes the record.
 *
 * One file per attachment (container id and ifname) under /run/ipoib-cni/foreign, named by a hash as the
 * lock files are (ffi/lock.ts); tmpfs, so a reboot clears them. GC removes records older than a day.
 * @module
 */

import type { FileId } from "../ffi/libc.ts";
import { attachmentKey, markFields } from "./mark.ts";

/** Where the records live. */
export const REFUSAL_DIR = "/run/ipoib-cni/foreign";

/** How old a record GC removes: the runtime's DEL follows a failed ADD within seconds to minutes. */
export const REFUSAL_MAX_AGE_MS = 24 * 3600 * 1000;

/** The link a refused ADD found under CNI_IFNAME: its namespace (device and inode) and its ifindex. */
export interface Refusal {
  netns: FileId;
  ifindex: number;
}

/** The record's file name: the attachment's key (lib/mark.ts), as the lock file's is (ffi/lock.ts). */
async function recordPath(containerId: string, ifname: string, dir: string): Promise<string> {
  return `${dir}/${await attachmentKey(await markFields("-", containerId, ifname))}`;
}

/**
 * Writes the record of a refused ADD of (containerId, ifname), replacing an older one.
 * @throws Deno errors when the directory or file cannot be written (the caller logs and goes on)
 */
export async function recordRefusal(
  containerId: string,
  ifname: string,
  refusal: Refusal,
  dir = REFUSAL_DIR,
): Promise<void> {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const text = JSON.stringify({
    netns: `${refusal.netns.dev}:${refusal.netns.ino}`,
    ifindex: refusal.ifindex,
  });
  Deno.writeTextFileSync(await recordPath(containerId, ifname, dir), text, { mode: 0o600 });
}

/** The record of (containerId, ifname), or null when there is none or it cannot be read as one. */
export async function readRefusal(
  containerId: string,
  ifname: string,
  dir = REFUSAL_DIR,
): Promise<Refusal | null> {
  let text: string;
  try {
    text = Deno.readTextFileSync(await recordPath(containerId, ifname, dir));
  } catch {
    return null;
  }
  return parseRefusal(text);
}

/** A record's text as {@link Refusal}, or null when it is not one. */
export function parseRefusal(text: string): Refusal | null {
  try {
    const r = JSON.parse(text);
    const m = typeof r?.netns === "string" ? /^(\d+):(\d+)$/.exec(r.netns) : null;
    if (m === null || !Number.isInteger(r.ifindex)) return null;
    return { netns: { dev: BigInt(m[1]!), ino: BigInt(m[2]!) }, ifindex: r.ifindex };
  } catch {
    return null;
  }
}

/** Removes the record of (containerId, ifname); one that is gone is done. */
export async function removeRefusal(containerId: string, ifname: string, dir = REFUSAL_DIR): Promise<void> {
  try {
    Deno.removeSync(await recordPath(containerId, ifname, dir));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Removes the records older than `maxAgeMs` (a DEL that never came); returns how many. */
export function removeStaleRefusals(dir = REFUSAL_DIR, maxAgeMs = REFUSAL_MAX_AGE_MS): number {
  let removed = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  for (const entry of entries) {
    if (!entry.isFile) continue;
    try {
      const mtime = Deno.lstatSync(`${dir}/${entry.name}`).mtime?.getTime() ?? 0;
      if (Date.now() - mtime < maxAgeMs) continue;
      Deno.removeSync(`${dir}/${entry.name}`);
      removed++;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return removed;
}
