/**
 * The installer as the DaemonSet runs it: a process that installs, logs, waits for a signal and exits.
 * Run through `deno run` with only --allow-read and --allow-write on the test's directory.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { installerCommand, makeFile, runInstaller, tempDir, TMP_ROOT } from "./helpers.ts";

const PROCESS = { read: true, write: [TMP_ROOT], run: true };

async function layout(root: string): Promise<{ plugin: Uint8Array }> {
  await Deno.mkdir(`${root}/src/ipoib.d`, { recursive: true });
  await Deno.mkdir(`${root}/bin`);
  const plugin = await makeFile(`${root}/src/ipoib`, 1, 0o755);
  await makeFile(`${root}/src/ipoib.d/libnl-3.so.200`, 2, 0o644);
  await makeFile(`${root}/src/ipoib.d/libnl-route-3.so.200`, 3, 0o644);
  return { plugin };
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test({
    name: `installer installs, logs each file, keeps running, and exits 0 on ${signal}`,
    permissions: PROCESS,
  }, async () => {
    await using tmp = await tempDir();
    const { plugin } = await layout(tmp.path);
    const child = installerCommand(
      [`--cni-bin-dir=${tmp.path}/bin`, `--ipoib-bin-file=${tmp.path}/src/ipoib`],
      tmp.path,
    ).spawn();
    const stderr = new Response(child.stderr).text();
    let log = "";
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      while (!log.includes("waiting for SIGTERM or SIGINT")) {
        const { value, done } = await reader.read();
        if (done) break;
        log += value;
      }
      assertStringIncludes(log, `installed ${tmp.path}/bin/ipoib.d/libnl-3.so.200 (mode 0644, 65536 bytes)`);
      assertStringIncludes(
        log,
        `installed ${tmp.path}/bin/ipoib.d/libnl-route-3.so.200 (mode 0644, 65536 bytes)`,
      );
      assertStringIncludes(log, `installed ${tmp.path}/bin/ipoib (mode 0755, 65536 bytes)`);
      assertEquals(await Deno.readFile(`${tmp.path}/bin/ipoib`), plugin);
      // It must stay up after installing: a DaemonSet pod that exits is restarted in a loop.
      const exitedEarly = await Promise.race([
        child.status.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 300)),
      ]);
      assert(!exitedEarly, "the installer exited before it was signalled");
      child.kill(signal);
      const status = await child.status;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        log += value;
      }
      assertEquals(status.code, 0, await stderr);
      assertStringIncludes(log, `received ${signal}, exiting`);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await stderr;
    }
  });
}

Deno.test({
  name: "installer rejects bad flags with one line of reason, usage, exit 2 and no stack trace",
  permissions: PROCESS,
}, async () => {
  await using tmp = await tempDir();
  await layout(tmp.path);
  const cases: [string[], string][] = [
    [["--bogus"], 'unknown argument "--bogus"'],
    [["--cni-bin-dir=relative/bin"], '--cni-bin-dir must be an absolute path, got "relative/bin"'],
    [[`--cni-bin-dir=${tmp.path}/absent`], `--cni-bin-dir ${tmp.path}/absent does not exist`],
    [[`--cni-bin-dir=${tmp.path}/src/ipoib`], `--cni-bin-dir ${tmp.path}/src/ipoib is not a directory`],
    [["--cni-bin-dir"], "--cni-bin-dir needs a value"],
  ];
  for (const [args, reason] of cases) {
    const r = await runInstaller([...args, `--ipoib-bin-file=${tmp.path}/src/ipoib`], tmp.path);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assertStringIncludes(r.stderr, `ipoib-installer: error: ${reason}\n`);
    assertStringIncludes(r.stderr, "Usage: ipoib-installer");
    assert(!/\bat .*\.ts:\d+/.test(r.stderr), `stack trace in: ${r.stderr}`);
    assertEquals(r.stdout, "");
  }
});

Deno.test({
  name: "installer with a missing plugin file exits 1 naming it, and writes nothing",
  permissions: PROCESS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/bin`);
  const r = await runInstaller(
    [`--cni-bin-dir=${tmp.path}/bin`, `--ipoib-bin-file=${tmp.path}/nope/ipoib`],
    tmp.path,
  );
  assertEquals(r.code, 1);
  assertEquals(r.stderr, `ipoib-installer: error: plugin file ${tmp.path}/nope/ipoib does not exist\n`);
  assertEquals([...Deno.readDirSync(`${tmp.path}/bin`)], []);
});

Deno.test({
  name: "installer prints its version in the plugin's format and --help the usage, both exiting 0",
  permissions: PROCESS,
}, async () => {
  await using tmp = await tempDir();
  const v = await runInstaller(["--version"], tmp.path);
  assertEquals(v.code, 0);
  assertMatch(v.stdout, /^ipoib-installer version:[^,]+, commit:[^,]+, date:\S+\n$/);
  const h = await runInstaller(["--help"], tmp.path);
  assertEquals(h.code, 0);
  assertStringIncludes(h.stdout, "--cni-bin-dir=DIR");
  assertStringIncludes(h.stdout, "(default /host/opt/cni/bin)");
});
