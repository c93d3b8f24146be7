/**
 * A containerd (Debian's 1.6) confined to a temporary directory, with its CRI plugin (the path kubelet
 * uses) and `ctr run --cni`: its own root, state, gRPC socket and CNI directories, a pod image built from
 * Debian's busybox-static as a docker-archive tar (no registry), and a CRI client of ours (tests/e2e/cri).
 *
 * containerd runs inside `unshare --mount --pid --fork` so that what it and the programs it starts reach
 * outside its directories stays private: /run is a tmpfs (shim sockets, runc state), and the paths libcni and
 * ctr hard-code are bind mounts of the test's directories: /var/lib/cni (libcni's result cache, and
 * host-local's default lease store), /etc/cni/net.d and /opt/cni/bin (ctr's CNI directories). containerd is
 * the PID namespace's init, so stopping it ends every shim and container it started.
 * Settings this machine needs are explained in /work/shared/NOTES.md ("containerd's CRI plugin").
 * @module
 */

import { sh } from "../../support/net.ts";
import { goBuild, type Json, type PluginDir, type TempDir } from "./fixtures.ts";

/** The pod image, as `ctr images import` names it from the archive's RepoTags. */
export const POD_IMAGE = "docker.io/ipoib-e2e/pod:1";

/** The applets the image links to busybox. */
const APPLETS = ["sh", "ip", "ping", "cat", "sleep"];

/** The containerd namespace of CRI's pods, and the one ctr's containers use. */
const CRI_NAMESPACE = "k8s.io";
const CTR_NAMESPACE = "ipoib-e2e";

/** Bound on every runtime command: a hang fails the test instead of stalling the suite. */
const COMMAND_TIMEOUT_MS = 60_000;

