/**
 * Diagnosable failures: the optional log file (`logFile`, `logLevel`) names the verb, container id, netns
 * and ifname on every line and every step with its outcome and time; a failure is logged with its cause
 * chain; a log that cannot be written never changes the outcome; without `logFile` nothing is written and
 * errors go to stderr only.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { runPlugin, startPlugin } from "../../support/run.ts";
import { sh } from "../../support/net.ts";
import {
  assertCniError,
  assertDelSucceeds,
  FAULTY,
  type Fixture,
  netConf,
  waitForFile,
  withFixture,
} from "./harness.ts";
import { assertNothingLeft, cniEnv, hostLocal, type Json } from "../../support/fixture.ts";

/** The lines of a log file written by runs in `f`, each checked to carry the run's identity. */
async function logLines(f: Fixture, path: string, verb: string): Promise<string[]> {
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "");
  const identity = `${verb} container=ctr-${f.pod.name} netns=${f.pod.path} ifname=ib1 `;
  for (const line of lines) {
    assertMatch(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|INFO|DEBUG) \[\d+\] /);
    assert(line.includes(identity), `line without verb, container, netns and ifname: ${line}`);
  }
  return lines;
}

/** The step lines (`name: ok (1.2 ms)` or `name: failed (1.2 ms): cause`) in order, as [name, outcome]. */
function steps(lines: string[]): [string, string][] {
  return lines.flatMap((l) => {
    const m = l.match(/ ifname=\S+ (.+?): (ok|failed) \(\d+\.\d ms\)/);
    return m ? [[m[1]!.replace(/ipo[0-9a-f]{12}/, "ipoX"), m[2]!] as [string, string]] : [];
  });
}

Deno.test("logLevel info: ADD and DEL log every step with outcome and time, identified by verb and ids", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/ipoib.log`;
    const c = netConf(f, hostLocal(f, "10.122.0.0/24", { routes: [{ dst: "10.96.0.0/16" }] }), {
      logFile,
      logLevel: "info",
    });
    const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
    assertEquals(r.code, 0, r.stdout);
    assertEquals(r.stderr, "");
    const add = await logLines(f, logFile, "ADD");
    assertMatch(add[0]!, /INFO .* start: network "faultnet", cniVersion 1\.0\.0, master tm\w+$/);
    assertEquals(steps(add), [
      ["open netns", "ok"],
      ["inspect master", "ok"],
      ["create child ipoX", "ok"],
      ["mark child", "ok"],
      ["move to netns", "ok"],
      ["configure link", "ok"],
      ["ipam add", "ok"],
      ["apply addresses and routes", "ok"],
      ["verify netns", "ok"],
    ]);
    assertMatch(add.at(-1)!, /INFO .* ADD: done \(\d+\.\d ms\)$/);

    await Deno.remove(logFile);
    await assertDelSucceeds(f, c);
    const del = await logLines(f, logFile, "DEL");
    assertEquals(
      steps(del).map(([name, outcome]) => `${name.replace(/ipo[0-9a-f]{12}/, "ipoX")} ${outcome}`),
      [
        "ipam del ok",
        "delete ipoX in the host ok",
        "delete link ok",
        "delete marked child in the host ok",
      ],
    );
  });
});

Deno.test("a failed ADD logs the failing step with its cause chain, then each cleanup step", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/ipoib.log`;
    const c = netConf(
      f,
      hostLocal(f, "10.122.1.0/24", { routes: [{ dst: "10.99.0.0/16", gw: "192.0.2.1" }] }),
      { logFile, logLevel: "error" },
    );
    const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
    // The device by its name in the pod, as `ip route` would name it.
    const e = assertCniError(r, 100, /^add route 10\.99\.0\.0\/16 via 192\.0\.2\.1 dev ib1: /);
    const lines = await logLines(f, logFile, "ADD");
    // logLevel error: only failures, no "ok" steps.
    assert(lines.every((l) => / ERROR /.test(l)), lines.join("\n"));
    const failed = lines.find((l) => l.includes("apply addresses and routes: failed")) ?? lines.join("\n");
    // The full error: CNI code, message and the kernel's own detail.
    assert(failed.includes(`[100] ${e.msg} (${e.details})`), failed);
    assertMatch(lines.at(-1)!, /ADD: failed \(\d+\.\d ms\): \[100\] add route/);
    await assertNothingLeft(f);
    await assertDelSucceeds(f, c);
  });
});

