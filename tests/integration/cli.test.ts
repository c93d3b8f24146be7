/**
 * main.ts run as a process, as a runtime runs it: VERSION, flags, the about text, and error cases.
 * None of these touch the kernel.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { pluginCommand, runPlugin } from "../../support/run.ts";

const plugin = pluginCommand("main.ts");
const env = {
  CNI_CONTAINERID: "c1",
  CNI_NETNS: "/run/netns/none",
  CNI_IFNAME: "ib1",
  CNI_PATH: "/usr/lib/cni",
};
const SUPPORTED = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

function assertNoStackTrace(text: string) {
  assert(!/^\s+at .+:\d+:\d+/m.test(text), `stack trace in output:\n${text}`);
}

Deno.test("VERSION echoes the requested version and lists every supported one", async () => {
  for (const v of ["0.4.0", "1.1.0", "0.1.0"]) {
    const r = await runPlugin(plugin, { CNI_COMMAND: "VERSION" }, JSON.stringify({ cniVersion: v }));
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.json, { cniVersion: v, supportedVersions: SUPPORTED });
  }
});

Deno.test("VERSION with empty stdin answers in the latest version", async () => {
  const r = await runPlugin(plugin, { CNI_COMMAND: "VERSION" });
  assertEquals(r.json, { cniVersion: "1.1.0", supportedVersions: SUPPORTED });
});

Deno.test("ADD with broken JSON prints error code 6 and exits 1", async () => {
  const r = await runPlugin(plugin, { ...env, CNI_COMMAND: "ADD" }, '{"cniVersion": "1.0.0", ');
  assertEquals(r.code, 1);
  const e = r.json as Record<string, unknown>;
  assertEquals(e.code, 6);
  assertEquals(e.msg, "network configuration is not valid JSON");
  assertEquals(Object.keys(e).sort(), ["cniVersion", "code", "details", "msg"]);
  assertNoStackTrace(r.stdout + r.stderr);
});

Deno.test("an invalid config is code 7 in the config's own cniVersion", async () => {
  const conf = { cniVersion: "0.4.0", name: "n", type: "ipoib", ipam: {} };
  const r = await runPlugin(plugin, { ...env, CNI_COMMAND: "ADD" }, JSON.stringify(conf));
  assertEquals(r.code, 1);
  assertEquals(r.json, {
    cniVersion: "0.4.0",
    code: 7,
    msg: 'invalid network configuration: field "master" is missing',
    details: "Required",
  });
});

Deno.test("a missing CNI variable is code 4 naming it", async () => {
  const conf = { cniVersion: "1.0.0", name: "n", type: "ipoib", master: "ib0", ipam: {} };
  const { CNI_NETNS: _, ...noNetns } = env;
  const r = await runPlugin(plugin, { ...noNetns, CNI_COMMAND: "ADD" }, JSON.stringify(conf));
  assertEquals(r.code, 1);
  assertEquals((r.json as Record<string, unknown>).code, 4);
  assertEquals((r.json as Record<string, unknown>).msg, "CNI_NETNS is required for ADD");
});

Deno.test("an unknown verb is code 4", async () => {
  const r = await runPlugin(plugin, { ...env, CNI_COMMAND: "REMOVE" }, "{}");
  assertEquals(r.code, 1);
  assertEquals((r.json as Record<string, unknown>).code, 4);
});

Deno.test("CHECK below 0.4.0 and GC/STATUS below 1.1.0 are refused with code 1", async () => {
  const conf = (v: string) =>
    JSON.stringify({ cniVersion: v, name: "n", type: "ipoib", master: "ib0", ipam: {} });
  for (const [verb, v] of [["CHECK", "0.3.1"], ["GC", "1.0.0"], ["STATUS", "0.4.0"]]) {
    const r = await runPlugin(plugin, { ...env, CNI_COMMAND: verb! }, conf(v!));
    assertEquals(r.code, 1, r.stdout);
    assertEquals((r.json as Record<string, unknown>).code, 1, r.stdout);
  }
});

Deno.test("without CNI_COMMAND the about text goes to stderr and the exit is 0", async () => {
  const r = await runPlugin(plugin, {});
  assertEquals(r.code, 0);
  assertEquals(r.stdout, "");
  assertMatch(r.stderr, /^CNI ipoib plugin .*CNI protocol versions supported: 0\.1\.0, .*1\.1\.0\n$/);
});

Deno.test("--version and -v print version, commit and date", async () => {
  for (const flag of ["--version", "-v"]) {
    const r = await runPlugin([...plugin, flag], {});
    assertEquals(r.code, 0);
    assertMatch(r.stdout, /^ipoib-cni version:\S+, commit:\S+, date:\S+\n$/);
  }
});

Deno.test("--help prints usage; unknown flags exit non-zero", async () => {
  const help = await runPlugin([...plugin, "--help"], {});
  assertEquals(help.code, 0);
  assertMatch(help.stdout, /^Usage: ipoib/);
  const bad = await runPlugin([...plugin, "--frobnicate"], {});
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /unknown arguments --frobnicate/);
});

Deno.test("stdin above 1 MiB is refused before decoding", async () => {
  const big = new Uint8Array((1 << 20) + 10).fill(0x20);
  const r = await runPlugin(plugin, { ...env, CNI_COMMAND: "ADD" }, big);
  assertEquals(r.code, 1);
  assertEquals((r.json as Record<string, unknown>).code, 7);
  assertMatch((r.json as Record<string, string>).msg, /exceeds 1048576 bytes/);
});
