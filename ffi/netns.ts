/**
 * Network namespaces: open one (refusing anything else), run synchronous code inside one,
 * and read or write the namespace-dependent files (sysctls, sysfs attributes).
 *
 * The switch is per thread: `setns` moves the JS thread, which also carries every synchronous
 * FFI call and synchronous Deno fs call. Async work runs on other threads and stays behind,
 * hence the synchronous-only {@link Netns.run}.
 * @module
 */

import { CniError, ErrorCode } from "../lib/errors.ts";
import {
  closeFd,
  Errno,
  type FileId,
  fileId,
  ioctlNoArg,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  openFd,
  readTextFile,
  sameFile,
  setns,
  SystemError,
  writeTextFile,
} from "./libc.ts";

const CLONE_NEWNET = 0x40000000;
/** ioctl(2) on a namespace fd: which kind of namespace it is (linux/nsfs.h, _IO(0xb7, 3)). */
const NS_GET_NSTYPE = 0xb703;
/** The calling thread's own namespace; /proc/self would name the main thread's. */
const THREAD_NETNS = "/proc/thread-self/ns/net";
/** The namespace the JS thread started in, recorded before its first switch (see {@link hostNetnsId}). */
let startNetns: NetnsId | undefined;

/** A namespace path that is missing or is not a network namespace: code InvalidNetns. */
export class NetnsError extends CniError {
  /** The errno behind the failure (ENOENT for a missing path, ENOTTY/EINVAL for a wrong file). */
  readonly errno: number;
  constructor(msg: string, errno: number, details: string) {
    super(ErrorCode.InvalidNetns, msg, details);
    this.name = "NetnsError";
    this.errno = errno;
  }

  /** The path opened but is no network namespace (a regular file, a directory, another namespace kind). */
  get notANetns(): boolean {
    return this.errno === Errno.ENOTTY || this.errno === Errno.EINVAL;
  }
}

/**
 * Opens a network namespace file (e.g. /var/run/netns/x or /proc/<pid>/ns/net) and returns
 * its fd, after checking with NS_GET_NSTYPE that it is a network namespace. Throws
 * NetnsError (code 8, InvalidNetns) naming the path otherwise.
 */
function openNetns(path: string): number {
  if (path.includes("\0")) {
    // C would see the path cut at the NUL: another file than the one named.
    throw new NetnsError(
      `${JSON.stringify(path)} is not a network namespace`,
      Errno.EINVAL,
      "the path holds a NUL",
    );
  }
  let fd: number;
  try {
    // Non-blocking: opening a FIFO put in CNI_NETNS would otherwise wait forever for a writer.
    fd = openFd(path, O_RDONLY | O_NONBLOCK);
  } catch (e) {
    if (!(e instanceof SystemError)) throw e;
    const why = e.errno === Errno.ENOENT ? "does not exist" : "cannot be opened";
    throw new NetnsError(`network namespace ${path} ${why}`, e.errno, e.message);
  }
  const type = ioctlNoArg(fd, NS_GET_NSTYPE);
  if (type !== CLONE_NEWNET) {
    closeFd(fd);
    // A regular file answers ENOTTY; another namespace kind answers its own CLONE_NEW* flag.
    const errno = type < 0 ? -type : Errno.EINVAL;
    const what = type < 0 ? "not a namespace file" : `a namespace of type 0x${type.toString(16)}`;
    throw new NetnsError(`${path} is not a network namespace`, errno, what);
  }
  return fd;
}

/**
 * An open network namespace, closed on dispose (`using ns = Netns.open(path)`). Holding it keeps the
 * namespace alive and names it by identity, whatever later happens to its path.
 */
export class Netns implements Disposable {
  #fd: number;
  /** The path it was opened from, for messages. */
  readonly path: string;

  private constructor(fd: number, path: string) {
    this.#fd = fd;
    this.path = path;
  }

  /** Opens and checks a network namespace path; throws NetnsError (code 8) as {@link openNetns}. */
  static open(path: string): Netns {
    return new Netns(openNetns(path), path);
  }

