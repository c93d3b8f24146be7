/**
 * Running a child process to completion through libc's posix_spawn, synchronously, with a time limit.
 *
 * Why not Deno.Command: its first use in a process loads Deno's process, fetch-body, streams and
 * WebIDL scripts, and piped stdin adds a writable stream and an async write; together that cost each
 * plugin run about 5 to 10 ms and 4 to 6 MB (bench/README.md has the measurements). Here the child's
 * stdin is a memfd, in place before the child starts; stdout and stderr are pipes read while the child
 * runs, keeping at most a limit of each (the rest is read and dropped, so memory stays bounded whatever
 * the child prints): the start of stdout, the start and the end of stderr, where a failing program says
 * why last. Nothing waits for an end of file that a left-behind grandchild could withhold: once
 * the child has exited, what is already in the pipes is read and the run is over.
 * @module
 */

import {
  cString,
  Errno,
  errno,
  O_CLOEXEC,
  processSyms,
  readTextFile,
  spawnSyms,
  SystemError,
} from "./libc.ts";

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
  /** Descriptors the child inherits under the same numbers (e.g. a held lock); all others are closed. */
  inheritFds?: number[];
  /** Bytes of stdout kept (default 4 MiB); more sets `stdoutTruncated`. */
  stdoutLimit?: number;
  /**
   * Bytes of stderr kept (default 64 KiB): of more, the first quarter and the last three quarters, with a
   * marker line between ({@link omittedMarker}); more sets `stderrTruncated`.
   */
  stderrLimit?: number;
  /**
   * When the run ends (exit or time limit), kill every process the child started that is still running,
   * including those that left its process group or session. Makes this process a child subreaper
   * (prctl PR_SET_CHILD_SUBREAPER) for the rest of its life, so that orphans of the child are reparented
   * here and can be found: only for a process that starts no children other than through runChild.
   */
  killDescendants?: boolean;
}

/** How a child ended and what it printed. */
export interface ChildResult {
  /** Exit status, or 128 + the signal number when a signal ended it (as Deno reports it). */
  code: number;
  /** The name of the signal that ended the child ("SIGKILL"), or null when it exited. */
  signal: string | null;
  /** The first `stdoutLimit` bytes of stdout. */
  stdout: Uint8Array;
  /** All of stderr, or when it was longer than `stderrLimit` its start, a marker line, and its end. */
  stderr: Uint8Array;
  /** The child printed more than `stdoutLimit` bytes on stdout. */
  stdoutTruncated: boolean;
  /** The child printed more than `stderrLimit` bytes on stderr. */
  stderrTruncated: boolean;
  /** Bytes of stderr left out between its start and its end (0 when none). */
  stderrOmitted: number;
  /** The time limit passed and the process group was killed. */
  timedOut: boolean;
  /** Processes started by the child that were still running when it ended and were killed. */
  descendantsKilled: number;
}

/** Default of ChildRequest.stdoutLimit: far above any CNI result. */
export const DEFAULT_STDOUT_LIMIT = 4 << 20;
/** Default of ChildRequest.stderrLimit. */
export const DEFAULT_STDERR_LIMIT = 64 << 10;

const MFD_CLOEXEC = 1;
const POSIX_SPAWN_SETPGROUP = 0x02;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const SIGKILL = 9;
const SIGPIPE = 13;
const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const WNOHANG = 1;
const PR_SET_CHILD_SUBREAPER = 36;
const SYS_PIDFD_OPEN = 434n; // the same number on x86_64 and aarch64
/** glibc's posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on 64-bit Linux. */
const OPAQUE_BYTES = 512;
/** sigset_t: 1024 bits. */
const SIGSET_BYTES = 128;
/** One read(2) from an output pipe: the size of a default pipe buffer. */
const READ_CHUNK = 64 * 1024;
/** Reads from the pipes once the child has ended: a default pipe buffer is 16 pages, one read each. */
const DRAIN_READS = 64;
/** Rounds of "kill the orphans, collect their orphans" before giving up on a child that keeps forking. */
const KILL_ROUNDS = 1000;

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

