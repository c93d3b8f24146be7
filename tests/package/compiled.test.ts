/**
 * The executables `make build` produces, run as kubelet and the DaemonSet would run them. They need a real
 * denort (DENORT_BIN): without one these tests are reported as ignored, with the reason printed.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { makeEnv, runMake, tempDir, TMP_ROOT } from "./helpers.ts";

const DENORT_BIN = Deno.env.get("DENORT_BIN") ?? "";
const SKIP_REASON = "DENORT_BIN is not set: deno compile has no denort runtime to build with (README, Build)";
if (!DENORT_BIN) console.log(`compiled.test.ts: ignored: ${SKIP_REASON}`);

const decoder = new TextDecoder();

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  stdin = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, { args, env, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test({
  name: `compiled executables behave as plugin and installer${
    DENORT_BIN ? "" : ` (ignored: ${SKIP_REASON})`
  }`,
  ignore: !DENORT_BIN,
  permissions: { read: true, write: [TMP_ROOT], run: true, env: true },
}, async (t) => {
  await using tmp = await tempDir();
  const build = `${tmp.path}/build`;
  const stamp = { VERSION: "5.4.3-test", COMMIT: "feedface", DATE: "2026-02-03T04:05:06Z" };
  const made = await runMake(
    ["build", `BUILD_DIR=${build}`, ...Object.entries(stamp).map(([k, v]) => `${k}=${v}`)],
    makeEnv({ DENORT_BIN }),
  );
  assertEquals(made.code, 0, made.stderr);

  await t.step("the plugin prints the stamped version", async () => {
    const r = await run(`${build}/ipoib`, ["--version"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      r.stdout.trim(),
      `ipoib-cni version:${stamp.VERSION}, commit:${stamp.COMMIT}, date:${stamp.DATE}`,
    );
  });

  await t.step("the plugin answers CNI VERSION with the versions it supports", async () => {
    const r = await run(`${build}/ipoib`, [], { CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
    assertEquals(r.code, 0, r.stderr);
    const answer = JSON.parse(r.stdout);
    assert(answer.supportedVersions.includes("1.1.0"), r.stdout);
  });

  await t.step(
    "the installer copies plugin and libraries, and the copy loads libnl from its ipoib.d",
    async () => {
      const bin = `${tmp.path}/cni-bin`;
      await Deno.mkdir(bin);
      const child = new Deno.Command(`${build}/ipoib-installer`, {
        args: [`--cni-bin-dir=${bin}`],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let log = "";
      while (!log.includes("waiting for SIGTERM")) {
        const { value, done } = await reader.read();
        if (done) break;
        log += value;
      }
      const stderr = new Response(child.stderr).text();
      // An installer that exited by itself has failed; its log and stderr say why.
      if (log.includes("waiting for SIGTERM")) child.kill("SIGTERM");
      const status = await child.status;
      for (let r = await reader.read(); !r.done; r = await reader.read()) log += r.value;
      assertEquals(status.code, 0, `${log}\n${await stderr}`);
      assertStringIncludes(log, "received SIGTERM, exiting");
      assertMatch(log, new RegExp(`version:${stamp.VERSION}, commit:${stamp.COMMIT}`));
      for (const f of ["ipoib.d/libnl-3.so.200", "ipoib.d/libnl-route-3.so.200", "ipoib"]) {
        assertStringIncludes(log, `installed ${bin}/${f} (mode `);
      }
      // STATUS looks the master up through libnl; the dynamic linker's log shows which copy it loaded.
      const conf = '{"cniVersion":"1.1.0","name":"n","type":"ipoib","master":"ipoibnone0","ipam":{}}';
      const r = await run(`${bin}/ipoib`, [], {
        CNI_COMMAND: "STATUS",
        CNI_PATH: "/usr/lib/cni",
        LD_DEBUG: "files",
      }, conf);
      assertStringIncludes(r.stderr, `calling init: ${bin}/ipoib.d/libnl-3.so.200`);
      assertStringIncludes(r.stderr, `calling init: ${bin}/ipoib.d/libnl-route-3.so.200`);
      assertEquals(JSON.parse(r.stdout).code, 50, r.stdout);
    },
  );
});
