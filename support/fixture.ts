/**
 * The world most kernel tests run the stand-in plugin in: a veth master, a pod namespace, a host-local
 * data directory and a scratch directory, checked to hold nothing the plugin made once the test body
 * is done, and always removed. Also the CNI environment and the host-local IPAM config of an
 * invocation in it. Never shipped: packaging refuses support/.
 * @module
 */

import { assertEquals } from "@std/assert";
import { temporaryName } from "../lib/temporary_name.ts";
import { exists } from "./fs.ts";
import { links, TestLeases, TestMaster, TestNetns } from "./net.ts";
import { pluginCommand } from "./run.ts";

/** Where Debian's containernetworking-plugins put the Go reference plugins (host-local, macvlan, ...). */
export const GO_CNI = "/usr/lib/cni";

/** The plugin on the stand-in child kind (tests/standin/), run with the production flags. */
export const STANDIN = pluginCommand("tests/standin/main.ts");

/** A configuration object. */
export type Json = Record<string, unknown>;

/** One test's world; everything in it is removed afterwards. */
export interface StandinFixture {
  master: TestMaster;
  pod: TestNetns;
  leases: TestLeases;
  /** A directory for the test's own files (pause markers, configs, logs). */
  scratch: string;
}

/** How {@link withStandinFixture} builds the world. */
export interface StandinFixtureOptions {
  /** MTU of the master veth pair; 1500 when absent. */
  mtu?: number;
  /** Prefix of the pod namespace's name, so that a leftover names its suite. */
  prefix?: string;
  /** Prefix of the scratch directory's name under /tmp. */
  scratch?: string;
  /** Pod links the final check expects to stay (e.g. "eth0" of a primary network the test added). */
  ignoreLinks?: string[];
}

/**
 * Runs `body` in a fresh {@link StandinFixture}, then asserts with {@link assertNothingLeft} that the
 * plugin left nothing, and always removes the fixture (also when `body` or the check throws).
 */
export async function withStandinFixture(
  options: StandinFixtureOptions,
  body: (f: StandinFixture) => Promise<void>,
): Promise<void> {
  await using master = await TestMaster.create(options.mtu ?? 1500);
  await using pod = await TestNetns.create(options.prefix ?? "tpod");
  await using leases = await TestLeases.create();
  const scratch = await Deno.makeTempDir({ prefix: options.scratch ?? "ipoib-test-" });
  try {
    const f = { master, pod, leases, scratch };
    await body(f);
    await assertNothingLeft(f, options.ignoreLinks);
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** Links in the pod other than loopback; none when the namespace was removed (its links went with it). */
export async function podLinks(f: { pod: TestNetns }): Promise<string[]> {
  if (!exists(f.pod.path)) return [];
  return (await f.pod.links()).map((l) => l.ifname);
}

/**
 * Host links a plugin run in `f` could have left: children of the master, and the attachment's temporary
 * name (found even when the master is gone). Other temporary names belong to other tests on this machine.
 */
export async function hostLeftovers(f: Invocation & { master: TestMaster }): Promise<string[]> {
  const children = (await f.master.children()).map((l) => l.ifname);
  const temp = await temporaryName(f.containerId ?? `ctr-${f.pod.name}`, f.ifname ?? "ib1");
  const mine = (await links()).map((l) => l.ifname).filter((n) => n === temp);
  return [...new Set([...children, ...mine])];
}

/** No child link in the host or the pod (but `ignoreLinks`), no host-local lease. */
export async function assertNothingLeft(
  f: StandinFixture & Invocation,
  ignoreLinks: string[] = [],
): Promise<void> {
  assertEquals(await hostLeftovers(f), [], "link left in the host");
  assertEquals(
    (await podLinks(f)).filter((n) => !ignoreLinks.includes(n)),
    [],
    "link left in the pod namespace",
  );
  assertEquals(f.leases.leases(), [], "host-local lease left");
}

/** What {@link cniEnv} reads of a fixture: its pod, and what a test overrides for all its runs. */
export interface Invocation {
  pod: TestNetns;
  /** CNI_CONTAINERID; `ctr-<pod name>` when absent. */
  containerId?: string;
  /** CNI_IFNAME; "ib1" when absent. */
  ifname?: string;
  /** CNI_PATH; {@link GO_CNI} when absent. */
  cniPath?: string;
}

/** The CNI_* environment of a `command` run in `f`, with `extra` on top. */
export function cniEnv(
  f: Invocation,
  command: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: f.containerId ?? `ctr-${f.pod.name}`,
    CNI_NETNS: f.pod.path,
    CNI_IFNAME: f.ifname ?? "ib1",
    CNI_PATH: f.cniPath ?? GO_CNI,
    ...extra,
  };
}

/**
 * IPAM config for host-local with the fixture's data directory: one subnet as a range set of one range,
 * or the `ranges` given; `extra` on top (routes, or another `type` for a fake that wraps host-local).
 */
export function hostLocal(
  f: { leases: TestLeases },
  subnetOrRanges: string | Json[][],
  extra: Json = {},
): Json {
  const ranges = typeof subnetOrRanges === "string" ? [[{ subnet: subnetOrRanges }]] : subnetOrRanges;
  return { type: "host-local", dataDir: f.leases.dir, ranges, ...extra };
}
