/**
 * ffi/lock.ts: the per-attachment lock, on real files with flock(2), in a temporary directory. The plugin-level
 * behaviour (a killed ADD's IPAM plugin holding off DEL) is in tests/faults/attachment_lock.test.ts.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { AttachmentLock } from "../../ffi/lock.ts";
import { attachmentMark } from "../../lib/mark.ts";
import { runChild } from "../../ffi/spawn.ts";
import { CniError } from "../../lib/errors.ts";
import { exists } from "../../support/fs.ts";
import { lockFileName, processesHolding } from "../../support/locks.ts";

const TRY_AGAIN_LATER = 11;

async function withLockDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ipoib-lock-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("lock file names are hashes: no id or name can form a path; distinct per attachment", async () => {
  await withLockDir(async (dir) => {
    /** The one file a held lock of the attachment puts in `dir`. */
    const fileOf = async (network: string, containerId: string, ifname: string) => {
      const lock = await AttachmentLock.acquire(network, containerId, ifname, 1_000, { dir });
      try {
        const names = [...Deno.readDirSync(dir)].map((e) => e.name);
        assertEquals(names.length, 1, names.join(", "));
        assertEquals(lock.path, `${dir}/${names[0]}`);
        return names[0]!;
      } finally {
        lock.release();
      }
    };
    const a = await fileOf("net", "../../etc/passwd", "ib1");
    assertMatch(a, /^[0-9a-f]{32}\.lock$/);
    // The name is the documented hash of the attachment's mark.
    assertEquals(a, await lockFileName("net", "../../etc/passwd", "ib1"));
    assertEquals(await fileOf("net", "../../etc/passwd", "ib1"), a);
    const others = [["net2", "../../etc/passwd", "ib1"], ["net", "x", "ib1"], [
      "net",
      "../../etc/passwd",
      "ib2",
    ]];
    for (const [n, c, i] of others) assert(a !== await fileOf(n!, c!, i!));
    // The separator keeps ("a", "bc") and ("ab", "c") apart.
    assert(await fileOf("n", "a", "bc") !== await fileOf("n", "ab", "c"));
  });
});

Deno.test("a held lock makes another acquire of the attachment fail with code 11 after the wait", async () => {
  await withLockDir(async (dir) => {
    const held = await AttachmentLock.acquire("net", "ctr", "ib1", 1_000, { dir });
    try {
      const e = await assertRejects(
        () => AttachmentLock.acquire("net", "ctr", "ib1", 200, { dir }),
        CniError,
      );
      assertEquals(e.code, TRY_AGAIN_LATER);
      assertMatch(e.message, /^another operation on this attachment is still running after 0 s$/);
      // Another attachment is not held up.
      (await AttachmentLock.acquire("net", "ctr", "ib2", 200, { dir })).release();
    } finally {
      held.release(false);
    }
    (await AttachmentLock.acquire("net", "ctr", "ib1", 200, { dir })).release();
  });
});

Deno.test("release() removes the file, release(false) keeps it; the next acquire makes a new one", async () => {
  await withLockDir(async (dir) => {
    const lock = await AttachmentLock.acquire("net", "ctr", "ib1", 1_000, { dir });
    assert(exists(lock.path));
    lock.release();
    assert(!exists(lock.path));
    const again = await AttachmentLock.acquire("net", "ctr", "ib1", 1_000, { dir });
    assert(exists(again.path));
    again.release(false);
    assert(exists(again.path));
  });
});

