/**
 * A lock per attachment (container id and ifname, whatever the network's name): a file under /run/ipoib-cni/locks held with
 * flock(2) by ADD, DEL and CHECK for their whole run, and inherited by the IPAM plugin they start.
 *
 * Why: a runtime that kills ADD (SIGKILL on a timeout) leaves the IPAM plugin running, since it is
 * another process; if the runtime's DEL then released before that orphan allocated, the lease would stay
 * forever. The orphan holds the lock through its inherited descriptor (a flock belongs to the open file,
 * not to a process), so DEL waits until it has finished and then releases what it took. The same lock
 * keeps an ADD and a DEL of one attachment from interleaving.
 *
 * Every run removes the file when it ends, so only a killed run leaves one. Removal without the classic
 * unlink race: only a holder unlinks the file, and whoever acquires a lock checks that its descriptor
 * still is the file at the path (device and inode), else it starts over.
 * @module
 */

import { CniError, ErrorCode } from "../lib/errors.ts";
import { attachmentKey, markFields, parseMark } from "../lib/mark.ts";
import {
  closeFd,
  cString,
  Errno,
  errno,
  type FileId,
  fileId,
  fileIdAt,
  libc,
  O_CLOEXEC,
  O_CREAT,
  O_NOFOLLOW,
  O_RDWR,
  sameFile,
  SIGKILL,
  SystemError,
} from "./libc.ts";

/** Where the lock files live: tmpfs, so a reboot (which ends every attachment's processes) clears them. */
const LOCK_DIR = "/run/ipoib-cni/locks";

const LOCK_EX = 2;
const LOCK_NB = 4;
/** How often a waiter tries again: flock(2) itself has no time limit. */
const RETRY_MS = 5;
/** After killing the holders of a lock, how long to wait for them to be gone. */
const KILL_GRACE_MS = 5_000;
/**
 * How much longer than the wait a holder may keep the lock before a DEL kills it: a run's own steps
 * around its IPAM plugin (kernel, start-up) take a little beyond the IPAM time limit.
 */
export const HOLD_GRACE_MS = 1_000;
/** st_mtim (seconds, then nanoseconds) in struct stat: offset 88 on x86_64 and in arm64's generic layout. */
const ST_MTIM_OFFSET = 88;
/** glibc's struct dirent on 64-bit Linux: d_name follows d_ino (8), d_off (8), d_reclen (2), d_type (1). */
const DIRENT_NAME_OFFSET = 19;

/**
 * The file name of an attachment's lock: its key (lib/mark.ts), so that a GC that finds a marked child knows
 * its lock from the mark alone, and a DEL sent after the network was renamed waits for the ADD's.
 */
async function lockFileName(containerId: string, ifname: string): Promise<string> {
  return `${await attachmentKey(await markFields("-", containerId, ifname))}.lock`;
}

/**
 * The file name of the lock of the attachment that `mark` (a child's alias, lib/mark.ts) names.
 * @throws CniError code 999 (a caller's bug) when `mark` is not a mark
 */
async function lockFileNameOfMark(mark: string): Promise<string> {
  const f = parseMark(mark);
  if (f === null) {
    throw new CniError(ErrorCode.Internal, `not a mark of this plugin: ${JSON.stringify(mark)}`);
  }
  return `${await attachmentKey(f)}.lock`;
}

/** Creates the lock directory (mode 0700) when missing; code 5 when it cannot. */
function makeLockDir(dir: string): void {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CniError(ErrorCode.IoFailure, `cannot create the lock directory ${dir}`, String(e), {
      cause: e,
    });
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The identity of the file at `path` (not following a symlink), or null when there is none. */
function identityAt(path: string): FileId | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return { dev: BigInt(info.dev), ino: BigInt(info.ino ?? -1) };
}

/**
 * flock(LOCK_EX) on `fd`, retried every RETRY_MS until `deadline` (performance.now() scale, or a function
 * giving it anew at each try: the holder may change meanwhile); false when the time ran out.
 */
function waitForLock(fd: number, path: string, deadline: number | (() => number)): boolean {
  while (libc.flock(fd, LOCK_EX | LOCK_NB) < 0) {
    const e = errno();
    // EWOULDBLOCK (EAGAIN on Linux): held by another open file.
    if (e !== Errno.EAGAIN && e !== Errno.EINTR) throw new SystemError(`flock ${path}`, e);
    if (performance.now() >= (typeof deadline === "number" ? deadline : deadline())) return false;
    sleep(RETRY_MS);
  }
  return true;
}