/** What one command printed. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command with a deadline; never throws for a non-zero exit. */
async function run(argv: string[], env?: Record<string, string>): Promise<Run> {
  const out = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** Like {@link run}; throws with stderr when the command fails, returns stdout. */
async function ok(argv: string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A pod sandbox's status as PodSandboxStatus (verbose) reports it. */
export interface SandboxStatus {
  id: string;
  state: string;
  /** PodSandboxNetworkStatus.ip. */
  ip: string;
  additionalIps: string[];
  /** containerd's verbose info: `info.info.netNamespaceClosed`, `info.info.cniResult`, ... */
  info: { info?: Json };
}

/** Kubernetes metadata of a pod sandbox. */
export interface PodMeta {
  name: string;
  namespace: string;
  uid: string;
}

/** One private containerd and the clients that talk to it. */
export class Containerd implements AsyncDisposable {
  readonly dir: string;
  readonly socket: string;
  /** CRI's `cni.conf_dir`. */
  readonly criNetDir: string;
  /** What ctr sees as /etc/cni/net.d. */
  readonly ctrNetDir: string;
  /** What libcni (CRI's and ctr's) sees as /var/lib/cni. */
  readonly cniCacheDir: string;
  readonly log: string;
  #unshare: Deno.ChildProcess;
  #pid: number;
  #cri: string;
  #stopped = false;

  private constructor(
    dir: string,
    paths: { criNetDir: string; ctrNetDir: string; cniCacheDir: string },
    unshare: Deno.ChildProcess,
    pid: number,
    cri: string,
  ) {
    this.dir = dir;
    this.socket = `${dir}/containerd.sock`;
    this.criNetDir = paths.criNetDir;
    this.ctrNetDir = paths.ctrNetDir;
    this.cniCacheDir = paths.cniCacheDir;
    this.log = `${dir}/containerd.log`;
    this.#unshare = unshare;
    this.#pid = pid;
    this.#cri = cri;
  }

  /**
   * Writes the configuration, starts containerd, waits (bounded) until it answers, builds the CRI client
   * and imports the pod image into both namespaces. Stops containerd again when any step fails.
   */
  static async start(tmp: TempDir, plugins: PluginDir): Promise<Containerd> {
    const dir = await tmp.sub("ctrd");
    const criNetDir = await tmp.sub("ctrd/cri-net.d");
    const ctrNetDir = await tmp.sub("ctrd/ctr-net.d");
    const cniCacheDir = await tmp.sub("ctrd/cni-cache");
    // A unix socket's path holds at most 107 bytes (sun_path), and containerd adds ".ttrpc" for its second.
    if (`${dir}/containerd.sock.ttrpc`.length > 107) {
      throw new Error(`containerd socket path below ${dir} is too long: use a shorter TMPDIR`);
    }
    const q = (s: string) => JSON.stringify(s);
    // restrict_oom_score_adj: root here may not lower oom_score_adj. netns_mounts_under_state_dir: pod
    // namespaces are pinned below our state dir, not in /run/netns. The native snapshotter leaves no overlay
    // mounts behind; the other snapshotters need kernel features this machine lacks and only log noise.
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      `version = 2
root = ${q(`${dir}/root`)}
state = ${q(`${dir}/state`)}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = ${q(`${dir}/containerd.sock`)}

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(`${dir}/opt`)}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(POD_IMAGE)}
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${q(plugins.dir)}
    conf_dir = ${q(criNetDir)}
`,
    );
    // The mount points must exist on the host; /opt/cni is made on a tmpfs so the host's /opt stays as is.
    await Deno.writeTextFile(
      `${dir}/start.sh`,
      `set -e
mkdir -p /var/lib/cni /etc/cni/net.d
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /opt
mkdir -p /opt/cni/bin
mount --bind ${q(cniCacheDir)} /var/lib/cni
mount --bind ${q(ctrNetDir)} /etc/cni/net.d
mount --bind ${q(plugins.dir)} /opt/cni/bin
exec containerd --config ${q(`${dir}/config.toml`)} > ${q(`${dir}/containerd.log`)} 2>&1
`,
    );
    const unshare = new Deno.Command("unshare", {
      args: [
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "sh",
        `${dir}/start.sh`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let c: Containerd | undefined;
    try {
      const pid = await childOf(unshare);
      c = new Containerd(dir, { criNetDir, ctrNetDir, cniCacheDir }, unshare, pid, `${dir}/cri`);
      await c.#waitReady();
      await goBuild("cri", dir);
      const archive = await podImageArchive(await tmp.sub("ctrd/image"));
      for (const ns of [CRI_NAMESPACE, CTR_NAMESPACE]) {
        await ok([...c.#ctrArgv(ns), "images", "import", "--snapshotter", "native", archive]);
      }
      return c;
    } catch (e) {
      if (c) await c.stop();
      else {
        try {
          unshare.kill("SIGKILL");
        } catch { /* already gone */ }
        await unshare.status;
      }
      throw e;
    }
  }

  /** containerd's version line. */
  async version(): Promise<string> {
    return (await ok(["containerd", "--version"])).trim();
  }

  async #waitReady(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await run([...this.#ctrArgv(CRI_NAMESPACE), "version"]);
      if (r.code === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`containerd did not answer within 20 s: ${r.stderr}\n${await this.#logTail()}`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  async #logTail(): Promise<string> {
    const text = await Deno.readTextFile(this.log).catch(() => "");
    return text.split("\n").slice(-20).join("\n");
  }

  /** ctr entering containerd's mount and PID namespaces (it resolves /proc/<task pid> itself). */
  #ctrArgv(namespace: string): string[] {
    return ["nsenter", "-t", String(this.#pid), "-m", "-p", "--", "ctr", "-a", this.socket, "-n", namespace];
  }

  /** Runs `ctr` in the namespace of ctr's containers. */
  async ctr(...args: string[]): Promise<Run> {
    return await run([...this.#ctrArgv(CTR_NAMESPACE), ...args]);
  }

  /** Runs a command inside the network namespace pinned at `netnsPath` (a mount in containerd's namespace). */
  async inNetns(netnsPath: string, ...argv: string[]): Promise<string> {
    return await ok([
      "nsenter",
      "-t",
      String(this.#pid),
      "-m",
      "--",
      "nsenter",
      `--net=${netnsPath}`,
      ...argv,
    ]);
  }

  /** Runs our CRI client against this containerd. */
  async cri(...args: string[]): Promise<Run> {
    return await run([this.#cri, "-socket", this.socket, ...args]);
  }

  async #criOk(...args: string[]): Promise<string> {
    const r = await this.cri(...args);
    if (r.code !== 0) throw new Error(`cri ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  /** RunPodSandbox; returns the sandbox ID. Throws with the runtime's error when the pod does not start. */
  async runPodSandbox(pod: PodMeta): Promise<string> {
    return (await this.#criOk("run", "-name", pod.name, "-namespace", pod.namespace, "-uid", pod.uid)).trim();
  }

  /** PodSandboxStatus, verbose. */
  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    return JSON.parse(await this.#criOk("status", "-id", id));
  }

  /** StopPodSandbox: tears the pod's network down (CNI DEL). */
  async stopPodSandbox(id: string): Promise<void> {
    await this.#criOk("stop", "-id", id);
  }

  /** RemovePodSandbox. */
  async removePodSandbox(id: string): Promise<void> {
    await this.#criOk("remove", "-id", id);
  }

  /**
   * Makes `network` (a configuration list, or a single plugin's `.conf`) CRI's only network and waits
   * (bounded) until the CRI plugin has loaded it: it watches its conf_dir and reloads asynchronously.
   */
  async setCriNetwork(network: Json): Promise<void> {
    for (const e of Deno.readDirSync(this.criNetDir)) await Deno.remove(`${this.criNetDir}/${e.name}`);
    // Written in place in one write: containerd 1.6 reloads on write and remove events, not on a create,
    // so a file renamed into the directory would go unnoticed.
    await Deno.writeTextFile(`${this.criNetDir}/${networkFile(network)}`, JSON.stringify(network));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const loaded = await this.#criOk("runtime-status");
      if (loaded.includes(`"Name":${JSON.stringify(network.name)}`)) return;
      if (Date.now() > deadline) {
        throw new Error(`CRI did not load network ${network.name}: ${loaded}\n${await this.#logTail()}`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /** Makes `network` the only file in ctr's /etc/cni/net.d (ctr reads it on each `run --cni`). */
  async setCtrNetwork(network: Json): Promise<void> {
    for (const e of Deno.readDirSync(this.ctrNetDir)) await Deno.remove(`${this.ctrNetDir}/${e.name}`);
    await Deno.writeTextFile(`${this.ctrNetDir}/${networkFile(network)}`, JSON.stringify(network, null, 2));
  }

  /** libcni cache entries (results/*) left, by file name. */
  cachedResults(): string[] {
    try {
      return [...Deno.readDirSync(`${this.cniCacheDir}/results`)].map((e) => e.name);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  }

  /**
   * Stops containerd: SIGTERM, then SIGKILL after 10 s. As the PID namespace's init, its end takes every shim
   * and container with it, and its mount namespace (the pod namespaces' pins, the tmpfs mounts) goes too.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const signal = (s: Deno.Signal) => {
      try {
        Deno.kill(this.#pid, s);
      } catch { /* already gone */ }
    };
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), 10_000);
    try {
      await this.#unshare.status;
    } finally {
      clearTimeout(timer);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** The file name libcni expects for a network: `.conflist` for a list, `.conf` for a single plugin. */
function networkFile(network: Json): string {
  return `${network.name}.${"plugins" in network ? "conflist" : "conf"}`;
}

/** The PID (in our namespace) of the process unshare forked, waiting for it to appear (bounded). */
async function childOf(parent: Deno.ChildProcess): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run(["ps", "-o", "pid=", "--ppid", String(parent.pid)]);
    const pid = Number.parseInt(r.stdout.trim(), 10);
    if (pid > 0) return pid;
    if (Date.now() > deadline) throw new Error("unshare started no child");
    await new Promise((res) => setTimeout(res, 20));
  }
}

/**
 * Builds the pod image as a docker-archive tar (manifest.json, config.json, one layer) in `dir`: a busybox
 * rootfs whose entrypoint sleeps, standing in for the pause image; returns the tar's path.
 */
async function podImageArchive(dir: string): Promise<string> {
  const rootfs = `${dir}/rootfs`;
  await Deno.mkdir(`${rootfs}/bin`, { recursive: true });
  await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
  await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
  for (const a of APPLETS) await sh("ln", "-s", "busybox", `${rootfs}/bin/${a}`);
  const layer = `${dir}/layer.tar`;
  await sh("tar", "-C", rootfs, "-cf", layer, ".");
  const digest = (await sh("sha256sum", layer)).split(" ")[0];
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({
      architecture: arch,
      os: "linux",
      config: { Entrypoint: ["/bin/sleep", "86400"] },
      rootfs: { type: "layers", diff_ids: [`sha256:${digest}`] },
    }),
  );
  const [, repo, tag] = /^docker\.io\/(.+):(.+)$/.exec(POD_IMAGE)!;
  await Deno.writeTextFile(
    `${dir}/manifest.json`,
    JSON.stringify([{ Config: "config.json", RepoTags: [`${repo}:${tag}`], Layers: ["layer.tar"] }]),
  );
  const archive = `${dir}/pod.tar`;
  await sh("tar", "-C", dir, "-cf", archive, "manifest.json", "config.json", "layer.tar");
  return archive;
}

/** Processes (pid and command line) whose command line names `path`, zombies left out. */
export async function processesNaming(path: string): Promise<string[]> {
  const ps = await sh("ps", "-e", "-o", "pid=,stat=,args=");
  return ps.split("\n").filter((l) => l.includes(path))
    .filter((l) => !/^\s*\d+\s+Z/.test(l))
    .map((l) => l.trim().slice(0, 200));
}