Deno.test("a child that inherited the lock holds it after the parent released it, until it ends", async () => {
  await withLockDir(async (dir) => {
    const lock = await AttachmentLock.acquire("net", "ctr", "ib1", 1_000, { dir });
    const marker = `${dir}/done`;
    // The child leaves a process behind that keeps the inherited descriptor for a while.
    const r = runChild({
      path: "/bin/sh",
      args: ["-c", `(sleep 1; touch ${marker}) </dev/null >/dev/null 2>&1 &`],
      env: { PATH: "/usr/bin:/bin" },
      stdin: new Uint8Array(),
      timeoutMs: 10_000,
      inheritFds: [lock.fd],
    });
    assertEquals(r.code, 0);
    lock.release(false); // as a killed plugin does: it never gets to remove the file
    const e = await assertRejects(() => AttachmentLock.acquire("net", "ctr", "ib1", 100, { dir }), CniError);
    assertEquals(e.code, TRY_AGAIN_LATER);
    const later = await AttachmentLock.acquire("net", "ctr", "ib1", 10_000, { dir });
    assert(exists(marker), "acquired only once the process holding the inherited descriptor ended");
    later.release();
  });
});

Deno.test("a waiter on a file that its holder removes starts over on the current file (no unlink race)", async () => {
  await withLockDir(async (dir) => {
    // A process holds the lock and removes the file on release, as DEL does, while this one waits.
    const script = `
      import { AttachmentLock } from "${new URL("../../ffi/lock.ts", import.meta.url).href}";
      const lock = await AttachmentLock.acquire("net", "ctr", "ib1", 1000, { dir: ${JSON.stringify(dir)} });
      console.log("held");
      await new Promise((r) => setTimeout(r, 500));
      lock.release();
    `;
    const holder = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = holder.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assertEquals(first.trim(), "held");
    const path = `${dir}/${await lockFileName("net", "ctr", "ib1")}`;
    const waiter = await AttachmentLock.acquire("net", "ctr", "ib1", 10_000, { dir });
    reader.releaseLock();
    assertEquals((await holder.output()).code, 0);
    try {
      // The waiter holds the file that is at the path now, not the removed one it may have opened first.
      assert(exists(path));
      const e = await assertRejects(
        () => AttachmentLock.acquire("net", "ctr", "ib1", 100, { dir }),
        CniError,
      );
      assertEquals(e.code, TRY_AGAIN_LATER, "a third party sees the waiter's lock");
    } finally {
      waiter.release();
    }
  });
});

Deno.test("with killHolders, whatever still holds the lock after the wait is killed and the lock taken", async () => {
  await withLockDir(async (dir) => {
    const lock = await AttachmentLock.acquire("net", "ctr", "ib1", 1_000, { dir });
    const pidFile = `${dir}/holder`;
    // Leaves a process behind that would hold the inherited descriptor for ten minutes.
    runChild({
      path: "/bin/sh",
      args: ["-c", `sleep 600 </dev/null >/dev/null 2>&1 & echo $! > ${pidFile}`],
      env: { PATH: "/usr/bin:/bin" },
      stdin: new Uint8Array(),
      timeoutMs: 10_000,
      inheritFds: [lock.fd],
    });
    lock.release(false); // as a killed plugin does
    const holder = Number(await Deno.readTextFile(pidFile));
    assertEquals(processesHolding(lock.path), [holder]);
    let heard: number[] = [];
    const taken = await AttachmentLock.acquire("net", "ctr", "ib1", 200, {
      dir,
      killHolders: true,
      onKilled: (pids) => heard = pids,
    });
    try {
      assertEquals(heard, [holder]);
      assertEquals(processesHolding(lock.path), []);
    } finally {
      taken.release();
    }
  });
});

Deno.test("tryAcquireMark: the lock of a child's mark, taken without waiting; null while an ADD holds it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ipoib-lock-" });
  try {
    const mark = await attachmentMark("net", "ctr", "ib1");
    const held = await AttachmentLock.acquire("net", "ctr", "ib1", 1_000, { dir });
    // The mark leads to the same file as the attachment it names.
    assertEquals(held.path, `${dir}/${await lockFileName("net", "ctr", "ib1")}`);
    assertEquals(await AttachmentLock.tryAcquireMark(mark, { dir }), null);
    const other = await AttachmentLock.tryAcquireMark(await attachmentMark("net", "ctr", "ib2"), { dir });
    assert(other !== null);
    other!.release();
    held.release();
    const free = await AttachmentLock.tryAcquireMark(mark, { dir });
    assert(free !== null);
    free!.release();
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