/**
 * When the holder of the file open at `fd` took it, in ms since the epoch: its modification time, which
 * every holder sets on acquiring ({@link markAcquired}). Throws SystemError.
 */
function heldSince(fd: number): number {
  const st = new Uint8Array(256); // as in fileId
  if (libc.fstat(fd, st) < 0) throw new SystemError(`fstat fd ${fd}`, errno());
  const view = new DataView(st.buffer);
  return Number(view.getBigInt64(ST_MTIM_OFFSET, true)) * 1000 +
    Number(view.getBigInt64(ST_MTIM_OFFSET + 8, true)) / 1e6;
}

/**
 * Records that the lock was taken now: a byte written sets the file's modification time, so that a waiting
 * DEL measures the holder's time from here, not from its own start ({@link heldSince}). A runtime that kills
 * each DEL after its own deadline, shorter than the IPAM time limit, still sees a later DEL kill the holder.
 */
function markAcquired(fd: number): void {
  libc.pwrite(fd, new Uint8Array([0x0a]), 1n, 0n);
}

/** The names in directory `path` (without . and ..); [] when it cannot be read (e.g. a process that ended). */
function listDir(path: string): string[] {
  const dir = libc.opendir(cString(path));
  if (dir === null) return [];
  const names: string[] = [];
  try {
    for (let entry = libc.readdir(dir); entry !== null; entry = libc.readdir(dir)) {
      const name = Deno.UnsafePointerView.getCString(entry, DIRENT_NAME_OFFSET);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    libc.closedir(dir);
  }
  return names;
}

/**
 * The processes other than this one with a descriptor open on the file `id` ([st_dev, st_ino]), from
 * /proc/PID/fd: the holders of a lock, and whoever inherited it.
 */
function processesHolding(id: FileId): number[] {
  const found: number[] = [];
  for (const name of listDir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === Deno.pid) continue;
    for (const fd of listDir(`/proc/${name}/fd`)) {
      const target = fileIdAt(`/proc/${name}/fd/${fd}`);
      if (target !== null && sameFile(target, id)) {
        found.push(Number(name));
        break;
      }
    }
  }
  return found;
}

function stillHeld(path: string, waitMs: number, killed: number[]): CniError {
  return new CniError(
    ErrorCode.TryAgainLater,
    `another operation on this attachment is still running after ${Math.round(waitMs / 1000)} s`,
    `lock ${path} is held by an ADD, DEL or CHECK of the same container and interface, or by the IPAM ` +
      `plugin of one that was killed` +
      (killed.length > 0 ? `; killed ${killed.join(", ")}, still held` : "") +
      "; retry later",
  );
}

/**
 * The moment (performance.now() scale) by which the current holder of the file at `fd` has held it for
 * `waitMs` and {@link HOLD_GRACE_MS}.
 */
function holderDeadline(fd: number, waitMs: number): number {
  return performance.now() + (heldSince(fd) + waitMs + HOLD_GRACE_MS - Date.now());
}