Deno.test("an error caused by another is logged with the whole cause chain", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/ipoib.log`;
    await f.ipams.add("paused-ipam", "pause-after-alloc");
    const c = netConf(f, hostLocal(f, "10.122.5.0/24", { type: "paused-ipam" }), { logFile });
    const run = startPlugin(FAULTY, cniEnv(f, "ADD", { FAULT_DIR: f.scratch }), JSON.stringify(c));
    await waitForFile(`${f.scratch}/paused`);
    await sh("ip", "netns", "del", f.pod.name);
    await Deno.writeTextFile(`${f.scratch}/resume`, "");
    assertCniError(await run.done, 8, /was removed during ADD$/);
    const last = (await logLines(f, logFile, "ADD")).at(-1)!;
    assertMatch(
      last,
      /ADD: failed .*: \[8\] network namespace \S+ was removed during ADD \(.*\) <- \[8\] network namespace \S+ does not exist \(open \S+: No such file or directory\)$/,
    );
    await assertDelSucceeds(f, c);
  });
});

Deno.test("logLevel info on a failure shows the cleanup steps; debug adds the config and IPAM's stderr", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/ipoib.log`;
    await f.ipams.add("crashing-ipam", "crash-after-alloc");
    const c = netConf(f, hostLocal(f, "10.122.2.0/24", { type: "crashing-ipam" }), {
      logFile,
      logLevel: "debug",
    });
    const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
    assertCniError(r, 101, /exited with code 2$/);
    const lines = await logLines(f, logFile, "ADD");
    assertEquals(steps(lines).slice(-4), [
      ["ipam add", "failed"],
      ["cleanup: ipam del", "ok"],
      ["cleanup: delete link ib1 in the pod", "ok"],
      ["ADD", "failed"],
    ]);
    assert(lines.some((l) => / DEBUG .* config: \{"cniVersion":"1\.0\.0"/.test(l)), lines.join("\n"));
    assert(
      lines.some((l) =>
        / DEBUG .* ipam ADD: \S+crashing-ipam exited with code 2; stderr: panic: runtime/.test(l)
      ),
      lines.join("\n"),
    );
    await assertDelSucceeds(f, c);
  });
});

Deno.test("an unwritable log path never changes the outcome of ADD or DEL", async () => {
  await withFixture(async (f) => {
    await sh("mkfifo", `${f.scratch}/fifo`); // a FIFO without a reader: opening it would block the run
    await Deno.mkdir(`${f.scratch}/dir`);
    for (
      const logFile of [
        `${f.scratch}/no/such/dir/ipoib.log`,
        `${f.scratch}/dir`,
        `${f.scratch}/fifo`,
        "/proc/version",
        "/dev/full",
      ]
    ) {
      const c: Json = netConf(f, hostLocal(f, "10.122.3.0/24"), { logFile, logLevel: "debug" });
      const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
      assertEquals(r.code, 0, `${logFile}: ${r.stdout}`);
      assertEquals(r.stderr, "");
      await assertDelSucceeds(f, c);
      const failing = await runPlugin(
        FAULTY,
        cniEnv(f, "ADD", { CNI_NETNS: "/run/netns/absent" }),
        JSON.stringify(c),
      );
      assertCniError(failing, 8, /does not exist$/);
    }
    assertEquals([...Deno.readDirSync(`${f.scratch}/dir`)], []);
  });
});

Deno.test("without logFile nothing is written; a failure goes to stderr as one line, success is silent", async () => {
  await withFixture(async (f) => {
    const c = netConf(f, hostLocal(f, "10.122.4.0/24"));
    const before = [...Deno.readDirSync(f.scratch)];
    const ok = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
    assertEquals(ok.code, 0);
    assertEquals(ok.stderr, "");
    await assertDelSucceeds(f, c);
    const bad = await runPlugin(
      FAULTY,
      cniEnv(f, "ADD", { CNI_NETNS: "/run/netns/absent" }),
      JSON.stringify(c),
    );
    assertCniError(bad, 8, /does not exist$/);
    assertEquals(
      bad.stderr,
      `ipoib: network namespace /run/netns/absent does not exist: ${(bad.json as Json).details}\n`,
    );
    assertEquals([...Deno.readDirSync(f.scratch)], before);
  });
});

Deno.test("logFile: a symlink is never followed, whether its target exists or not", async () => {
  await withFixture(async (f) => {
    const target = `${f.scratch}/precious`;
    await Deno.writeTextFile(target, "precious\n");
    await sh("ln", "-s", target, `${f.scratch}/link.log`);
    await sh("ln", "-s", `${f.scratch}/created-through-link`, `${f.scratch}/dangling.log`);
    for (const logFile of [`${f.scratch}/link.log`, `${f.scratch}/dangling.log`]) {
      const c = netConf(f, hostLocal(f, "10.122.6.0/24"), { logFile, logLevel: "debug" });
      const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
      assertEquals(r.code, 0, r.stdout);
      await assertDelSucceeds(f, c);
      assert((await Deno.lstat(logFile)).isSymlink);
    }
    assertEquals(await Deno.readTextFile(target), "precious\n");
    assertEquals([...Deno.readDirSync(f.scratch)].map((e) => e.name).includes("created-through-link"), false);
  });
});

