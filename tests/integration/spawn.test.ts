/**
 * ffi/spawn.ts: the posix_spawn runner the plugin executes IPAM plugins with. Real processes; the IPAM
 * behaviours built on it (exit codes, signals, timeouts of a whole process group) are covered end to end
 * in tests/faults.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { runChild } from "../../ffi/spawn.ts";
import { SystemError } from "../../ffi/libc.ts";
import { assertIpamGroupGone } from "../faults/harness.ts";
import { AttachmentLock } from "../../ffi/lock.ts";

const decoder = new TextDecoder();
const SH = "/bin/sh";

Deno.test("runChild hands stdin over whole and returns stdout, larger than a pipe holds, byte for byte", () => {
  const input = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
  const r = runChild({ path: "/bin/cat", env: {}, stdin: input, timeoutMs: 10_000 });
  assertEquals(r.code, 0);
  assertEquals(r.signal, null);
  assertEquals(r.timedOut, false);
  assertEquals(r.stdout, input);
  assertEquals(r.stderr.length, 0);
});

Deno.test("runChild passes exactly the given environment and keeps stderr apart", () => {
  const r = runChild({
    path: SH,
    args: ["-c", 'echo "$CNI_COMMAND:$HOME"; echo oops >&2; exit 3'],
    env: { CNI_COMMAND: "ADD" },
    stdin: new Uint8Array(),
    timeoutMs: 10_000,
  });
  assertEquals(r.code, 3);
  assertEquals(decoder.decode(r.stdout), "ADD:\n");
  assertEquals(decoder.decode(r.stderr), "oops\n");
});

Deno.test("runChild names the signal that ended the child, and SIGPIPE is not ignored in it", () => {
  const r = runChild({
    path: SH,
    args: ["-c", "kill -SEGV $$"],
    env: {},
    stdin: new Uint8Array(),
    timeoutMs: 10_000,
  });
  assertEquals(r.signal, "SIGSEGV");
  assertEquals(r.code, 128 + 11);
  // Deno ignores SIGPIPE itself; the child must start with it at the default (SigIgn bit 13 clear).
  const t = runChild({
    path: SH,
    args: ["-c", "grep SigIgn /proc/$$/status"],
    env: { PATH: "/usr/bin:/bin" },
    stdin: new Uint8Array(),
    timeoutMs: 10_000,
  });
  const ignored = BigInt(`0x${decoder.decode(t.stdout).split(":")[1]!.trim()}`);
  assertEquals(ignored & (1n << 12n), 0n, decoder.decode(t.stdout));
});

Deno.test("runChild kills the child's whole process group when the time limit passes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ipoib-spawn-" });
  try {
    const pidFile = `${dir}/pid`;
    const start = performance.now();
    const r = runChild({
      path: SH,
      args: ["-c", `echo $$ > ${pidFile}; sleep 600 & sleep 600`],
      env: { PATH: "/usr/bin:/bin" },
      stdin: new Uint8Array(),
      timeoutMs: 300,
    });
    assert(performance.now() - start < 5_000);
    assertEquals(r.timedOut, true);
    assertEquals(r.signal, "SIGKILL");
    await assertIpamGroupGone(pidFile); // the background sleep went with the shell
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runChild throws SystemError for an executable that does not exist", () => {
  const e = assertThrows(
    () => runChild({ path: "/nonexistent/ipam", env: {}, stdin: new Uint8Array(), timeoutMs: 1_000 }),
    SystemError,
  ) as SystemError;
  assertEquals(e.errno, 2);
});

Deno.test("runChild keeps at most the limits of stdout and stderr, reading the rest so the child finishes", () => {
  const r = runChild({
    path: SH,
    args: ["-c", "head -c 10000000 /dev/zero; head -c 3000000 /dev/zero >&2; echo done >&2"],
    env: { PATH: "/usr/bin:/bin" },
    stdin: new Uint8Array(),
    timeoutMs: 30_000,
    stdoutLimit: 1 << 20,
    stderrLimit: 1000,
  });
  assertEquals(r.code, 0, "the child was not blocked by a full pipe");
  assertEquals(r.stdout.length, 1 << 20);
  assertEquals(r.stdoutTruncated, true);
  // Changed on purpose: stderr keeps its start (a quarter) and its end (where "done" is), not its first 1000.
  const marker = `\n[... ${3000005 - 1000} bytes omitted ...]\n`;
  assertEquals(decoder.decode(r.stderr), "\0".repeat(250) + marker + "\0".repeat(745) + "done\n");
  assertEquals(r.stderrTruncated, true);
  assertEquals(r.stderrOmitted, 3000005 - 1000);
  const small = runChild({
    path: SH,
    args: ["-c", "printf abc"],
    env: {},
    stdin: new Uint8Array(),
    timeoutMs: 10_000,
  });
  assertEquals([decoder.decode(small.stdout), small.stdoutTruncated, small.stderrTruncated], [
    "abc",
    false,
    false,
  ]);
});

Deno.test("runChild: a child that reopens /dev/stderr is heard, and one leaving a writer behind is not waited for", () => {
  const r = runChild({
    path: SH,
    args: ["-c", "echo to-dev-stderr > /dev/stderr; (sleep 3; echo late) & echo quick"],
    env: { PATH: "/usr/bin:/bin" },
    stdin: new Uint8Array(),
    timeoutMs: 10_000,
  });
  assertEquals(decoder.decode(r.stderr), "to-dev-stderr\n");
  assertEquals(decoder.decode(r.stdout), "quick\n");
  assertEquals(r.timedOut, false);
});

Deno.test("runChild passes inheritFds under their own numbers and no other descriptor", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ipoib-spawn-" });
  const lock = await AttachmentLock.acquire("ctr", "ib1", 1_000, { dir });
  const other = await AttachmentLock.acquire("ctr", "ib2", 1_000, { dir });
  try {
    const r = runChild({
      path: SH,
      args: ["-c", `ls /proc/$$/fd | sort -n | tr '\\n' ' '`],
      env: { PATH: "/usr/bin:/bin" },
      stdin: new Uint8Array(),
      timeoutMs: 10_000,
      inheritFds: [lock.fd],
    });
    // The shell's own descriptors (sh lists its own, /proc/$$): 0-2, the inherited one, and any the shell
    // opens for itself (dash keeps one at 10), never the other lock.
    const fds = decoder.decode(r.stdout).trim().split(" ").map(Number);
    for (const fd of [0, 1, 2, lock.fd]) assert(fds.includes(fd), `descriptor ${fd} missing from ${fds}`);
    assert(!fds.includes(other.fd), `descriptor ${other.fd} (close-on-exec) inherited: ${fds}`);
  } finally {
    lock.release();
    other.release();
    await Deno.remove(dir, { recursive: true });
  }
});
