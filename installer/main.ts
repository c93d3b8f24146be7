/**
 * `ipoib-installer`: the DaemonSet entrypoint. Installs the plugin and its libraries into the host's CNI bin
 * directory, logs what it wrote, then stays up until SIGTERM or SIGINT and exits 0, so that the pod reports
 * Running while the node has the plugin.
 *
 * Exit status: 0 after a signal (or for --help/--version), 1 when the install fails, 2 on a bad command line.
 * @module
 */

import { BUILD_INFO } from "../lib/build_info.ts";
import { checkCniBinDir, defaultBinFile, parseInstallerArgs, usage, UsageError } from "./flags.ts";
import { InstallError, installPlugin } from "./install.ts";

const NAME = "ipoib-installer";

/** The signals that end the installer: kubelet sends SIGTERM on pod deletion, a terminal sends SIGINT. */
const TERMINATION_SIGNALS = ["SIGTERM", "SIGINT"] as const;

/** A pending wait for the first termination signal. */
export interface TerminationListener {
  /** The first of SIGTERM and SIGINT received. */
  received: Promise<Deno.Signal>;
  /** Stops listening (the promise then never settles). */
  stop(): void;
}

/**
 * Starts listening for SIGTERM and SIGINT. Listening starts before the install so that a signal during the copy
 * ends the process after the copy, not in the middle of it. As PID 1 of a container the installer would
 * otherwise ignore SIGTERM and be killed only at the end of the grace period.
 */
export function listenForTermination(): TerminationListener {
  let stop = () => {};
  const received = new Promise<Deno.Signal>((resolve) => {
    // A signal listener does not keep Deno's event loop alive; an idle timer does, until a signal arrives.
    const keepAlive = setInterval(() => {}, 2 ** 31 - 1);
    const handlers = TERMINATION_SIGNALS.map((signal) => {
      const handler = () => {
        stop();
        resolve(signal);
      };
      Deno.addSignalListener(signal, handler);
      return [signal, handler] as const;
    });
    stop = () => {
      clearInterval(keepAlive);
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    };
  });
  return { received, stop: () => stop() };
}

/** The stamped build, in the plugin's `--version` format. */
function versionLine(): string {
  return `version:${BUILD_INFO.version}, commit:${BUILD_INFO.commit}, date:${BUILD_INFO.date}`;
}

function log(message: string): void {
  console.log(`${NAME}: ${message}`);
}

/** Runs the installer with `args`; resolves to the process exit status. */
export async function main(args: string[]): Promise<number> {
  const fallbackBin = defaultBinFile(Deno.execPath());
  let options;
  try {
    options = parseInstallerArgs(args, fallbackBin);
    if (options.help) {
      console.log(usage(fallbackBin));
      return 0;
    }
    if (options.version) {
      console.log(`${NAME} ${versionLine()}`);
      return 0;
    }
    await checkCniBinDir(options.cniBinDir);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`${NAME}: error: ${e.message}\n${usage(fallbackBin)}`);
    return 2;
  }

  const termination = listenForTermination();
  log(versionLine());
  try {
    const result = await installPlugin(options.ipoibBinFile, options.cniBinDir);
    for (const w of result.warnings) log(`warning: ${w}`);
    for (const f of result.installed) {
      log(`installed ${f.path} (mode ${f.mode.toString(8).padStart(4, "0")}, ${f.size} bytes)`);
    }
  } catch (e) {
    termination.stop();
    if (!(e instanceof InstallError)) throw e;
    console.error(`${NAME}: error: ${e.message}`);
    return 1;
  }
  log("waiting for SIGTERM or SIGINT");
  log(`received ${await termination.received}, exiting`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    // Permission and other unexpected errors: still one line, not a stack trace, on a pod's log.
    console.error(`${NAME}: error: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
