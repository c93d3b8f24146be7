/**
 * The libcni client (tests/e2e/cnictl): built from Debian's golang-github-appc-cni-dev sources with
 * golang-go in GOPATH mode, offline, into a temporary directory, and run one verb at a time.
 * @module
 */

import { sh } from "../../support/net.ts";
import { DEBIAN_GOPATH, goBuild, type Json, type PluginDir } from "./fixtures.ts";

const LIBCNI = `${DEBIAN_GOPATH}/src/github.com/containernetworking/cni`;

/** What one cnictl run printed. */
export interface CnictlRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout decoded, undefined when empty or not JSON. */
  json: unknown;
}

/** Identifies the attachment libcni works on (container, namespace, interface). */
export interface Attachment {
  id: string;
  netns: string;
  ifname: string;
}

/** The built client plus the plugin path and cache directory it uses. */
export class Cnictl {
  readonly binary: string;
  readonly cacheDir: string;
  readonly plugins: PluginDir;

  private constructor(binary: string, cacheDir: string, plugins: PluginDir) {
    this.binary = binary;
    this.cacheDir = cacheDir;
    this.plugins = plugins;
  }

  /** Builds the client into `dir` (with a Go build cache there too). */
  static async build(dir: string, plugins: PluginDir): Promise<Cnictl> {
    const binary = await goBuild("cnictl", dir);
    return new Cnictl(binary, `${dir}/cache`, plugins);
  }

  /** The libcni version Debian ships (from its package). */
  static async libcniVersion(): Promise<string> {
    const v = await sh("dpkg-query", "-W", "-f=${Version}", "golang-github-appc-cni-dev");
    await Deno.stat(`${LIBCNI}/libcni/api.go`);
    return v.trim();
  }

  /** Runs one verb: validate, add, check, del or cached. */
  async run(
    verb: string,
    conflistFile: string,
    at: Attachment,
    opts: { args?: string; capabilities?: Json } = {},
  ): Promise<CnictlRun> {
    const args = [
      "-conflist",
      conflistFile,
      "-cachedir",
      this.cacheDir,
      "-path",
      this.plugins.path.join(":"),
      "-netns",
      at.netns,
      "-id",
      at.id,
      "-ifname",
      at.ifname,
    ];
    if (opts.args) args.push("-args", opts.args);
    if (opts.capabilities) args.push("-capabilities", JSON.stringify(opts.capabilities));
    const out = await new Deno.Command(this.binary, {
      args: [...args, verb],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const d = new TextDecoder();
    const stdout = d.decode(out.stdout);
    let json: unknown = undefined;
    try {
      json = JSON.parse(stdout);
    } catch { /* not JSON */ }
    return { code: out.code, stdout, stderr: d.decode(out.stderr), json };
  }

  /** Like {@link run}; throws when the verb fails, returns the decoded stdout. */
  async ok(
    verb: string,
    conflistFile: string,
    at: Attachment,
    opts: { args?: string; capabilities?: Json } = {},
  ): Promise<unknown> {
    const r = await this.run(verb, conflistFile, at, opts);
    if (r.code !== 0) throw new Error(`cnictl ${verb} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.json;
  }

  /** The file libcni caches a network's result and config in (libcni 1.x layout). */
  cacheFile(network: string, at: Attachment): string {
    return `${this.cacheDir}/results/${network}-${at.id}-${at.ifname}`;
  }
}
