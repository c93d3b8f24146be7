/**
 * Running a child process to completion through libc's posix_spawn, synchronously, with a time limit.
 *
 * Why not Deno.Command: its first use in a process loads Deno's process, fetch-body, streams and
 * WebIDL scripts, and piped stdin adds a writable stream and an async write; together that cost each
 * plugin run about 5 to 10 ms and 4 to 6 MB (bench/README.md has the measurements). Here the child's
 * stdin, stdout and stderr are memfds: the input is in place before the child starts, the output can
 * never fill a pipe, and nothing waits for an end of file that a left-behind grandchild could withhold.
 * @module
 */

import { cString, Errno, errno, spawnSyms, SystemError } from "./libc.ts";

/** What to run. */
export interface ChildRequest {
  /** Absolute path of the executable (no PATH search). */
  path: string;
  /** argv[1..]; argv[0] is `path`. */
  args?: string[];
  /** The child's whole environment. */
  env: Record<string, string>;
  /** The child's stdin. */
  stdin: Uint8Array;
  /** After this long the child's process group is killed with SIGKILL. */
  timeoutMs: number;
}

/** How a child ended and what it printed. */
export interface ChildResult {
  /** Exit status, or 128 + the signal number when a signal ended it (as Deno reports it). */
  code: number;
  /** The name of the signal that ended the child ("SIGKILL"), or null when it exited. */
  signal: string | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** The time limit passed and the process group was killed. */
  timedOut: boolean;
}

const MFD_CLOEXEC = 1;
const POSIX_SPAWN_SETPGROUP = 0x02;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const SIGKILL = 9;
const SIGPIPE = 13;
const POLLIN = 1;
const WNOHANG = 1;
const SYS_PIDFD_OPEN = 434n; // the same number on x86_64 and aarch64
/** glibc's posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on 64-bit Linux. */
const OPAQUE_BYTES = 512;
/** sigset_t: 1024 bits. */
const SIGSET_BYTES = 128;

/** Signal names by number (Linux, x86_64 and aarch64), for messages such as "exited with signal SIGSEGV". */
const SIGNALS = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

/** A NULL-terminated `char *[]` of `strings`; `keep` holds the strings alive while C may read them. */
function cStringArray(strings: string[], keep: Uint8Array[]): BigUint64Array<ArrayBuffer> {
  const array = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    const bytes = cString(s);
    keep.push(bytes);
    array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
  });
  return array;
}

function memfd(name: string): number {
  const fd = spawnSyms().memfd_create(cString(name), MFD_CLOEXEC);
  if (fd < 0) throw new SystemError(`memfd_create ${name}`, errno());
  return fd;
}

/** Everything written to a memfd, read from offset 0 whatever the shared file offset is. */
function readAll(fd: number): Uint8Array {
  const s = spawnSyms();
  let buf = new Uint8Array(64 * 1024);
  let length = 0;
  for (;;) {
    if (length === buf.length) {
      const bigger = new Uint8Array(buf.length * 2);
      bigger.set(buf);
      buf = bigger;
    }
    const free = buf.subarray(length);
    const n = Number(s.pread(fd, free, BigInt(free.length), BigInt(length)));
    if (n < 0) throw new SystemError("read child output", errno());
    if (n === 0) return buf.subarray(0, length);
    length += n;
  }
}

