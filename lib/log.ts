/**
 * The optional per-run log: every step with its outcome and time, for operators diagnosing a node.
 * Logging never breaks the plugin: a log file that cannot be written is dropped silently, and one that is
 * not a regular file (a FIFO without a reader would block the run) is never opened.
 * @module
 */

import { causeChain } from "./errors.ts";

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

/** Log levels, least to most verbose. */
export type LogLevel = "error" | "info" | "debug";

const RANK: Record<LogLevel, number> = { error: 0, info: 1, debug: 2 };

/** Where one run's log lines go. */
export class Logger {
  #file: string | undefined;
  #checked = false;
  #level: number;
  #prefix: string;

  /**
   * @param file absolute path of the log file, or undefined for none
   * @param level the most verbose level written to the file
   * @param context identifies the run in every line: verb, container id, netns, ifname
   */
  constructor(file: string | undefined, level: LogLevel, context: string) {
    this.#file = file;
    this.#level = RANK[level];
    this.#prefix = context;
  }

  #write(level: LogLevel, text: string): void {
    if (this.#file === undefined || RANK[level] > this.#level) return;
    const line = `${new Date().toISOString()} ${level.toUpperCase()} [${Deno.pid}] ${
      oneLine(`${this.#prefix} ${text}`)
    }\n`;
    if (!this.#checked) {
      this.#checked = true;
      if (!isRegularFileOrAbsent(this.#file)) {
        this.#file = undefined;
        return;
      }
    }
    try {
      Deno.writeTextFileSync(this.#file, line, { append: true, create: true, mode: 0o600 });
    } catch {
      this.#file = undefined; // unwritable: stop trying, the run goes on
    }
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

/** True when `path` is a regular file (after symlinks) or does not exist yet. */
function isRegularFileOrAbsent(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (e) {
    return e instanceof Deno.errors.NotFound;
  }
}
