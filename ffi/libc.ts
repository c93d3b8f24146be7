/**
 * libc over FFI: the few system calls the plugin needs, and typed helpers around them.
 *
 * File access goes through libc rather than Deno's fs API because Deno refuses /proc and /sys
 * without --allow-all, and because a synchronous libc call runs on the JS thread, so procfs
 * follows that thread's network namespace.
 * @module
 */

import { CniError, ErrorCode } from "../lib/errors.ts";
import { cString, lazyLibrary } from "./load.ts";

export { cString };

const LIBC = "libc.so.6";
const LIBC_HINT = "the C library (glibc) is part of every supported distribution; is this a musl system?";

/** Every libc symbol this project binds, with the C prototype of each parameter. */
const LIBC_SYMBOLS = {
  /** int open(const char *path, int flags, mode_t mode) */
  open: {
    parameters: ["buffer", /* const char *path */ "i32", /* int flags */ "u32" /* mode_t mode */],
    result: "i32",
  },
  /** int close(int fd) */
  close: { parameters: ["i32" /* int fd */], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count) */
  read: {
    parameters: ["i32", /* int fd */ "buffer", /* void *buf */ "usize" /* size_t count */],
    result: "isize",
  },
  /** ssize_t write(int fd, const void *buf, size_t count) */
  write: {
    parameters: ["i32", /* int fd */ "buffer", /* const void *buf */ "usize" /* size_t count */],
    result: "isize",
  },
  /** int fstat(int fd, struct stat *statbuf): glibc 2.33 and later export it (older ones only __fxstat) */
  fstat: { parameters: ["i32", /* int fd */ "buffer" /* struct stat *statbuf */], result: "i32" },
  /** int setns(int fd, int nstype) */
  setns: { parameters: ["i32", /* int fd */ "i32" /* int nstype */], result: "i32" },
  /** int ioctl(int fd, unsigned long request, ...): bound without the variadic argument */
  ioctl: { parameters: ["i32", /* int fd */ "u64" /* unsigned long request */], result: "i32" },
  /** int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen) */
  setsockopt: {
    parameters: [
      "i32", /* int fd */
      "i32", /* int level */
      "i32", /* int optname */
      "buffer", /* const void *optval */
      "u32", /* socklen_t optlen */
    ],
    result: "i32",
  },
  /** int *__errno_location(void) */
  __errno_location: { parameters: [], result: "pointer" },
  /** char *strerror(int errnum) */
  strerror: { parameters: ["i32" /* int errnum */], result: "pointer" },

  // Running a child process (ffi/spawn.ts); opaque C structs travel as buffers of ample size.
  /** int memfd_create(const char *name, unsigned int flags) */
  memfd_create: {
    parameters: ["buffer", /* const char *name */ "u32" /* unsigned int flags */],
    result: "i32",
  },
  /** ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) */
  pwrite: {
    parameters: [
      "i32", /* int fd */
      "buffer", /* const void *buf */
      "usize", /* size_t count */
      "i64", /* off_t offset */
    ],
    result: "isize",
  },
  /**
   * int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *file_actions,
   *                 const posix_spawnattr_t *attrp, char *const argv[], char *const envp[])
   */
  posix_spawn: {
    parameters: [
      "buffer", /* pid_t *pid */
      "buffer", /* const char *path */
      "buffer", /* const posix_spawn_file_actions_t *file_actions */
      "buffer", /* const posix_spawnattr_t *attrp */
      "buffer", /* char *const argv[] */
      "buffer", /* char *const envp[] */
    ],
    result: "i32",
  },
  /** int posix_spawn_file_actions_init(posix_spawn_file_actions_t *fa) */
  posix_spawn_file_actions_init: {
    parameters: ["buffer" /* posix_spawn_file_actions_t *fa */],
    result: "i32",
  },
  /** int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd) */
  posix_spawn_file_actions_adddup2: {
    parameters: ["buffer", /* posix_spawn_file_actions_t *fa */ "i32", /* int fd */ "i32" /* int newfd */],
    result: "i32",
  },
  /** int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *fa) */
  posix_spawn_file_actions_destroy: {
    parameters: ["buffer" /* posix_spawn_file_actions_t *fa */],
    result: "i32",
  },
  /** int posix_spawnattr_init(posix_spawnattr_t *attr) */
  posix_spawnattr_init: { parameters: ["buffer" /* posix_spawnattr_t *attr */], result: "i32" },
  /** int posix_spawnattr_setflags(posix_spawnattr_t *attr, short flags) */
  posix_spawnattr_setflags: {
    parameters: ["buffer", /* posix_spawnattr_t *attr */ "i16" /* short flags */],
    result: "i32",
  },
  /** int posix_spawnattr_setpgroup(posix_spawnattr_t *attr, pid_t pgroup) */
  posix_spawnattr_setpgroup: {
    parameters: ["buffer", /* posix_spawnattr_t *attr */ "i32" /* pid_t pgroup */],
    result: "i32",
  },
  /** int posix_spawnattr_setsigmask(posix_spawnattr_t *attr, const sigset_t *sigmask) */
  posix_spawnattr_setsigmask: {
    parameters: ["buffer", /* posix_spawnattr_t *attr */ "buffer" /* const sigset_t *sigmask */],
    result: "i32",
  },
  /** int posix_spawnattr_setsigdefault(posix_spawnattr_t *attr, const sigset_t *sigdefault) */
  posix_spawnattr_setsigdefault: {
    parameters: ["buffer", /* posix_spawnattr_t *attr */ "buffer" /* const sigset_t *sigdefault */],
    result: "i32",
  },
  /** int posix_spawnattr_destroy(posix_spawnattr_t *attr) */
  posix_spawnattr_destroy: { parameters: ["buffer" /* posix_spawnattr_t *attr */], result: "i32" },
  /** pid_t waitpid(pid_t pid, int *wstatus, int options) */
  waitpid: {
    parameters: ["i32", /* pid_t pid */ "buffer", /* int *wstatus */ "i32" /* int options */],
    result: "i32",
  },
  /** int kill(pid_t pid, int sig) */
  kill: { parameters: ["i32", /* pid_t pid */ "i32" /* int sig */], result: "i32" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout) */
  poll: {
    parameters: ["buffer", /* struct pollfd *fds */ "u64", /* nfds_t nfds */ "i32" /* int timeout (ms) */],
    result: "i32",
  },
  /** long syscall(long number, ...): bound with two arguments, for pidfd_open (older glibc has no wrapper) */
  syscall: {
    parameters: ["i64", /* long number */ "i64", /* long arg1 */ "i64" /* long arg2 */],
    result: "i64",
  },
  /** int pipe2(int pipefd[2], int flags) */
  pipe2: { parameters: ["buffer", /* int pipefd[2] */ "i32" /* int flags */], result: "i32" },
  /** int prctl(int option, unsigned long arg2, ...): bound with one argument (PR_SET_CHILD_SUBREAPER) */
  prctl: { parameters: ["i32", /* int option */ "u64" /* unsigned long arg2 */], result: "i32" },
  /** int flock(int fd, int operation) */
  flock: { parameters: ["i32", /* int fd */ "i32" /* int operation */], result: "i32" },
  /** int unlink(const char *path) */
  unlink: { parameters: ["buffer" /* const char *path */], result: "i32" },
  /** int stat(const char *path, struct stat *buf) (glibc 2.33+ exports it); follows /proc/PID/fd links */
  stat: { parameters: ["buffer", /* const char *path */ "buffer" /* struct stat *buf */], result: "i32" },
  /** DIR *opendir(const char *name): for /proc, which Deno's readDir refuses */
  opendir: { parameters: ["buffer" /* const char *name */], result: "pointer" },
  /** struct dirent *readdir(DIR *dirp) */
  readdir: { parameters: ["pointer" /* DIR *dirp */], result: "pointer" },
  /** int closedir(DIR *dirp) */
  closedir: { parameters: ["pointer" /* DIR *dirp */], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * libc, bound symbol by symbol on first use: the one table for every module of ffi/ that calls libc
 * directly (the typed helpers below, the child processes of ffi/spawn.ts, the locks of ffi/lock.ts).
 */
export const libc = lazyLibrary(LIBC, LIBC_SYMBOLS, LIBC_HINT);

/** The same table as {@link libc}, under the name ffi/spawn.ts imports. */
export const spawnSyms = (): typeof libc => libc;
/** The same table as {@link libc}, under the name ffi/spawn.ts imports. */
export const processSyms = (): typeof libc => libc;

/** errno values (asm-generic/errno-base.h and errno.h, the same on x86_64 and arm64) the callers use. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  ECHILD: 10,
  /** Also EWOULDBLOCK: a non-blocking flock(2) on a held lock. */
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ERANGE: 34,
  ENOSYS: 38,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRNOTAVAIL: 99,
} as const;

/** SIGKILL (asm-generic/signal.h, the same on x86_64 and arm64). */
export const SIGKILL = 9;

/** open(2) flags. */
export const O_RDONLY = 0;
/** open(2) flags. */
const O_WRONLY = 1;
/** open(2) flags (the same value on x86_64 and arm64): open returns at once even on a FIFO. */
export const O_NONBLOCK = 0o4000;
/** open(2) flags (the same value on x86_64 and arm64): a descriptor that only names the file, opens anything. */
export const O_PATH = 0o10000000;
/** Set on every descriptor so that plugins run as children do not inherit them. */
export const O_CLOEXEC = 0o2000000;
/** open(2) flags (the same value on x86_64 and arm64). */
export const O_RDWR = 2;
/** open(2) flags (the same value on x86_64 and arm64). */
export const O_CREAT = 0o100;
/** open(2) flags (the same value on x86_64 and arm64). */
const O_APPEND = 0o2000;
const ARM64 = Deno.build.arch === "aarch64";
/**
 * open(2) flags: fail with ELOOP on a symlink in the last component. Differs by architecture:
 * include/uapi/asm-generic/fcntl.h (x86_64) and arch/arm64/include/uapi/asm/fcntl.h.
 */
export const O_NOFOLLOW = ARM64 ? 0o100000 : 0o400000;

/** A failed system call: code IoFailure unless a caller maps it to something more precise. */
export class SystemError extends CniError {
  /** The errno the call left behind. */
  readonly errno: number;
  constructor(what: string, errno: number, code: number = ErrorCode.IoFailure) {
    super(code, `${what}: ${strerror(errno)}`, `errno ${errno}`);
    this.name = "SystemError";
    this.errno = errno;
  }
}

let errnoView: Deno.UnsafePointerView | undefined;

/**
 * The calling thread's errno. Read right after the failing call: the location is per thread,
 * and every call here runs on the JS thread, so the cached view stays valid.
 */
export function errno(): number {
  if (!errnoView) {
    const p = libc.__errno_location();
    if (!p) return 0;
    errnoView = new Deno.UnsafePointerView(p);
  }
  return errnoView.getInt32();
}

/** The C library's text for an errno value, e.g. "Operation not supported". */
export function strerror(code: number): string {
  const p = libc.strerror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** open(2); throws SystemError naming the path. */
export function openFd(path: string, flags: number): number {
  const fd = libc.open(cString(path), flags | O_CLOEXEC, 0);
  if (fd < 0) throw new SystemError(`open ${path}`, errno());
  return fd;
}

/**
 * What open(2) of `path` answers: 0 when it opens (the descriptor is closed again at once), else the
 * errno, e.g. ENOENT for a path that does not exist and ENOENT or ESRCH for /proc/<pid>/... of a
 * process that is gone. Opened with O_PATH, so a FIFO does not block and no read permission is needed.
 * Through libc because Deno refuses /proc access without --allow-all.
 */
export function openErrno(path: string): number {
  const fd = libc.open(cString(path), O_PATH | O_CLOEXEC, 0);
  if (fd < 0) return errno();
  libc.close(fd);
  return 0;
}

/** A file's identity: the device and inode numbers fstat(2) reports; equal pairs mean the same file. */
export interface FileId {
  dev: bigint;
  ino: bigint;
}

/**
 * The identity of the file open at `fd`, by fstat(2). st_dev and st_ino are the first two 64-bit
 * fields of struct stat on x86_64 and on arm64 (the generic layout). Throws SystemError.
 */
export function fileId(fd: number): FileId {
  const st = new BigUint64Array(32); // 256 bytes: struct stat is 144 (x86_64) or 128 (arm64)
  if (libc.fstat(fd, st) < 0) throw new SystemError(`fstat fd ${fd}`, errno());
  return { dev: st[0]!, ino: st[1]! };
}

/**
 * The identity of what `path` leads to by stat(2), following symlinks (so /proc/PID/fd/N gives the file
 * open there); null when it cannot be reached. Through libc because Deno refuses /proc without --allow-all.
 */
export function fileIdAt(path: string): FileId | null {
  const st = new BigUint64Array(32); // as in fileId
  return libc.stat(cString(path), st) < 0 ? null : { dev: st[0]!, ino: st[1]! };
}

/** True when two identities name the same file. */
export function sameFile(a: FileId, b: FileId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** close(2); errors are ignored because nothing useful can follow a failed close of a read-only fd. */
export function closeFd(fd: number): void {
  libc.close(fd);
}

/** Reads a whole (small, procfs/sysfs style) file as text; null when it does not exist. */
export function readTextFile(path: string): string | null {
  const fd = libc.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    const e = errno();
    if (e === Errno.ENOENT) return null;
    throw new SystemError(`open ${path}`, e);
  }
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(4096);
      const n = Number(libc.read(fd, buf, BigInt(buf.length)));
      if (n < 0) throw new SystemError(`read ${path}`, errno());
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    const all = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    return decoder.decode(all);
  } finally {
    libc.close(fd);
  }
}

/**
 * Writes `text` to an existing file in one write(2), as procfs and sysfs expect (they parse
 * each write on its own). Throws SystemError naming the path.
 */
export function writeTextFile(path: string, text: string): void {
  const fd = libc.open(cString(path), O_WRONLY | O_CLOEXEC, 0);
  if (fd < 0) throw new SystemError(`open ${path}`, errno());
  try {
    const data = encoder.encode(text);
    const n = Number(libc.write(fd, data, BigInt(data.length)));
    if (n < 0) throw new SystemError(`write ${path}`, errno());
    if (n !== data.length) throw new SystemError(`write ${path}: short write`, Errno.EINVAL);
  } finally {
    libc.close(fd);
  }
}

/** setns(2) for the calling (JS) thread; throws SystemError. */
export function setns(fd: number, nstype: number, what: string): void {
  if (libc.setns(fd, nstype) < 0) throw new SystemError(what, errno());
}

/** An ioctl(2) that takes no argument; returns its result or -errno. */
export function ioctlNoArg(fd: number, request: number): number {
  const r = libc.ioctl(fd, BigInt(request));
  return r < 0 ? -errno() : r;
}

/** setsockopt(2) with an int value; returns 0 or -errno (callers decide whether it matters). */
export function setIntSockopt(fd: number, level: number, name: number, value: number): number {
  const v = new Int32Array([value]);
  const r = libc.setsockopt(fd, level, name, v, 4);
  return r < 0 ? -errno() : 0;
}

// Opening the plugin's own log file (lib/log.ts): without following a symlink, only a regular file.

/** struct stat: st_mode at 24 (x86_64) or 16 (arm64, the generic layout); st_size at 48 on both. */
const ST_MODE_OFFSET = ARM64 ? 16 : 24;
const ST_SIZE_OFFSET = 48;
const STAT_SIZE = 256;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** A file opened for appending, with what fstat(2) said of it. */
export interface AppendFile {
  fd: number;
  /** False for a FIFO, device, socket or directory: the caller must close it without writing. */
  regular: boolean;
  /** Bytes in the file when opened. */
  size: number;
}

/**
 * Opens `path` for appending without following a symlink in its last component, without blocking on a
 * FIFO, created with `mode` when absent. Returns -errno when open fails (ELOOP for a symlink, ENXIO for
 * a FIFO with no reader, EISDIR for a directory).
 */
export function openAppendNoFollow(path: string, mode: number): AppendFile | number {
  const fd = libc.open(
    cString(path),
    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
    mode,
  );
  if (fd < 0) return -errno();
  const st = new Uint8Array(STAT_SIZE);
  if (libc.fstat(fd, st) < 0) {
    const e = errno();
    libc.close(fd);
    return -e;
  }
  const view = new DataView(st.buffer);
  const regular = (view.getUint32(ST_MODE_OFFSET, true) & S_IFMT) === S_IFREG;
  return { fd, regular, size: Number(view.getBigInt64(ST_SIZE_OFFSET, true)) };
}

/** Writes all of `data` to `fd`; returns 0 or -errno. */
export function writeAllFd(fd: number, data: Uint8Array<ArrayBuffer>): number {
  for (let off = 0; off < data.length;) {
    const n = Number(libc.write(fd, data.subarray(off), BigInt(data.length - off)));
    if (n < 0) return -errno();
    off += n;
  }
  return 0;
}
