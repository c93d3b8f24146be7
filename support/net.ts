/**
 * Kernel fixtures shared by the tests, the demo and the benchmark (never shipped: packaging refuses
 * support/): a veth master, pod namespaces, and views of links, addresses and routes through iproute2's
 * JSON output (an observer independent of the plugin's own netlink code). The plugin itself never runs
 * `ip`; these do. Every fixture is removed by `dispose`, also when a test fails.
 * @module
 */

import { Netns } from "../ffi/netns.ts";

/** Runs a command synchronously; returns stdout, throws with stderr on failure. */
export function run(cmd: string, ...args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}

/** A unique short name (link names must stay within 15 bytes). */
export function uniqueName(prefix: string): string {
  return `${prefix}${suffix(5)}`.slice(0, 15);
}

/** Runs a command and returns its stdout; throws with stderr when it fails. */
export async function sh(...argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${argv.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** Like {@link sh} but ignores failure (for cleanup). */
export async function shQuiet(...argv: string[]): Promise<void> {
  await new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "null", stderr: "null" }).output();
}

/** A short random suffix for names that must not collide across concurrent test runs. */
export function suffix(n = 6): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => (b % 36).toString(36)).join("").slice(
    0,
    n,
  );
}

/** A link as `ip -j link` reports it. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  flags: string[];
  operstate?: string;
  address?: string;
  /** "ether", "infiniband", "loopback", ... */
  link_type?: string;
  /** The parent's name, when it is in the same namespace. */
  link?: string;
  /** The parent's index, when it is in another namespace (then "link_netnsid" is set). */
  link_index?: number;
  link_netnsid?: number;
  /** IFLA_IFALIAS, when the link has one. */
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** Links of the host namespace, or of named namespace `ns`. */
export async function links(ns?: string): Promise<IpLink[]> {
  return JSON.parse(await sh("ip", ...(ns ? ["-n", ns] : []), "-d", "-j", "link", "show"));
}

/** Addresses (`ip -j addr`) of `ifname` in `ns`. */
export async function addresses(
  ns: string,
  ifname: string,
): Promise<{ family: string; local: string; prefixlen: number }[]> {
  const info = JSON.parse(await sh("ip", "-n", ns, "-j", "addr", "show", "dev", ifname));
  return (info[0]?.addr_info ?? []).filter((a: { scope: string }) => a.scope !== "link");
}

/** Routes (`ip -j route`) of one family in `ns`, all tables. */
export async function routes(ns: string, family: 4 | 6): Promise<Record<string, unknown>[]> {
  return JSON.parse(await sh("ip", "-n", ns, `-${family}`, "-j", "route", "show", "table", "all"));
}

/** A veth pair on the host whose first end serves as the master; removed on dispose. */
export class TestMaster implements AsyncDisposable {
  readonly name: string;
  readonly peer: string;

  private constructor(name: string, peer: string) {
    this.name = name;
    this.peer = peer;
  }

  /** Creates the pair, both ends up, with the given MTU. */
  static async create(mtu = 1500): Promise<TestMaster> {
    const s = suffix();
    const m = new TestMaster(`tm${s}`, `tp${s}`);
    await sh(
      "ip",
      "link",
      "add",
      m.name,
      "mtu",
      String(mtu),
      "type",
      "veth",
      "peer",
      "name",
      m.peer,
      "mtu",
      String(mtu),
    );
    await sh("ip", "link", "set", m.name, "up");
    await sh("ip", "link", "set", m.peer, "up");
    return m;
  }

  /**
   * Host links that are children of this master (what the plugin must never leave behind). iproute2 names
   * the parent of a link in the same namespace by name ("link") and gives "link_index" only for a parent
   * in another namespace ("link_netnsid"), so both are compared.
   */
  async children(): Promise<IpLink[]> {
    const all = await links();
    const master = all.find((l) => l.ifname === this.name);
    return all.filter((l) =>
      master !== undefined && l.ifname !== this.peer && l.link_netnsid === undefined &&
      (l.link === this.name || l.link_index === master.ifindex)
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await shQuiet("ip", "link", "del", this.name);
  }
}

/**
 * A veth pair `name`/`peer` made by iproute2, in named namespace `ns` or the host's; both ends down.
 * Deleting either end removes both.
 */
export function vethPair(name: string, peer: string, ns?: string): void {
  run("ip", ...(ns ? ["-n", ns] : []), "link", "add", name, "type", "veth", "peer", "name", peer);
}

/**
 * The calling thread's network namespace as the kernel names it, e.g. "net:[4026531840]": equal strings
 * mean the same namespace. Read through the plugin's Netns handle (libc), since Deno refuses /proc
 * without --allow-all; /proc/thread-self, since the JS thread is not the main thread under `deno test`.
 */
export function threadNetns(): string {
  using ns = Netns.open("/proc/thread-self/ns/net");
  return `net:[${ns.id().ino}]`;
}

/** A named network namespace (/run/netns/NAME) with loopback up; removed on dispose (sync or async). */
export class TestNetns implements AsyncDisposable, Disposable {
  readonly name: string;
  readonly path: string;

  private constructor(name: string) {
    this.name = name;
    this.path = `/run/netns/${name}`;
  }

  /** Creates the namespace with loopback up. */
  static async create(prefix = "tpod"): Promise<TestNetns> {
    const ns = new TestNetns(`${prefix}${suffix(8)}`);
    await sh("ip", "netns", "add", ns.name);
    await sh("ip", "-n", ns.name, "link", "set", "lo", "up");
    return ns;
  }

  /** {@link create} without awaiting, for synchronous tests (`using ns = TestNetns.createSync()`). */
  static createSync(prefix = "tpod"): TestNetns {
    const ns = new TestNetns(`${prefix}${suffix(8)}`);
    run("ip", "netns", "add", ns.name);
    run("ip", "-n", ns.name, "link", "set", "lo", "up");
    return ns;
  }

  /** Links in the namespace other than loopback. */
  async links(): Promise<IpLink[]> {
    return (await links(this.name)).filter((l) => l.ifname !== "lo");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await shQuiet("ip", "netns", "del", this.name);
  }

  [Symbol.dispose](): void {
    new Deno.Command("ip", { args: ["netns", "del", this.name], stdout: "null", stderr: "null" })
      .outputSync();
  }
}

/** A host-local data directory; `leases()` lists the addresses it holds. Removed on dispose. */
export class TestLeases implements AsyncDisposable {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(): Promise<TestLeases> {
    return new TestLeases(await Deno.makeTempDir({ prefix: "ipoib-hostlocal-" }));
  }

  /** Lease files (one per allocated address) across all networks in the directory. */
  leases(): string[] {
    const out: string[] = [];
    for (const net of Deno.readDirSync(this.dir)) {
      if (!net.isDirectory) continue;
      for (const f of Deno.readDirSync(`${this.dir}/${net.name}`)) {
        if (f.isFile && f.name !== "lock" && !f.name.startsWith("last_reserved_ip")) {
          out.push(`${net.name}/${f.name}`);
        }
      }
    }
    return out;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
