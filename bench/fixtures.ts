/**
 * Kernel fixtures the benchmark sets up in bulk (pod namespaces, unrelated host links) and the kernel's
 * move cost measured on its own through the plugin's FFI layer. Everything made here is registered
 * with a {@link Cleanup}, which also runs on SIGINT and SIGTERM, so an interrupted run leaves nothing.
 * @module
 */

import { Netlink } from "../ffi/netlink.ts";
import { Netns } from "../ffi/netns.ts";
import { run, sh, shQuiet, suffix } from "../support/net.ts";

/** Undo actions run last-in first-out; idempotent, and wired to SIGINT/SIGTERM while it lives. */
export class Cleanup implements AsyncDisposable {
  #undo: (() => Promise<void>)[] = [];
  #onSignal = () => {
    console.error("\nbench: interrupted, cleaning up");
    this[Symbol.asyncDispose]().finally(() => Deno.exit(130));
  };

  constructor() {
    Deno.addSignalListener("SIGINT", this.#onSignal);
    Deno.addSignalListener("SIGTERM", this.#onSignal);
  }

  /** Registers `undo` to run at disposal; returns a function that runs it early (and only once). */
  add(undo: () => Promise<void>): () => Promise<void> {
    let done = false;
    const once = async () => {
      if (done) return;
      done = true;
      this.#undo = this.#undo.filter((u) => u !== once);
      await undo();
    };
    this.#undo.push(once);
    return once;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    Deno.removeSignalListener("SIGINT", this.#onSignal);
    Deno.removeSignalListener("SIGTERM", this.#onSignal);
    for (const undo of [...this.#undo].reverse()) {
      await undo().catch((e) => console.error(`bench: cleanup: ${e}`));
    }
  }
}

/** Runs iproute2 commands from a batch file (`ip -batch`): one process for hundreds of objects. */
async function ipBatch(lines: string[], quiet = false): Promise<void> {
  const file = await Deno.makeTempFile({ prefix: "ipoib-bench-", suffix: ".batch" });
  try {
    await Deno.writeTextFile(file, lines.join("\n") + "\n");
    if (quiet) await shQuiet("ip", "-force", "-batch", file);
    else await sh("ip", "-batch", file);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/** `count` named network namespaces (paths under /run/netns), removed by `cleanup`. */
export async function makePods(cleanup: Cleanup, label: string, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `bench${label}${suffix(4)}${i}`);
  cleanup.add(() => ipBatch(names.map((n) => `netns del ${n}`), true));
  await ipBatch(names.map((n) => `netns add ${n}`));
  return names.map((n) => `/run/netns/${n}`);
}

/** The number of links in the host namespace whose name starts with `prefix`. */
async function hostLinksNamed(prefix: string): Promise<number> {
  const all = JSON.parse(await sh("ip", "-j", "link", "show")) as { ifname: string }[];
  return all.filter((l) => l.ifname.startsWith(prefix)).length;
}

/**
 * `count` links in the host namespace that have nothing to do with the plugin: host ends of veth pairs
 * whose peers live in a scratch namespace. Removing that namespace removes them all in one kernel batch
 * (one link at a time would cost a synchronisation each); the returned function waits until they are gone.
 */
export async function makeUnrelatedLinks(cleanup: Cleanup, count: number): Promise<() => Promise<void>> {
  if (count === 0) return () => Promise.resolve();
  const id = suffix(4);
  const prefix = `bx${id}`;
  const scratch = `benchjunk${id}`;
  const remove = cleanup.add(async () => {
    await shQuiet("ip", "netns", "del", scratch);
    const deadline = Date.now() + 120_000;
    while (await hostLinksNamed(prefix) > 0) {
      if (Date.now() > deadline) throw new Error(`links ${prefix}* still present after 120 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  await sh("ip", "netns", "add", scratch);
  await ipBatch(
    Array.from(
      { length: count },
      (_, i) => `link add ${prefix}${i} type veth peer name p${i} netns ${scratch}`,
    ),
  );
  const made = await hostLinksNamed(prefix);
  if (made !== count) throw new Error(`made ${made} unrelated links, wanted ${count}`);
  return remove;
}

/**
 * The kernel's cost of moving a fresh child link (macvlan on `master`) from the host namespace into the
 * namespace at `podPath`, timed around the one netlink request the plugin sends for it. The link is
 * created before and deleted after, outside the timing.
 */
export function measureMove(master: string, podPath: string): number {
  const name = `bmv${suffix(8)}`;
  using pod = Netns.open(podPath);
  using host = Netlink.open();
  run("ip", "link", "add", name, "link", master, "type", "macvlan", "mode", "bridge");
  const link = host.getLink(name)!;
  const start = performance.now();
  try {
    host.moveToNetns(link.index, pod.fd);
  } catch (e) {
    host.deleteLink(link.index);
    throw e;
  }
  const ms = performance.now() - start;
  pod.run(() => {
    using nl = Netlink.open();
    const moved = nl.getLink(name);
    if (moved !== null) nl.deleteLink(moved.index);
  });
  return ms;
}
