/**
 * Delegation to the IPAM plugin named in `ipam.type`, executed from CNI_PATH as the CNI spec describes:
 * same environment with CNI_COMMAND set, the whole original config on stdin, a bounded run time.
 * No shell is involved and the plugin name can never be a path (config.ts refuses that).
 * @module
 */

import { type ChildResult, runChild } from "../ffi/spawn.ts";
import { CniError, ErrorCode } from "./errors.ts";
import type { Logger } from "./log.ts";
import { compareVersions } from "./version.ts";

/** The verbs an IPAM plugin is executed with. */
export type IpamVerb = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";

/**
 * Refuses CNI_PATH entries that are relative or exist but are not directories, before anything runs.
 * Entries that do not exist are allowed: runtimes commonly list several candidate directories.
 */
export function validateCniPath(path: string[]): void {
  for (const dir of path) {
    if (!dir.startsWith("/")) {
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_PATH entry "${dir}" is not an absolute path`);
    }
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(dir);
    } catch {
      continue;
    }
    if (!info.isDirectory) {
      throw new CniError(ErrorCode.InvalidEnvironment, `CNI_PATH entry "${dir}" is not a directory`);
    }
  }
}

/** The path of the executable plugin `type` in the first CNI_PATH directory that holds it. */
export function findPlugin(type: string, path: string[]): string {
  for (const dir of path) {
    const candidate = `${dir.replace(/\/+$/, "")}/${type}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(candidate);
    } catch {
      continue;
    }
    if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
    if (info.isFile) throw new IpamNotFound(type, path, candidate);
  }
  throw new IpamNotFound(type, path);
}

/**
 * No runnable IPAM plugin in CNI_PATH (none there, or the first found is not executable): it cannot
 * have run, so for DEL there is nothing it could hold to release.
 */
export class IpamNotFound extends CniError {
  /**
   * @param notExecutable the file found first, when it lacks execute permission
   */
  constructor(type: string, path: string[], notExecutable?: string) {
    super(
      ErrorCode.IpamFailure,
      notExecutable === undefined
        ? `IPAM plugin "${type}" not found in CNI_PATH`
        : `IPAM plugin "${type}" at ${notExecutable} is not executable`,
      `searched: ${path.join(":") || "(empty CNI_PATH)"}`,
    );
  }
}

const decoder = new TextDecoder();

function excerpt(text: string): string {
  const t = text.trim();
  return t.length > 200 ? `${t.slice(0, 197)}...` : t;
}

/** Replaces the top-level cniVersion of a JSON config, keeping everything else byte for byte where possible. */
function withVersion(stdin: Uint8Array, version: string): Uint8Array {
  const conf = JSON.parse(decoder.decode(stdin));
  conf.cniVersion = version;
  return new TextEncoder().encode(JSON.stringify(conf));
}

/** One IPAM plugin as this invocation runs it. */
export class Ipam {
  readonly type: string;
  readonly #path: string[];
  readonly #environ: Record<string, string>;
  #stdin: Uint8Array;
  readonly #timeoutMs: number;
  readonly #log: Logger | undefined;

  /**
   * @param type the plugin name from `ipam.type`
   * @param path CNI_PATH entries to search
   * @param environ the environment this plugin was run with
   * @param stdin the original network configuration bytes
   * @param timeoutSeconds how long one IPAM run may take before it is killed
   * @param log where each run's exit status and stderr go at level debug
   */
  constructor(
    type: string,
    path: string[],
    environ: Record<string, string>,
    stdin: Uint8Array,
    timeoutSeconds: number,
    log?: Logger,
  ) {
    this.type = type;
    this.#path = path;
    this.#environ = environ;
    this.#stdin = stdin;
    this.#timeoutMs = timeoutSeconds * 1000;
    this.#log = log;
  }

  /**
   * Runs the plugin with `verb` and returns its decoded stdout (null when it printed nothing).
   * An IPAM plugin built before the config's cniVersion refuses it (code 1); then the config is
   * re-sent once at the newest version the plugin supports, since every result version converts.
   */
  async exec(verb: IpamVerb): Promise<unknown> {
    try {
      return await this.#run(verb, this.#stdin);
    } catch (e) {
      if (!(e instanceof CniError) || e.code !== ErrorCode.IncompatibleVersion || verb === "VERSION") throw e;
      const downgraded = await this.#downgrade();
      if (downgraded === null) throw e;
      this.#stdin = downgraded;
      return await this.#run(verb, this.#stdin);
    }
  }

  /** The versions the plugin reports for VERSION, or [] when it cannot say. */
  async supportedVersions(): Promise<string[]> {
    try {
      const info = await this.#run("VERSION", this.#stdin) as { supportedVersions?: unknown };
      return Array.isArray(info?.supportedVersions)
        ? info.supportedVersions.filter((v) => typeof v === "string")
        : [];
    } catch {
      return [];
    }
  }

  async #downgrade(): Promise<Uint8Array | null> {
    const wanted = JSON.parse(decoder.decode(this.#stdin)).cniVersion;
    if (typeof wanted !== "string") return null;
    const older = (await this.supportedVersions()).filter((v) => compareVersions(v, wanted) < 0).sort(
      compareVersions,
    );
    const best = older.at(-1);
    return best === undefined ? null : withVersion(this.#stdin, best);
  }

  #run(verb: IpamVerb, stdin: Uint8Array): unknown {
    const binary = findPlugin(this.type, this.#path);
    let output: ChildResult;
    try {
      // Synchronous, through posix_spawn (ffi/spawn.ts): the plugin has nothing else to do meanwhile, and
      // Deno.Command costs several ms and MB per run. The child gets its own process group, so a timeout
      // kills what it started too.
      output = runChild({
        path: binary,
        env: { ...this.#environ, CNI_COMMAND: verb },
        stdin,
        timeoutMs: this.#timeoutMs,
      });
    } catch (e) {
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" could not be started`,
        String(e),
        { cause: e },
      );
    }
    const out = decoder.decode(output.stdout);
    this.#log?.debug(
      `ipam ${verb}: ${binary} exited with ${
        output.signal ? `signal ${output.signal}` : `code ${output.code}`
      }` +
        `; stderr: ${excerpt(decoder.decode(output.stderr)) || "(empty)"}`,
    );
    if (output.timedOut) {
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" ${verb} did not finish within ${this.#timeoutMs / 1000} s and was killed`,
      );
    }
    if (output.code !== 0) {
      const reported = parseErrorObject(out);
      if (reported) {
        throw new CniError(
          reported.code,
          `IPAM plugin "${this.type}" ${verb} failed: ${reported.msg}`,
          reported.details,
        );
      }
      const stderr = excerpt(decoder.decode(output.stderr));
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" ${verb} exited with ${
          output.signal ? `signal ${output.signal}` : `code ${output.code}`
        }`,
        excerpt(out) || stderr,
      );
    }
    if (out.trim() === "") return null;
    try {
      return JSON.parse(out);
    } catch {
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" ${verb} printed invalid JSON`,
        excerpt(out),
      );
    }
  }
}

/** A CNI error object printed by a failed plugin, or null when the output is not one. */
function parseErrorObject(text: string): { code: number; msg: string; details: string } | null {
  try {
    const o = JSON.parse(text);
    if (o && typeof o === "object" && Number.isInteger(o.code) && typeof o.msg === "string") {
      return { code: o.code, msg: o.msg, details: typeof o.details === "string" ? o.details : "" };
    }
  } catch { /* not JSON */ }
  return null;
}