/** Starts the child in its own process group, with SIGPIPE at its default and no signal blocked. */
function spawn(req: ChildRequest, fds: [number, number, number]): number {
  const s = spawnSyms();
  const actions = new Uint8Array(OPAQUE_BYTES);
  const attr = new Uint8Array(OPAQUE_BYTES);
  const check = (rc: number, what: string) => {
    if (rc !== 0) throw new SystemError(what, rc);
  };
  check(s.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
  try {
    // dup2 clears close-on-exec on the copies: the child gets exactly these three.
    fds.forEach((fd, target) => check(s.posix_spawn_file_actions_adddup2(actions, fd, target), "adddup2"));
    check(s.posix_spawnattr_init(attr), "posix_spawnattr_init");
    try {
      check(
        s.posix_spawnattr_setflags(
          attr,
          POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK,
        ),
        "posix_spawnattr_setflags",
      );
      check(s.posix_spawnattr_setpgroup(attr, 0), "posix_spawnattr_setpgroup");
      // Deno (Rust) ignores SIGPIPE, and an ignored signal stays ignored across exec: restore the default,
      // as Rust's own Command does, so the child behaves as it would started from a shell.
      const sigdefault = new Uint8Array(SIGSET_BYTES);
      sigdefault[(SIGPIPE - 1) >> 3] = 1 << ((SIGPIPE - 1) & 7);
      check(s.posix_spawnattr_setsigdefault(attr, sigdefault), "posix_spawnattr_setsigdefault");
      check(s.posix_spawnattr_setsigmask(attr, new Uint8Array(SIGSET_BYTES)), "posix_spawnattr_setsigmask");
      const keep: Uint8Array[] = [];
      const argv = cStringArray([req.path, ...(req.args ?? [])], keep);
      const envp = cStringArray(Object.entries(req.env).map(([k, v]) => `${k}=${v}`), keep);
      const pid = new Int32Array(1);
      check(s.posix_spawn(pid, cString(req.path), actions, attr, argv, envp), `posix_spawn ${req.path}`);
      return pid[0]!;
    } finally {
      s.posix_spawnattr_destroy(attr);
    }
  } finally {
    s.posix_spawn_file_actions_destroy(actions);
  }
}

/** Reaps `pid` (blocking) and returns its wait status. */
function reap(pid: number): number {
  const s = spawnSyms();
  const status = new Int32Array(1);
  for (;;) {
    if (s.waitpid(pid, status, 0) === pid) return status[0]!;
    if (errno() !== Errno.EINTR) throw new SystemError(`waitpid ${pid}`, errno());
  }
}

/**
 * Waits until `pid` exits and returns its wait status, or null when `timeoutMs` passes first (the child
 * is then not reaped). Blocks the JS thread in poll(2) on a pidfd (kernel 5.3+); on older kernels it
 * checks every 2 ms.
 */
function waitStatus(pid: number, timeoutMs: number): number | null {
  const s = spawnSyms();
  const deadline = performance.now() + timeoutMs;
  const pidfd = Number(s.syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n));
  if (pidfd < 0) {
    if (errno() !== Errno.ENOSYS) throw new SystemError("pidfd_open", errno());
    const status = new Int32Array(1);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      if (s.waitpid(pid, status, WNOHANG) === pid) return status[0]!;
      if (performance.now() >= deadline) return null;
      Atomics.wait(nap, 0, 0, 2);
    }
  }
  try {
    const pfd = new Int32Array([pidfd, POLLIN]); // struct pollfd { int fd; short events, revents; }
    for (;;) {
      const r = s.poll(pfd, 1n, Math.max(0, Math.ceil(deadline - performance.now())));
      if (r > 0) return reap(pid);
      if (r === 0) return null;
      if (errno() !== Errno.EINTR) throw new SystemError("poll pidfd", errno());
    }
  } finally {
    s.close(pidfd);
  }
}

/**
 * Runs `req` to completion (synchronously: the JS thread waits) and returns its exit status and
 * output. The child runs in a new process group; when the time limit passes the whole group is killed
 * with SIGKILL, so that nothing it started outlives it. Throws SystemError when it cannot be started
 * (e.g. ENOENT, EACCES from exec).
 */
export function runChild(req: ChildRequest): ChildResult {
  const s = spawnSyms();
  const fds: number[] = [];
  try {
    for (const name of ["stdin", "stdout", "stderr"]) fds.push(memfd(name));
    // pwrite leaves the shared file offset at 0, where the child starts reading.
    const n = Number(s.pwrite(fds[0]!, req.stdin, BigInt(req.stdin.length), 0n));
    if (n !== req.stdin.length) throw new SystemError("write child stdin", n < 0 ? errno() : Errno.EINVAL);
    const pid = spawn(req, fds as [number, number, number]);
    let status = waitStatus(pid, req.timeoutMs);
    const timedOut = status === null;
    if (status === null) {
      s.kill(-pid, SIGKILL); // ESRCH: the group is gone already
      status = reap(pid);
    }
    const sig = status & 0x7f;
    return {
      code: sig === 0 ? (status >> 8) & 0xff : 128 + sig,
      signal: sig === 0 ? null : (SIGNALS[sig] ?? `signal ${sig}`),
      stdout: readAll(fds[1]!),
      stderr: readAll(fds[2]!),
      timedOut,
    };
  } finally {
    for (const fd of fds) s.close(fd);
  }
}
