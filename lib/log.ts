/**
 * The optional per-run log: every step with its outcome and time, for operators diagnosing a node.
 * Logging never breaks the plugin: a log file that cannot be written is dropped. The plugin runs as root, so the file is opened without following a symlink, written only
 * when it is a regular file (never through a FIFO, device or directory), created with mode 0600, and kept
 * below a size limit by renaming it to `<file>.1` (one rotated file).
 * @module
 */

import { causeChain } from "./errors.ts";
import { closeFd, openAppendNoFollow, writeAllFd } from "../ffi/libc.ts";

const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * `text` with line breaks and other control characters escaped, so that one message is one line: input
 * such as a CNI_CONTAINERID holding a newline must not forge lines in the runtime's or the plugin's log.
 */
export function oneLine(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f\u0085\u2028\u2029]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Log levels of the log file, least to most verbose. */
export const LOG_LEVELS = ["error", "info", "debug"] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

const RANK: Record<LogLevel, number> = { error: 0, info: 1, debug: 2 };

/** Bytes the log file may reach before it is rotated, unless the config says otherwise. */
export const DEFAULT_LOG_MAX_SIZE = 4 * 1024 * 1024;

const encoder = new TextEncoder();

/** Where one run's log lines go. */
export class Logger {
  #file: string | undefined;
  #level: number;
  #prefix: string;
  #maxSize: number;

  /**
   * @param file absolute path of the log file, or undefined for none
   * @param level the most verbose level written to the file
   * @param context identifies the run in every line: verb, container id, netns, ifname
   * @param maxSize bytes the file may reach; the line that would pass it first renames the file to
   * `<file>.1` (replacing an older one)
   */
  constructor(file: string | undefined, level: LogLevel, context: string, maxSize = DEFAULT_LOG_MAX_SIZE) {
    this.#file = file;
    this.#level = RANK[level];
    this.#prefix = context;
    this.#maxSize = maxSize;
  }

  #write(level: LogLevel, text: string): void {
    if (this.#file === undefined || RANK[level] > this.#level) return;
    const line = encoder.encode(
      `${new Date().toISOString()} ${level.toUpperCase()} [${Deno.pid}] ${
        oneLine(`${this.#prefix} ${text}`)
      }\n`,
    );
    // Unusable (a symlink, not a regular file, no permission): stop trying, the run goes on.
    if (!appendLine(this.#file, line, this.#maxSize)) this.#file = undefined;
  }

  /**
   * Reports something the run went on without (a DEL config field it could not read): in the log at
   * level error, or on stderr when there is no usable log file.
   */
  report(text: string): void {
    this.#write("error", text);
    if (this.#file === undefined) stderrLine(`ipoib: ${oneLine(text)}`);
  }

  /** Logs a failure with its whole cause chain. */
  error(text: string, cause?: unknown): void {
    this.#write("error", cause === undefined ? text : `${text}: ${causeChain(cause)}`);
  }

  /** Logs a step or an outcome. */
  info(text: string): void {
    this.#write("info", text);
  }

  /** Logs detail useful only when debugging. */
  debug(text: string): void {
    this.#write("debug", text);
  }

  /** Runs one named step, logging its outcome and duration. */
  step<T>(name: string, fn: () => T): T {
    const start = performance.now();
    try {
      const value = fn();
      this.info(`${name}: ok (${(performance.now() - start).toFixed(1)} ms)`);
      return value;
    } catch (e) {
      this.error(`${name}: failed (${(performance.now() - start).toFixed(1)} ms)`, e);
      throw e;
    }
  }

  /** Like {@link step}, for a step that awaits. */
  async stepAsync<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      const value = await fn();
      this.info(`${name}: ok (${(performance.now() - start).toFixed(1)} ms)`);
      return value;
    } catch (e) {
      this.error(`${name}: failed (${(performance.now() - start).toFixed(1)} ms)`, e);
      throw e;
    }
  }
}

function stderrLine(text: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(`${text}\n`));
  } catch { /* no stderr: nothing more can be done */ }
}

/**
 * Appends one line to the log file, rotating it first when the line would take it past `maxSize`.
 * False when the file cannot be used: a symlink (O_NOFOLLOW), not a regular file, no permission.
 */
function appendLine(path: string, line: Uint8Array<ArrayBuffer>, maxSize: number): boolean {
  // Opening a device can act on it (a tape rewinds): only an absent path or a regular file is opened.
  // fstat below still decides, should the path be replaced between this look and the open.
  try {
    if (!Deno.lstatSync(path).isFile) return false;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return false;
  }
  let file = openAppendNoFollow(path, 0o600);
  if (typeof file !== "number" && file.regular && file.size > 0 && file.size + line.length > maxSize) {
    closeFd(file.fd);
    try {
      Deno.renameSync(path, `${path}.1`);
    } catch {
      return false;
    }
    file = openAppendNoFollow(path, 0o600);
  }
  if (typeof file === "number") return false;
  try {
    return file.regular && writeAllFd(file.fd, line) === 0;
  } finally {
    closeFd(file.fd);
  }
}
