/**
 * Delegation to the IPAM plugin named in `ipam.type`, executed from CNI_PATH as the CNI spec describes:
 * same environment with CNI_COMMAND set, the whole original config on stdin, its stderr passed on to
 * ours, a bounded run time after which it and everything it started is killed, bounded output.
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
 * The path of the executable plugin `type` in the first CNI_PATH directory that holds it. A relative entry
 * is skipped: it would name a directory relative to wherever the runtime happened to start the plugin. Such
 * an entry, or one that is a file, does not fail the run either (Go's plugins accept both), so a DEL can
 * still finish.
 * @throws IpamNotFound when no directory holds it, or the first file found is not executable
 */
export function findPlugin(type: string, path: string[]): string {
  for (const dir of path) {
    if (!dir.startsWith("/")) continue;
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
const encoder = new TextEncoder();

/** The most an IPAM plugin may print on stdout: a CNI result is a few KiB; more is a broken plugin. */
export const IPAM_STDOUT_LIMIT = 4 << 20;
/**
 * The most of an IPAM plugin's stderr that is passed on to ours: of more, its first 16 KiB and its last
 * 48 KiB (where a failing plugin says why), with a line between saying how much was left out (ffi/spawn.ts).
 */
export const IPAM_STDERR_LIMIT = 64 << 10;

/** Something stderr can be written to synchronously, as `Deno.stderr` is. */
export interface StderrWriter {
  writeSync(p: Uint8Array): number;
}

/** The start of `text`, trimmed, at most 200 characters. */
function excerpt(text: string): string {
  const t = text.trim();
  return t.length > 200 ? `${t.slice(0, 197)}...` : t;
}

/** The end of `text`, trimmed, at most 200 characters: where a failing program's stderr says why. */
function endExcerpt(text: string): string {
  const t = text.trim();
  return t.length > 200 ? `...${t.slice(-197)}` : t;
}

/**
 * `stdin` (a JSON object) with the value of its top-level `cniVersion` member replaced by `version`, every
 * other byte as it was: numbers such as 12345678901234567890 or 1.0 reach the IPAM plugin as written, which
 * a JSON.parse / JSON.stringify round trip would not guarantee. A config without the member gets it first.
 * @throws SyntaxError when `stdin` is not a JSON object (the plugin decoded it before, so it is one)
 */
export function withVersion(stdin: Uint8Array, version: string): Uint8Array {
  const spans = topLevelValueSpans(stdin, "cniVersion");
  const value = encoder.encode(JSON.stringify(version));
  if (spans.length === 0) {
    const open = stdin.indexOf(0x7b); // "{"
    const empty = nextToken(stdin, open + 1) === 0x7d; // "}"
    const member = encoder.encode(`"cniVersion":${JSON.stringify(version)}${empty ? "" : ","}`);
    return concat([stdin.subarray(0, open + 1), member, stdin.subarray(open + 1)]);
  }
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const [start, end] of spans) {
    parts.push(stdin.subarray(at, start), value);
    at = end;
  }
  parts.push(stdin.subarray(at));
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const isSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/** The byte at or after `i` that is not JSON whitespace (undefined at the end). */
function nextToken(bytes: Uint8Array, i: number): number | undefined {
  while (isSpace(bytes[i])) i++;
  return bytes[i];
}

/** The index just past the JSON string starting at `i` (a '"'). */
function skipString(bytes: Uint8Array, i: number): number {
  for (i++; i < bytes.length; i++) {
    if (bytes[i] === 0x5c) i++; // backslash: the next byte is escaped
    else if (bytes[i] === 0x22) return i + 1;
  }
  throw new SyntaxError("unterminated string in JSON");
}

/** The index just past the JSON value starting at `i` (after whitespace). */
function skipValue(bytes: Uint8Array, i: number): number {
  const first = bytes[i];
  if (first === 0x22) return skipString(bytes, i);
  if (first === 0x7b || first === 0x5b) { // an object or array: match brackets, strings skipped whole
    let depth = 0;
    for (; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0x22) i = skipString(bytes, i) - 1;
      else if (b === 0x7b || b === 0x5b) depth++;
      else if (b === 0x7d || b === 0x5d) {
        if (--depth === 0) return i + 1;
      }
    }
    throw new SyntaxError("unterminated object or array in JSON");
  }
  // A number, true, false or null: up to the next delimiter.
  while (i < bytes.length && !isSpace(bytes[i]) && bytes[i] !== 0x2c && bytes[i] !== 0x7d) i++;
  return i;
}

/** [start, end) of the value of every top-level member named `key` of the JSON object in `bytes`. */
function topLevelValueSpans(bytes: Uint8Array, key: string): [number, number][] {
  const spans: [number, number][] = [];
  let i = 0;
  while (isSpace(bytes[i])) i++;
  if (bytes[i] !== 0x7b) throw new SyntaxError("the network configuration is not a JSON object");
  i++;
  for (;;) {
    while (isSpace(bytes[i]) || bytes[i] === 0x2c) i++;
    if (bytes[i] === 0x7d) return spans;
    if (bytes[i] !== 0x22) throw new SyntaxError(`unexpected byte at ${i} in JSON`);
    const keyEnd = skipString(bytes, i);
    const name = JSON.parse(decoder.decode(bytes.subarray(i, keyEnd))); // escapes decoded, as the IPAM would
    i = keyEnd;
    while (isSpace(bytes[i])) i++;
    if (bytes[i] !== 0x3a) throw new SyntaxError(`expected ':' at ${i} in JSON`);
    i++;
    while (isSpace(bytes[i])) i++;
    const end = skipValue(bytes, i);
    if (name === key) spans.push([i, end]);
    i = end;
  }
}

/** One IPAM plugin as this invocation runs it. */
export class Ipam {
  readonly type: string;
  readonly #path: string[];
  readonly #environ: Record<string, string>;
  #stdin: Uint8Array;
  readonly #timeoutMs: number;
  readonly #log: Logger | undefined;
  readonly #inheritFds: number[];
  readonly #stderr: StderrWriter;

  /**
   * @param type the plugin name from `ipam.type`
   * @param path CNI_PATH entries to search
   * @param environ the environment this plugin was run with
   * @param stdin the original network configuration bytes
   * @param timeoutSeconds how long one IPAM run may take before it is killed
   * @param log where each run's exit status and stderr go at level debug
   * @param options `inheritFds`: descriptors each run of the plugin inherits (the attachment's lock,
   *   ffi/lock.ts); `stderr`: where the plugin's stderr is passed on to (default: this process's)
   */
  constructor(
    type: string,
    path: string[],
    environ: Record<string, string>,
    stdin: Uint8Array,
    timeoutSeconds: number,
    log?: Logger,
    options: { inheritFds?: number[]; stderr?: StderrWriter } = {},
  ) {
    this.type = type;
    this.#path = path;
    this.#environ = environ;
    this.#stdin = stdin;
    this.#timeoutMs = timeoutSeconds * 1000;
    this.#log = log;
    this.#inheritFds = options.inheritFds ?? [];
    this.#stderr = options.stderr ?? Deno.stderr;
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
      // Deno.Command costs several ms and MB per run. The child gets its own process group, and when it
      // ends (or its time is up) every process it started and left running is killed, wherever it went.
      output = runChild({
        path: binary,
        env: { ...this.#environ, CNI_COMMAND: verb },
        stdin,
        timeoutMs: this.#timeoutMs,
        inheritFds: this.#inheritFds,
        stdoutLimit: IPAM_STDOUT_LIMIT,
        stderrLimit: IPAM_STDERR_LIMIT,
        killDescendants: true,
      });
    } catch (e) {
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" could not be started`,
        String(e),
        { cause: e },
      );
    }
    this.#forwardStderr(output);
    const out = decoder.decode(output.stdout);
    const ended = output.signal ? `signal ${output.signal}` : `code ${output.code}`;
    this.#log?.debug(
      `ipam ${verb}: ${binary} exited with ${ended}` +
        (output.descendantsKilled > 0 ? `, ${output.descendantsKilled} leftover process(es) killed` : "") +
        `; stderr: ${endExcerpt(decoder.decode(output.stderr)) || "(empty)"}`,
    );
    if (output.timedOut) {
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" ${verb} did not finish within ${this.#timeoutMs / 1000} s and was killed`,
      );
    }
    // The CNI spec gives DEL no output, and libcni ignores what a delegate prints on DEL: exit 0 is success.
    if (verb === "DEL" && output.code === 0) return null;
    if (output.stdoutTruncated) {
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" ${verb} printed more than ${IPAM_STDOUT_LIMIT >> 20} MiB on stdout`,
        `exited with ${ended}; begins: ${excerpt(out.slice(0, 400))}`,
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
      const stderr = endExcerpt(decoder.decode(output.stderr));
      throw new CniError(
        ErrorCode.IpamFailure,
        `IPAM plugin "${this.type}" ${verb} exited with ${ended}`,
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

  /**
   * Passes the plugin's stderr on to ours, as the CNI spec's delegation procedure says, within the limit:
   * its start and its end, the marker line of ffi/spawn.ts between them.
   */
  #forwardStderr(output: ChildResult): void {
    const bytes = output.stderr;
    try {
      for (let off = 0; off < bytes.length;) off += this.#stderr.writeSync(bytes.subarray(off));
    } catch { /* a caller that closed our stderr does not make the IPAM run fail */ }
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
