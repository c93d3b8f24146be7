/**
 * What the end-to-end suites share: a wire (veth master whose peer sits in its own namespace with the
 * gateway address, so a container can ping across it), a CNI plugin directory whose executables record
 * every invocation before running the real plugin, the conflists both runtimes are given, and the
 * recordings read back. Everything lives under a temporary directory and is removed on dispose.
 * @module
 */

import { ROOT } from "../../support/run.ts";
import { sh, shQuiet, TestLeases, TestMaster, TestNetns } from "../../support/net.ts";
import { GO_CNI, STANDIN } from "../../support/fixture.ts";

/** A JSON object. */
export type Json = Record<string, unknown>;

/** Where Debian installs Go library sources (golang-*-dev packages). */
export const DEBIAN_GOPATH = "/usr/share/gocode";

/**
 * Builds the Go command in `tests/e2e/<name>` offline, in GOPATH mode against Debian's library sources, into
 * `<dir>/<name>` (with its build cache in `dir` too); returns the binary's path. Throws with the compiler's
 * output when the build fails.
 */
export async function goBuild(name: string, dir: string): Promise<string> {
  const binary = `${dir}/${name}`;
  const out = await new Deno.Command("go", {
    args: ["build", "-o", binary, "."],
    cwd: `${ROOT}/tests/e2e/${name}`,
    env: {
      GOPATH: DEBIAN_GOPATH,
      GO111MODULE: "off",
      GOFLAGS: "",
      GOCACHE: `${dir}/gocache`,
      CGO_ENABLED: "0",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`go build ${name} failed: ${new TextDecoder().decode(out.stderr)}`);
  return binary;
}

/** A directory under the system temp dir, removed (with any mounts below it) on dispose. */
export class TempDir implements AsyncDisposable {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  static async create(prefix: string): Promise<TempDir> {
    return new TempDir(await Deno.makeTempDir({ prefix }));
  }

  /** Creates (if needed) and returns a subdirectory. */
  async sub(name: string): Promise<string> {
    const p = `${this.path}/${name}`;
    await Deno.mkdir(p, { recursive: true });
    return p;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // A runtime killed part-way may leave a mount (e.g. a container's /dev/shm) below the directory.
    const mounts = (await sh("cat", "/proc/mounts").catch(() => "")).split("\n")
      .map((l) => l.split(" ")[1] ?? "")
      .filter((m) => m.startsWith(`${this.path}/`))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) await shQuiet("umount", "-l", m);
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

/**
 * A veth pair: one end on the host is the master of the plugin's macvlan children; the other end is moved
 * into a namespace of its own and holds the gateway address `<prefix>.1`. A macvlan child cannot reach its
 * own master, but it reaches the master's peer, which is where the frames it sends come out.
 */
export class Wire implements AsyncDisposable {
  readonly master: TestMaster;
  readonly far: TestNetns;
  /** The first three octets of the /24, e.g. "10.213.4". */
  readonly prefix: string;

  private constructor(master: TestMaster, far: TestNetns, prefix: string) {
    this.master = master;
    this.far = far;
    this.prefix = prefix;
  }

  /** Creates the pair (of MTU `mtu`) and the far namespace; the subnet is `<prefix>.0/24`. */
  static async create(prefix: string, mtu = 1500): Promise<Wire> {
    const master = await TestMaster.create(mtu);
    let far: TestNetns | undefined;
    try {
      far = await TestNetns.create("e2efar");
      await sh("ip", "link", "set", master.peer, "netns", far.name);
      await sh("ip", "-n", far.name, "addr", "add", `${prefix}.1/24`, "dev", master.peer);
      await sh("ip", "-n", far.name, "link", "set", master.peer, "up");
      return new Wire(master, far, prefix);
    } catch (e) {
      await far?.[Symbol.asyncDispose]();
      await master[Symbol.asyncDispose]();
      throw e;
    }
  }

  /** The subnet in CIDR notation. */
  get subnet(): string {
    return `${this.prefix}.0/24`;
  }

  /** The far-side (gateway) address. */
  get gateway(): string {
    return `${this.prefix}.1`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.master[Symbol.asyncDispose]();
    await this.far[Symbol.asyncDispose]();
  }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * A shell script that saves its stdin, CNI_* environment, stdout and exit code under `recDir`, then runs
 * `argv` with the same stdin and arguments. File names start with the start time in nanoseconds.
 */
function recorderScript(name: string, recDir: string, argv: string[]): string {
  return `#!/bin/sh
# Written by the ipoib-cni e2e tests: records this invocation, then runs the real plugin.
rec=${shellQuote(recDir)}/"$(date +%s%N)-$$-${name}"
cat > "$rec.stdin"
env | grep '^CNI_' > "$rec.env"
${argv.map(shellQuote).join(" ")} "$@" < "$rec.stdin" > "$rec.stdout"
rc=$?
cat "$rec.stdout"
echo "$rc" > "$rec.rc"
exit "$rc"
`;
}

/** One recorded plugin invocation. */
export interface Invocation {
  plugin: string;
  /** CNI_COMMAND. */
  command: string;
  env: Record<string, string>;
  /** stdin as sent, and decoded (undefined when it is not JSON). */
  stdinText: string;
  stdin: Json;
  stdoutText: string;
  /** stdout decoded, undefined when empty or not JSON. */
  stdout: Json | undefined;
  code: number;
}

function tryJson(text: string): Json | undefined {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A CNI plugin directory for a runtime: `ipoib` runs the stand-in entry (tests/standin/main.ts) with the
 * production flags and the pinned Deno; `host-local`, `tuning` and `loopback` run Debian's. Each records
 * what it got. The runtime's plugin path must list this directory before /usr/lib/cni; a runtime that takes
 * one directory only (containerd) finds every plugin it needs here.
 */
export class PluginDir {
  readonly dir: string;
  readonly recDir: string;

  private constructor(dir: string, recDir: string) {
    this.dir = dir;
    this.recDir = recDir;
  }

  static async create(tmp: TempDir): Promise<PluginDir> {
    const p = new PluginDir(await tmp.sub("plugins"), await tmp.sub("recordings"));
    const targets: Record<string, string[]> = {
      ipoib: STANDIN,
      "host-local": [`${GO_CNI}/host-local`],
      tuning: [`${GO_CNI}/tuning`],
      loopback: [`${GO_CNI}/loopback`],
    };
    for (const [name, argv] of Object.entries(targets)) {
      await Deno.writeTextFile(`${p.dir}/${name}`, recorderScript(name, p.recDir, argv), { mode: 0o755 });
    }
    return p;
  }

  /** The CNI_PATH / plugin directory list: ours first, then Debian's. */
  get path(): string[] {
    return [this.dir, GO_CNI];
  }

  /** Forgets the recordings so far (between scenarios). */
  async clear(): Promise<void> {
    for (const e of Deno.readDirSync(this.recDir)) await Deno.remove(`${this.recDir}/${e.name}`);
  }

  /** Every recorded invocation, in start order; `plugin` narrows to one plugin. */
  invocations(plugin?: string): Invocation[] {
    const stems = new Set<string>();
    for (const e of Deno.readDirSync(this.recDir)) {
      if (e.name.endsWith(".rc")) stems.add(e.name.slice(0, -3));
    }
    const sorted = [...stems].sort((a, b) => {
      const d = BigInt(a.split("-")[0]!) - BigInt(b.split("-")[0]!);
      return d < 0n ? -1 : d > 0n ? 1 : 0;
    });
    const out: Invocation[] = [];
    for (const stem of sorted) {
      const name = stem.split("-").slice(2).join("-");
      if (plugin !== undefined && name !== plugin) continue;
      const read = (ext: string) => Deno.readTextFileSync(`${this.recDir}/${stem}.${ext}`);
      const env = Object.fromEntries(
        read("env").split("\n").filter((l) => l.includes("=")).map((l) => {
          const i = l.indexOf("=");
          return [l.slice(0, i), l.slice(i + 1)];
        }),
      );
      const stdinText = read("stdin");
      const stdoutText = read("stdout");
      out.push({
        plugin: name,
        command: env.CNI_COMMAND ?? "",
        env,
        stdinText,
        stdin: tryJson(stdinText) ?? {},
        stdoutText,
        stdout: tryJson(stdoutText),
        code: Number(read("rc").trim()),
      });
    }
    return out;
  }

  /** The CNI_COMMANDs `plugin` received, in order, VERSION probes left out. */
  verbs(plugin: string): string[] {
    return this.invocations(plugin).map((i) => i.command).filter((c) => c !== "VERSION");
  }

  /** The only recorded `command` of `plugin`; throws when there is not exactly one. */
  one(plugin: string, command: string): Invocation {
    const found = this.invocations(plugin).filter((i) => i.command === command);
    if (found.length !== 1) {
      throw new Error(`expected one ${command} of ${plugin}, recorded ${found.length}`);
    }
    return found[0]!;
  }
}

/** What a conflist varies in besides the stage's wire, leases and log. */
export interface ConflistOptions {
  /** A tuning plugin to chain after ours, or none. */
  tuning?: Json;
  /** Capabilities our plugin declares (libcni then injects matching runtimeConfig). */
  capabilities?: Record<string, boolean>;
  /** Plugins to chain before ours (their results reach ours as prevResult). */
  before?: Json[];
  /** Fields to add to our plugin's configuration. */
  extra?: Json;
}

/**
 * What one scenario works with: a fresh wire on its own /24, a host-local lease directory, a network name,
 * the plugin's log file and a tuning state directory. The wire and leases are removed after the scenario.
 */
export class Stage {
  readonly plugins: PluginDir;
  readonly wire: Wire;
  readonly leases: TestLeases;
  readonly net: string;
  readonly logFile: string;
  readonly tuningDir: string;

  private constructor(plugins: PluginDir, wire: Wire, leases: TestLeases, tmp: TempDir, tuningDir: string) {
    this.plugins = plugins;
    this.wire = wire;
    this.leases = leases;
    this.net = `ipoib-e2e-${wire.prefix.split(".").pop()}`;
    this.logFile = `${tmp.path}/${this.net}.log`;
    this.tuningDir = tuningDir;
  }

  /**
   * Runs `body` on a new stage with the recordings cleared; removes the wire and leases after. The master
   * has MTU `mtu` (default 1500).
   */
  static async run(
    tmp: TempDir,
    plugins: PluginDir,
    prefix: string,
    body: (stage: Stage) => Promise<void>,
    mtu?: number,
  ): Promise<void> {
    await plugins.clear();
    await using wire = await Wire.create(prefix, mtu);
    await using leases = await TestLeases.create();
    const tuningDir = await tmp.sub(`tuning-${prefix}`);
    await body(new Stage(plugins, wire, leases, tmp, tuningDir));
  }

  /** A network configuration list whose first plugin is ipoib with host-local on the wire's subnet. */
  conflist(version: string, o: ConflistOptions = {}): Json {
    const ipoib: Json = {
      type: "ipoib",
      master: this.wire.master.name,
      logFile: this.logFile,
      logLevel: "debug",
      ipam: {
        type: "host-local",
        dataDir: this.leases.dir,
        ranges: [[{
          subnet: this.wire.subnet,
          gateway: this.wire.gateway,
          rangeStart: `${this.wire.prefix}.10`,
          rangeEnd: `${this.wire.prefix}.60`,
        }]],
        routes: [{ dst: "0.0.0.0/0" }],
      },
      ...(o.capabilities ? { capabilities: o.capabilities } : {}),
      ...o.extra,
    };
    return {
      cniVersion: version,
      name: this.net,
      plugins: [...o.before ?? [], ipoib, ...o.tuning ? [{ type: "tuning", ...o.tuning }] : []],
    };
  }

  /** Tuning settings visible inside the namespace (promiscuous mode and one sysctl), plus `extra`. */
  tuning(ifname: string, extra: Json = {}): Json {
    return {
      dataDir: this.tuningDir,
      promisc: true,
      sysctl: { [`net.ipv4.conf.${ifname}.arp_ignore`]: "1" },
      ...extra,
    };
  }

  /** Plugin invocations in order as "plugin VERB", without host-local and VERSION probes. */
  chainOrder(): string[] {
    return this.plugins.invocations().filter((i) => i.plugin !== "host-local" && i.command !== "VERSION")
      .map((i) => `${i.plugin} ${i.command}`);
  }
}

/** Files left in a directory tree (leases, tuning state), relative to it; [] when it does not exist. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      if (e.isDirectory) walk(`${d}/${e.name}`, `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  try {
    walk(dir, "");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}