/** A held attachment lock. `fd` is the descriptor an IPAM child must inherit to hold it too. */
export class AttachmentLock {
  readonly path: string;
  readonly fd: number;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /**
   * Takes the lock of the attachment, waiting up to `waitMs` while another run (or the IPAM plugin of
   * a killed one) holds it. With `killHolders` (DEL), every process still holding it after `waitMs` is
   * killed with SIGKILL and the lock taken once they are gone; `onKilled` hears their pids. `dir`: the
   * lock directory (LOCK_DIR; tests use their own).
   * @throws CniError code 11 (try again later) when it is still held after `waitMs` (and, with
   *   `killHolders`, 5 s after the kill); code 5 when the lock directory or file cannot be created.
   */
  static async acquire(
    containerId: string,
    ifname: string,
    waitMs: number,
    { dir = LOCK_DIR, killHolders = false, onKilled }: {
      dir?: string;
      killHolders?: boolean;
      onKilled?: (pids: number[]) => void;
    } = {},
  ): Promise<AttachmentLock> {
    const path = `${dir}/${await lockFileName(containerId, ifname)}`;
    const deadline = performance.now() + waitMs;
    const killCap = performance.now() + 2 * waitMs + HOLD_GRACE_MS;
    const held = AttachmentLock.#take(path, dir, (fd) => {
      // DEL waits until the current holder has held the lock for longer than any run may (measured from when
      // it took it, so repeated DELs converge and a new holder starts its own time), and at most twice that
      // from its own start (holders that keep changing).
      const until = killHolders ? () => Math.min(killCap, holderDeadline(fd, waitMs)) : deadline;
      if (waitForLock(fd, path, until)) return true;
      if (!killHolders) throw stillHeld(path, waitMs, []);
      // Whoever holds it now has outlived the time any run of this attachment may take: most likely the
      // IPAM plugin of a killed ADD that hangs. DEL must be able to finish, so they go.
      const killed = processesHolding(fileId(fd));
      for (const pid of killed) libc.kill(pid, SIGKILL);
      if (!waitForLock(fd, path, performance.now() + KILL_GRACE_MS)) throw stillHeld(path, waitMs, killed);
      onKilled?.(killed);
      return true;
    });
    return held!; // this `lock` holds or throws: never null
  }

  /**
   * Takes the lock of the attachment that `mark` (a child's alias, lib/mark.ts) names without waiting: null
   * when another run holds it (an ADD, DEL or CHECK of that attachment in flight, or its IPAM plugin).
   * `dir` as in {@link acquire}.
   * @throws CniError code 5 when the lock directory or file cannot be created.
   */
  static async tryAcquireMark(
    mark: string,
    { dir = LOCK_DIR }: { dir?: string } = {},
  ): Promise<AttachmentLock | null> {
    const path = `${dir}/${await lockFileNameOfMark(mark)}`;
    return AttachmentLock.#take(path, dir, (fd) => waitForLock(fd, path, 0));
  }

  /**
   * Opens (creating) the lock file at `path` in `dir` and takes it with `lock`, which waits as its caller
   * may and answers whether it holds it: the held lock, or null when `lock` gave up. The holder before may
   * have removed the file meanwhile: a lock on a file no longer at the path guards nothing, so it starts over.
   */
  static #take(path: string, dir: string, lock: (fd: number) => boolean): AttachmentLock | null {
    makeLockDir(dir);
    for (;;) {
      const fd = libc.open(cString(path), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600);
      if (fd < 0) throw new SystemError(`open lock file ${path}`, errno());
      try {
        if (!lock(fd)) {
          closeFd(fd);
          return null;
        }
        const now = identityAt(path);
        if (now !== null && sameFile(now, fileId(fd))) {
          markAcquired(fd);
          return new AttachmentLock(path, fd);
        }
      } catch (e) {
        closeFd(fd);
        throw e;
      }
      closeFd(fd);
    }
  }

  /**
   * Removes the lock files in `dir` (LOCK_DIR; tests use their own) that no one holds: those of runs that
   * were killed, whose IPAM plugins have ended too. Each is taken without waiting and removed by its holder,
   * as the protocol requires (a file held by another stays). Returns the names removed; a file that cannot
   * be opened or removed is skipped.
   */
  static removeUnheld({ dir = LOCK_DIR }: { dir?: string } = {}): string[] {
    const removed: string[] = [];
    for (const name of listDir(dir)) {
      if (!name.endsWith(".lock")) continue;
      const path = `${dir}/${name}`;
      const fd = libc.open(cString(path), O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
      if (fd < 0) continue;
      try {
        // Held, it is checked to be still the file at the path: one its holder removed guards nothing.
        if (!waitForLock(fd, path, 0)) continue;
        const now = identityAt(path);
        if (now !== null && sameFile(now, fileId(fd)) && libc.unlink(cString(path)) === 0) removed.push(name);
      } finally {
        closeFd(fd);
      }
    }
    return removed;
  }

  /**
   * Releases the lock and, unless `remove` is false, first unlinks the file (while still holding it, so
   * that no one can acquire the old file and believe it current): between runs an attachment needs no
   * file, and only a run that was killed leaves one, held by what it started, for the next run to wait on.
   * Descendants that inherited the descriptor keep the old file locked until they end; with `remove` the
   * caller must have ended them (runChild's killDescendants).
   */
  release(remove = true): void {
    // A file that cannot be removed costs an inode on tmpfs and nothing else: not worth failing for.
    if (remove) libc.unlink(cString(this.path));
    closeFd(this.fd);
  }
}