/** A pipe as [read end, write end], both close-on-exec (the child gets the write end through dup2). */
function pipe(): [number, number] {
  const ends = new Int32Array(2);
  if (processSyms().pipe2(ends, O_CLOEXEC) < 0) throw new SystemError("pipe2", errno());
  return [ends[0]!, ends[1]!];
}

/** The line put where `omitted` bytes of output were left out between the start kept and the end kept. */
export function omittedMarker(omitted: number): string {
  return `[... ${omitted} bytes omitted ...]\n`;
}

const encoder = new TextEncoder();

/**
 * What is read from one output pipe: of at most `limit` bytes kept, the last `tailLimit` are the end of the
 * output and the others its start; what lies between is counted and dropped.
 */
class Capture {
  readonly fd: number;
  readonly #headLimit: number;
  readonly #tailLimit: number;
  readonly #head: Uint8Array[] = [];
  #headKept = 0;
  readonly #tail: Uint8Array[] = [];
  #tailKept = 0;
  #total = 0;
  /** The writers all closed their ends. */
  eof = false;

  constructor(fd: number, limit: number, tailLimit = 0) {
    this.fd = fd;
    this.#tailLimit = Math.min(tailLimit, limit);
    this.#headLimit = limit - this.#tailLimit;
  }

  /** One read(2), for when poll said the pipe is readable (so it does not block). */
  readOnce(buf: Uint8Array): void {
    const n = Number(processSyms().read(this.fd, buf, BigInt(buf.length)));
    if (n < 0) {
      if (errno() === Errno.EINTR) return;
      throw new SystemError("read child output", errno());
    }
    if (n === 0) {
      this.eof = true;
      return;
    }
    this.#total += n;
    let data = buf.subarray(0, n);
    const room = this.#headLimit - this.#headKept;
    if (room > 0) {
      const take = Math.min(room, data.length);
      this.#head.push(data.slice(0, take));
      this.#headKept += take;
      data = data.subarray(take);
    }
    if (data.length > 0 && this.#tailLimit > 0) this.#keepTail(data);
  }

  /** Appends `data` to the end kept, dropping its oldest bytes beyond `tailLimit`. */
  #keepTail(data: Uint8Array): void {
    const piece = data.slice(Math.max(0, data.length - this.#tailLimit));
    this.#tail.push(piece);
    this.#tailKept += piece.length;
    while (this.#tailKept > this.#tailLimit) {
      const first = this.#tail[0]!;
      const excess = this.#tailKept - this.#tailLimit;
      if (first.length <= excess) {
        this.#tail.shift();
        this.#tailKept -= first.length;
      } else {
        this.#tail[0] = first.subarray(excess);
        this.#tailKept -= excess;
      }
    }
  }

  /** Bytes read and not kept. */
  get omitted(): number {
    return this.#total - this.#headKept - this.#tailKept;
  }

  get truncated(): boolean {
    return this.omitted > 0;
  }

  /** What was kept: the start, then (when something was left out) {@link omittedMarker}, then the end. */
  bytes(): Uint8Array {
    const parts = [...this.#head];
    if (this.omitted > 0 && this.#tailLimit > 0) {
      const last = this.#head.at(-1);
      const newline = last === undefined || last.at(-1) === 0x0a ? "" : "\n";
      parts.push(encoder.encode(newline + omittedMarker(this.omitted)));
    }
    parts.push(...this.#tail);
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const c of parts) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  }
}

/**
 * Starts the child in its own process group, with SIGPIPE at its default and no signal blocked; `fds`
 * become its 0, 1 and 2, and each of `inherit` stays open under its own number.
 */
function spawn(req: ChildRequest, fds: [number, number, number], inherit: number[]): number {
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
    // dup2 of a descriptor onto itself clears its close-on-exec flag (glibc 2.29+): inherited as it is.
    for (const fd of inherit) check(s.posix_spawn_file_actions_adddup2(actions, fd, fd), "adddup2");
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
 * poll(2) on `fds` (events POLLIN; -1 entries are skipped) for at most `timeoutMs`; returns each entry's
 * revents, all 0 when the time passed.
 */
function pollIn(fds: number[], timeoutMs: number): number[] {
  const s = spawnSyms();
  // struct pollfd { int fd; short events, revents; }: 8 bytes each.
  const pfd = new Int32Array(fds.length * 2);
  fds.forEach((fd, i) => {
    pfd[i * 2] = fd;
    pfd[i * 2 + 1] = POLLIN;
  });
  for (;;) {
    const r = s.poll(pfd, BigInt(fds.length), Math.max(0, Math.ceil(timeoutMs)));
    if (r >= 0) return fds.map((_, i) => (pfd[i * 2 + 1]! >>> 16) & 0xffff);
    if (errno() !== Errno.EINTR) throw new SystemError("poll", errno());
  }
}

/** Reads whatever `outputs` have ready now (poll says so), without waiting; true when something was read. */
function readReady(outputs: Capture[], buf: Uint8Array, timeoutMs: number): boolean {
  const open = outputs.filter((o) => !o.eof);
  if (open.length === 0) return false;
  const ready = pollIn(open.map((o) => o.fd), timeoutMs);
  let any = false;
  open.forEach((o, i) => {
    if (ready[i]! & (POLLIN | POLLHUP | POLLERR)) {
      o.readOnce(buf);
      any = true;
    }
  });
  return any;
}

/**
 * Waits until `pid` exits, reading `outputs` meanwhile, and returns its wait status, or null when
 * `timeoutMs` passes first (the child is then not reaped). Blocks the JS thread in poll(2) on a pidfd
 * (kernel 5.3+) and the pipes; on older kernels it checks for the exit every 2 ms.
 */
function waitStatus(pid: number, timeoutMs: number, outputs: Capture[]): number | null {
  const s = spawnSyms();
  const deadline = performance.now() + timeoutMs;
  const buf = new Uint8Array(READ_CHUNK);
  const pidfd = Number(s.syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n));
  if (pidfd < 0) {
    if (errno() !== Errno.ENOSYS) throw new SystemError("pidfd_open", errno());
    const status = new Int32Array(1);
    for (;;) {
      if (s.waitpid(pid, status, WNOHANG) === pid) return status[0]!;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      if (!readReady(outputs, buf, Math.min(2, left))) {
        // Every pipe at end of file: only the exit is left to wait for.
        if (outputs.every((o) => o.eof)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      }
    }
  }
  try {
    for (;;) {
      const open = outputs.filter((o) => !o.eof);
      const left = deadline - performance.now();
      if (left <= 0) return null;
      const ready = pollIn([pidfd, ...open.map((o) => o.fd)], left);
      open.forEach((o, i) => {
        if (ready[i + 1]! & (POLLIN | POLLHUP | POLLERR)) o.readOnce(buf);
      });
      if (ready[0]! & POLLIN) return reap(pid);
    }
  } finally {
    s.close(pidfd);
  }
}

/**
 * Reads what the child wrote before it ended, without waiting: at most a few pipe buffers, so that a
 * process outside its tree that keeps writing into an inherited pipe cannot hold the run open.
 */
function drain(outputs: Capture[]): void {
  const buf = new Uint8Array(READ_CHUNK);
  for (let i = 0; i < DRAIN_READS && readReady(outputs, buf, 0); i++) { /* until no pipe has data */ }
}

let subreaper = false;

/** Makes this process the parent of every orphan among its descendants (prctl PR_SET_CHILD_SUBREAPER). */
function becomeSubreaper(): void {
  if (subreaper) return;
  if (processSyms().prctl(PR_SET_CHILD_SUBREAPER, 1n) < 0) throw new SystemError("prctl", errno());
  subreaper = true;
}

/**
 * The children of this process: those of the calling thread and of the main thread (orphans are
 * reparented to a subreaper's first live thread, the main one). Linux 3.5+ with CONFIG_PROC_CHILDREN,
 * which Debian, RHEL and Ubuntu kernels set.
 */
function children(): Set<number> {
  const found = new Set<number>();
  for (const path of ["/proc/thread-self/children", `/proc/self/task/${Deno.pid}/children`]) {
    for (const pid of (readTextFile(path) ?? "").split(" ")) if (pid.trim() !== "") found.add(Number(pid));
  }
  return found;
}

/**
 * Kills every child of this process that is not in `before`, reaps it, and repeats with the orphans that
 * reparents here, until none is left: every descendant of a child that has ended, whatever its process
 * group or session. Returns how many were killed.
 */
function killNewChildren(before: Set<number>): number {
  const s = spawnSyms();
  let killed = 0;
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const fresh = [...children()].filter((pid) => !before.has(pid));
    if (fresh.length === 0) return killed;
    for (const pid of fresh) s.kill(pid, SIGKILL);
    for (const pid of fresh) reap(pid);
    killed += fresh.length;
  }
  return killed;
}

/**
 * Runs `req` to completion (synchronously: the JS thread waits) and returns its exit status and
 * output. The child runs in a new process group; when the time limit passes the whole group is killed
 * with SIGKILL, and with `killDescendants` every process it started, wherever it went. At most the
 * limits of stdout and stderr are kept, however much the child prints. Throws SystemError when it cannot
 * be started (e.g. ENOENT, EACCES from exec).
 */
export function runChild(req: ChildRequest): ChildResult {
  const s = spawnSyms();
  const fds: number[] = [];
  try {
    const stdin = memfd("stdin");
    fds.push(stdin);
    // pwrite leaves the shared file offset at 0, where the child starts reading.
    const n = Number(s.pwrite(stdin, req.stdin, BigInt(req.stdin.length), 0n));
    if (n !== req.stdin.length) throw new SystemError("write child stdin", n < 0 ? errno() : Errno.EINVAL);
    const [outR, outW] = pipe();
    fds.push(outR, outW);
    const [errR, errW] = pipe();
    fds.push(errR, errW);
    const stderrLimit = req.stderrLimit ?? DEFAULT_STDERR_LIMIT;
    const outputs = [
      new Capture(outR, req.stdoutLimit ?? DEFAULT_STDOUT_LIMIT),
      new Capture(errR, stderrLimit, stderrLimit - Math.floor(stderrLimit / 4)),
    ];
    let before: Set<number> | null = null;
    if (req.killDescendants) {
      becomeSubreaper();
      before = children();
    }
    const pid = spawn(req, [stdin, outW, errW], req.inheritFds ?? []);
    // Only the child holds the write ends now: end of file comes when it (and what it started) closes them.
    s.close(outW);
    s.close(errW);
    fds.splice(fds.indexOf(outW), 1);
    fds.splice(fds.indexOf(errW), 1);
    let status = waitStatus(pid, req.timeoutMs, outputs);
    const timedOut = status === null;
    if (status === null) {
      s.kill(-pid, SIGKILL); // ESRCH: the group is gone already
      status = reap(pid);
    }
    const descendantsKilled = before === null ? 0 : killNewChildren(before);
    drain(outputs);
    const sig = status & 0x7f;
    const [out, err] = outputs as [Capture, Capture];
    return {
      code: sig === 0 ? (status >> 8) & 0xff : 128 + sig,
      signal: sig === 0 ? null : (SIGNALS[sig] ?? `signal ${sig}`),
      stdout: out.bytes(),
      stderr: err.bytes(),
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      stderrOmitted: err.omitted,
      timedOut,
      descendantsKilled,
    };
  } finally {
    for (const fd of fds) s.close(fd);
  }
}