  /** The descriptor, for requests that name the namespace by fd (moving a link into it). */
  get fd(): number {
    if (this.#fd < 0) {
      throw new CniError(ErrorCode.Internal, `network namespace ${this.path} used after close`);
    }
    return this.#fd;
  }

  /**
   * Runs synchronous `fn` with the JS thread inside this namespace and always switches back, also when
   * `fn` throws. `fn` must be synchronous: anything it leaves for later would run after the switch back,
   * so a returned Promise is refused (CniError Internal, after switching back).
   */
  run<T>(fn: () => T): T {
    return withNetns(this.fd, this.path, fn);
  }

  /** This namespace's identity (nsfs device and inode). */
  id(): NetnsId {
    return fileId(this.fd);
  }

  /** Closes the descriptor; safe to call twice. */
  [Symbol.dispose](): void {
    if (this.#fd >= 0) closeFd(this.#fd);
    this.#fd = -1;
  }
}

/** A network namespace's identity: the (st_dev, st_ino) of its nsfs file. Compare with {@link sameNetns}. */
export type NetnsId = FileId;

/** True when two identities name the same namespace. */
export function sameNetns(a: NetnsId, b: NetnsId): boolean {
  return sameFile(a, b);
}

/** The identity of the calling thread's current network namespace (opened with O_PATH, no check). */
function threadNetnsId(): NetnsId {
  const fd = openFd(THREAD_NETNS, O_PATH);
  try {
    return fileId(fd);
  } finally {
    closeFd(fd);
  }
}

/**
 * The identity of the host's network namespace: the one the plugin process was started in (a runtime
 * runs CNI plugins in the host's), recorded before the thread first switches, so it is right also when
 * called inside {@link Netns.run}. Not /proc/1/ns/net: reading PID 1's namespace needs ptrace access,
 * which root lacks in some containers (EACCES on this project's machines).
 */
export function hostNetnsId(): NetnsId {
  startNetns ??= threadNetnsId();
  return startNetns;
}

/** Runs `fn` with the JS thread in the namespace open at `fd` (named `path` in messages); see {@link Netns.run}. */
function withNetns<T>(fd: number, path: string, fn: () => T): T {
  let original = -1;
  try {
    original = openFd(THREAD_NETNS, O_RDONLY);
    startNetns ??= fileId(original); // the first switch starts from the starting namespace
    setns(fd, CLONE_NEWNET, `enter network namespace ${path}`);
    let result: T;
    try {
      result = fn();
    } finally {
      // Not getting back would leave every later operation in the pod: nothing can recover.
      setns(original, CLONE_NEWNET, "return to the original network namespace");
    }
    if (result instanceof Promise) {
      throw new CniError(ErrorCode.Internal, "Netns.run needs a synchronous function; it returned a Promise");
    }
    return result;
  } finally {
    if (original >= 0) closeFd(original);
  }
}

/** The /proc/sys path of a sysctl key, refusing keys that would leave /proc/sys. */
function procSysPath(key: string): string {
  if (key.startsWith("/") || key.split("/").some((p) => p === "" || p === "." || p === "..")) {
    // Keys are built by lib/ from names it has validated: one that leaves /proc/sys is a caller's bug.
    throw new CniError(ErrorCode.Internal, `invalid sysctl key "${key}"`);
  }
  return `/proc/sys/${key}`;
}

/** Writes a sysctl of the thread's current namespace; throws SystemError (code IoFailure). */
export function writeSysctl(key: string, value: string): void {
  writeTextFile(procSysPath(key), value);
}

/**
 * Reads /sys/class/net/<ifname>/<attr>, trimmed; null when the link or attribute is missing.
 * sysfs shows the namespace it was mounted in (the host's), not the thread's: use it for host
 * links only.
 */
export function readSysfsNet(ifname: string, attr: string): string | null {
  if (!/^[^/\s]{1,15}$/.test(ifname) || ifname === "." || ifname === ".." || !/^[\w.-]+$/.test(attr)) {
    // Called with the name of a link the kernel reported: anything else is a caller's bug.
    throw new CniError(ErrorCode.Internal, `invalid interface attribute "${ifname}/${attr}"`);
  }
  return readTextFile(`/sys/class/net/${ifname}/${attr}`)?.trim() ?? null;
}
