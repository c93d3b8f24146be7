/**
 * A podman with the CNI network backend confined to a temporary directory: its own containers.conf
 * (CONTAINERS_CONF), storage.conf (CONTAINERS_STORAGE_CONF), --root/--runroot, CNI config directory and
 * plugin directories, and a busybox image imported from Debian's busybox-static (no registry).
 * Settings this machine needs are explained in /work/shared/NOTES.md ("Real CNI runtimes").
 * @module
 */

import { sh, shQuiet } from "../../support/net.ts";
import type { Json, PluginDir, TempDir } from "./fixtures.ts";

/** The locally built image every container runs. */
export const BUSYBOX_IMAGE = "localhost/ipoib-e2e-busybox:latest";

/** The applets the image links to busybox. */
const APPLETS = ["sh", "ip", "ping", "cat", "sleep"];

/** What one podman command printed. */
export interface PodmanRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** One podman installation's configuration and state, all below `dir`. */
export class Podman implements AsyncDisposable {
  readonly dir: string;
  readonly netDir: string;
  #runroot: string;
  #env: Record<string, string>;

  private constructor(dir: string, netDir: string, runroot: string, env: Record<string, string>) {
    this.dir = dir;
    this.netDir = netDir;
    this.#runroot = runroot;
    this.#env = env;
  }

  /** Writes the configuration, checks podman took it, and imports the busybox image. */
  static async create(tmp: TempDir, plugins: PluginDir): Promise<Podman> {
    const dir = await tmp.sub("pm");
    const netDir = await tmp.sub("pm/net.d");
    const tmpDir = await tmp.sub("pm/tmp");
    // podman refuses a runroot longer than 50 characters.
    const runroot = `${dir}/run`;
    if (runroot.length > 50) throw new Error(`podman runroot ${runroot} is too long: use a shorter TMPDIR`);
    const q = (s: string) => JSON.stringify(s);
    // runc: crun 1.8 refuses this machine's cgroup layout. The ulimits: root here lacks CAP_SYS_RESOURCE
    // and cannot raise nofile/nproc to podman's defaults. cgroupfs and a file event log: no systemd.
    await Deno.writeTextFile(
      `${dir}/containers.conf`,
      `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "cni"
cni_plugin_dirs = [${plugins.path.map(q).join(", ")}]
network_config_dir = ${q(netDir)}

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = ${q(`${dir}/events.log`)}
tmp_dir = ${q(tmpDir)}
volume_path = ${q(`${dir}/volumes`)}
`,
    );
    // vfs: no overlay mounts to leak, and the image is two megabytes.
    await Deno.writeTextFile(
      `${dir}/storage.conf`,
      `[storage]
driver = "vfs"
graphroot = ${q(`${dir}/root`)}
runroot = ${q(runroot)}
`,
    );
    const podman = new Podman(dir, netDir, runroot, {
      CONTAINERS_CONF: `${dir}/containers.conf`,
      CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
    });
    const info = await podman.ok(
      "info",
      "--format",
      "{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}} {{.Store.GraphRoot}}",
    );
    if (info.trim() !== `cni runc ${dir}/root`) {
      throw new Error(`podman did not take the test configuration: ${info}`);
    }
    await podman.#importBusybox(await tmp.sub("rootfs"));
    return podman;
  }

  /** `podman --version`'s version number. */
  async version(): Promise<string> {
    return (await this.ok("version", "--format", "{{.Client.Version}}")).trim();
  }

  async #importBusybox(rootfs: string): Promise<void> {
    await Deno.mkdir(`${rootfs}/bin`, { recursive: true });
    await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
    await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
    // ln, not Deno.symlink: that needs unscoped read and write permissions.
    for (const a of APPLETS) await sh("ln", "-s", "busybox", `${rootfs}/bin/${a}`);
    const tar = `${this.dir}/busybox.tar`;
    await sh("tar", "-C", rootfs, "-cf", tar, ".");
    await this.ok("import", "--quiet", tar, BUSYBOX_IMAGE);
  }

  /** Runs podman with this configuration. */
  async run(...args: string[]): Promise<PodmanRun> {
    const out = await new Deno.Command("podman", {
      args: ["--root", `${this.dir}/root`, "--runroot", this.#runroot, ...args],
      env: this.#env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  }

  /** Runs podman and returns stdout; throws with stderr when it fails. */
  async ok(...args: string[]): Promise<string> {
    const r = await this.run(...args);
    if (r.code !== 0) throw new Error(`podman ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Installs a network configuration list; podman reads the directory on each command. */
  async addNetwork(list: Json): Promise<void> {
    await Deno.writeTextFile(`${this.netDir}/${list.name}.conflist`, JSON.stringify(list, null, 2));
  }

  /** Removes a network configuration list. */
  async removeNetwork(name: string): Promise<void> {
    await Deno.remove(`${this.netDir}/${name}.conflist`).catch(() => {});
  }

  /**
   * Removes every container (which tears down their networks through the plugins) and forgets the
   * namespaces podman made if a failed teardown left any behind.
   */
  async removeAll(netnsPaths: string[] = []): Promise<void> {
    await this.run("rm", "--all", "--force", "--time", "0");
    for (const p of netnsPaths) {
      if (p.startsWith("/run/netns/")) await shQuiet("ip", "netns", "del", p.slice("/run/netns/".length));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.removeAll();
  }
}