Deno.test("logFile: a symlink in a directory part of the path is never followed", async () => {
  await withFixture(async (f) => {
    const real = `${f.scratch}/real`;
    await Deno.mkdir(real);
    await sh("ln", "-s", real, `${f.scratch}/linkdir`);
    await Deno.mkdir(`${f.scratch}/a`);
    await sh("ln", "-s", real, `${f.scratch}/a/b`);
    for (const logFile of [`${f.scratch}/linkdir/plugin.log`, `${f.scratch}/a/b/plugin.log`]) {
      const c = netConf(f, hostLocal(f, "10.122.9.0/24"), { logFile, logLevel: "debug" });
      const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
      assertEquals(r.code, 0, r.stdout);
      await assertDelSucceeds(f, c);
    }
    assertEquals([...Deno.readDirSync(real)].map((e) => e.name), [], "written through a symlinked directory");
    // The same file through real directories is written: the check above can fail.
    const direct = `${real}/plugin.log`;
    const c = netConf(f, hostLocal(f, "10.122.9.0/24"), { logFile: direct, logLevel: "info" });
    assertEquals((await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c))).code, 0);
    await assertDelSucceeds(f, c);
    assert((await Deno.readTextFile(direct)).length > 0);
  });
});

Deno.test("logFile: a FIFO with a reader gets nothing and the run does not wait; a directory is refused", async () => {
  await withFixture(async (f) => {
    const fifo = `${f.scratch}/fifo.log`;
    await sh("mkfifo", fifo);
    const reader = new Deno.Command("cat", { args: [fifo], stdout: "piped" }).spawn();
    // Opening the write end waits for the reader to be there; closing it ends the reader's read at once
    // when nothing else has it open.
    const keepOpen = await Deno.open(fifo, { write: true });
    for (const logFile of [fifo, f.scratch]) {
      const c = netConf(f, hostLocal(f, "10.122.7.0/24"), { logFile, logLevel: "debug" });
      const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
      assertEquals(r.code, 0, r.stdout);
      await assertDelSucceeds(f, c);
    }
    keepOpen.close();
    const out = await reader.output();
    assertEquals(new TextDecoder().decode(out.stdout), "");
  });
});

Deno.test("logFile: created with mode 0600", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/new.log`;
    const c = netConf(f, hostLocal(f, "10.122.8.0/24"), { logFile, logLevel: "info" });
    const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
    assertEquals(r.code, 0, r.stdout);
    assertEquals((await Deno.stat(logFile)).mode! & 0o7777, 0o600);
    await assertDelSucceeds(f, c);
  });
});

Deno.test("logFile: at logMaxSize the file is renamed to <file>.1 and a new one begun; both stay bounded", async () => {
  await withFixture(async (f) => {
    const logFile = `${f.scratch}/rotating.log`;
    const logMaxSize = 4096;
    const c = netConf(f, hostLocal(f, "10.122.9.0/24"), { logFile, logLevel: "debug", logMaxSize });
    let rotations = 0;
    let previous = "";
    for (let i = 0; i < 6; i++) {
      const r = await runPlugin(FAULTY, cniEnv(f, "ADD"), JSON.stringify(c));
      assertEquals(r.code, 0, r.stdout);
      await assertDelSucceeds(f, c);
      const rotated = await Deno.readTextFile(`${logFile}.1`).catch(() => "");
      if (rotated !== previous) rotations++;
      previous = rotated;
      for (const path of [logFile, `${logFile}.1`]) {
        const size = await Deno.stat(path).then((s) => s.size, () => 0);
        assert(size <= logMaxSize, `${path} holds ${size} bytes, over ${logMaxSize}`);
      }
    }
    assert(rotations >= 2, `rotated ${rotations} times`);
    // Whole lines on both sides of a rotation: the rotated file ends with a complete line.
    assert(previous.endsWith("\n"));
    for (const line of previous.split("\n").slice(0, -1)) {
      assertMatch(
        line,
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|INFO|DEBUG) \[\d+\] (ADD|DEL) container=/,
      );
    }
    assertEquals((await Deno.stat(`${logFile}.1`)).mode! & 0o7777, 0o600);
  });
});
