/**
 * What the fault, security and log suites share: a fixture (veth master, pod namespace, host-local data
 * dir, a CNI_PATH of fake IPAM plugins), the plugin with fault injection as a process that can be paused
 * and killed, and the check that nothing is left behind.
 * @module
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { pluginCommand, type PluginRun, runPlugin } from "../../support/run.ts";
import {
  assertNothingLeft,
  cniEnv,
  GO_CNI,
  type Json,
  type StandinFixture,
  withStandinFixture,
} from "../../support/fixture.ts";
import { FakeIpamDir } from "./fake_ipam.ts";
import { exists } from "../../support/fs.ts";

/** The stand-in plugin with tests/faults/inject.ts, run with the production flags. */
export const FAULTY = pluginCommand("tests/faults/plugin.ts");

/** A temporary link name as lib/temporary_name.ts makes them. */
export const TEMP_NAME = /^ipo[0-9a-f]{12}$/;

/** The stand-in fixture with a directory of fake IPAM plugins, searched before the Go plugins. */
export interface Fixture extends StandinFixture {
  ipams: FakeIpamDir;
  /** CNI_PATH of every run: the fakes first, then the Go plugins. */
  cniPath: string;
}

/** Runs `body` with a fresh fixture, checks nothing is left, and always removes the fixture. */
export async function withFixture(body: (f: Fixture) => Promise<void>): Promise<void> {
  await using ipams = await FakeIpamDir.create();
  await withStandinFixture(
    { prefix: "tflt", scratch: "ipoib-fault-" },
    (f) => body({ ...f, ipams, cniPath: `${ipams.dir}:${GO_CNI}` }),
  );
}

/** A network configuration on the fixture's master. */
export function netConf(f: Fixture, ipam: Json, extra: Json = {}): Json {
  return { cniVersion: "1.0.0", name: "faultnet", type: "ipoib", master: f.master.name, ipam, ...extra };
}

/** Asserts a failed run: exit 1, one CNI error object with `code` and a `msg` matching, no stack trace. */
export function assertCniError(r: PluginRun, code: number, msg: RegExp): Json {
  assertEquals(r.code, 1, `expected failure: ${r.stdout} ${r.stderr}`);
  const e = r.json as Json;
  if (Deno.env.get("FAULTS_REPORT")) console.log(`  -> ${r.stdout.trim()}`); // the errors, for a report
  assertEquals(Object.keys(e ?? {}).sort(), ["cniVersion", "code", "details", "msg"], r.stdout);
  assertEquals(e.code, code, r.stdout);
  assertMatch(e.msg as string, msg);
  assert(!/^\s+at .+:\d+:\d+/m.test(r.stdout + r.stderr), `stack trace printed:\n${r.stdout}${r.stderr}`);
  return e;
}

/** Runs DEL as kubelet would after a failed or interrupted ADD, and asserts it succeeds silently. */
export async function assertDelSucceeds(f: Fixture, c: Json, extraEnv: Record<string, string> = {}) {
  const d = await runPlugin(FAULTY, cniEnv(f, "DEL", extraEnv), JSON.stringify(c));
  assertEquals(d.code, 0, `DEL failed: ${d.stdout} ${d.stderr}`);
  assertEquals(d.stdout, "");
}

/** ADD fails with `code` and `msg`, leaves nothing, and DEL then succeeds and leaves nothing. */
export async function assertAddFailsCleanly(
  f: Fixture,
  c: Json,
  code: number,
  msg: RegExp,
  extraEnv: Record<string, string> = {},
): Promise<Json> {
  const r = await runPlugin(FAULTY, cniEnv(f, "ADD", extraEnv), JSON.stringify(c));
  const e = assertCniError(r, code, msg);
  await assertNothingLeft(f);
  await assertDelSucceeds(f, c, extraEnv);
  await assertNothingLeft(f);
  return e;
}

/** Polls until `path` exists; throws after `limitMs` (a plugin that never got there is a failure). */
export async function waitForFile(path: string, limitMs = 30_000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!exists(path)) {
    if (performance.now() > deadline) throw new Error(`${path} did not appear within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Processes still in process group `pgid` (an IPAM plugin and what it started). */
export async function groupMembers(pgid: number): Promise<string[]> {
  const out = await new Deno.Command("pgrep", { args: ["-g", String(pgid)], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
}

/** Waits (bounded) until the process group of the fake IPAM whose pid is in `pidFile` has ended. */
export async function assertIpamGroupGone(pidFile: string, limitMs = 10_000): Promise<void> {
  const pgid = Number((await Deno.readTextFile(pidFile)).trim());
  const deadline = performance.now() + limitMs;
  let left = await groupMembers(pgid);
  while (left.length > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    left = await groupMembers(pgid);
  }
  assertEquals(left, [], `processes of the IPAM plugin's group ${pgid} still running`);
}
