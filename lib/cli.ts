/**
 * The process-level runner: flags, the about text, stdin and environment, dispatch to a verb, and the
 * rule that every failure becomes a CNI error object on stdout with exit 1 and never a stack trace.
 * Modules a verb does not need are imported lazily: VERSION loads neither zod nor libnl.
 * @module
 */

import { BUILD_INFO } from "./build_info.ts";
import { errorObject, toCniError } from "./errors.ts";
import { parseEnvironment, refuseNestedRun } from "./env.ts";
import { oneLine } from "./log.ts";
import { foldConfigKeys } from "./keys.ts";
import { decodeJson, readStdin, type SyncReader } from "./stdin.ts";
import { configVersion, LATEST_VERSION, requestedVersion, SUPPORTED_VERSIONS } from "./version.ts";
import type { LinkDriver } from "./driver.ts";

/** What an entry point supplies: the link driver, loaded only by verbs that touch the kernel. */
export interface PluginWiring {
  loadDriver: () => Promise<LinkDriver>;
}

/** Something output can be written to synchronously, as `Deno.stdout` is. */
export interface SyncWriter {
  writeSync(p: Uint8Array): number;
}

/** Where one invocation reads its config and writes its output: the process's own stdio in production. */
export interface PluginIo {
  stdin: SyncReader;
  stdout: SyncWriter;
  stderr: SyncWriter;
}

const PROCESS_IO: PluginIo = { stdin: Deno.stdin, stdout: Deno.stdout, stderr: Deno.stderr };

const encoder = new TextEncoder();

function writeAll(stream: SyncWriter, text: string): void {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += stream.writeSync(bytes.subarray(off));
}

/** The `--version` line. */
export function versionLine(): string {
  return `ipoib-cni version:${BUILD_INFO.version}, commit:${BUILD_INFO.commit}, date:${BUILD_INFO.date}`;
}

/** The one-line about text printed to stderr when CNI_COMMAND is unset. */
function aboutText(): string {
  return `CNI ipoib plugin ${BUILD_INFO.version}: IP over InfiniBand child interfaces for pods; ` +
    `CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}`;
}

const HELP = `Usage: ipoib [--version | --help]

A CNI plugin: run by a container runtime with CNI_COMMAND and the other CNI_* variables
in its environment and the network configuration on stdin (CNI spec 1.1.0).

Options:
  -v, --version   print version, commit and build date
  -h, --help      print this help
`;

/** Handles command-line flags; returns an exit code, or null when there were none. */
async function handleFlags(args: string[], io: PluginIo): Promise<number | null> {
  if (args.length === 0) return null;
  const { parseArgs } = await import("@std/cli");
  const flags = parseArgs(args, { boolean: ["version", "help"], alias: { v: "version", h: "help" } });
  const unknown = Object.keys(flags).filter((k) => !["_", "version", "help", "v", "h"].includes(k));
  if (flags.help) {
    writeAll(io.stdout, HELP);
    return 0;
  }
  if (flags.version) {
    writeAll(io.stdout, versionLine() + "\n");
    return 0;
  }
  const given = [...unknown.map((k) => (k.length === 1 ? `-${k}` : `--${k}`)), ...flags._];
  writeAll(io.stderr, `ipoib: unknown arguments ${given.join(" ")}\n${HELP}`);
  return 2;
}

/**
 * Runs one plugin invocation as a runtime makes it and returns the exit code.
 * Output goes to stdout (result or error object); diagnostics to stderr. `io` is the process's stdio
 * unless a test runs many invocations in one process.
 */
export async function runPlugin(
  args: string[],
  environ: Record<string, string>,
  wiring: PluginWiring,
  io: PluginIo = PROCESS_IO,
): Promise<number> {
  let errorVersion: string = LATEST_VERSION;
  try {
    const flagExit = await handleFlags(args, io);
    if (flagExit !== null) return flagExit;
    if (!environ.CNI_COMMAND) {
      writeAll(io.stderr, aboutText() + "\n");
      return 0;
    }
    const stdin = readStdin(undefined, io.stdin);
    const text = new TextDecoder().decode(stdin);
    // Decoded once; undecodable input is reported (code 6) only after the environment was checked (code 4).
    let decoded: unknown;
    let undecodable: unknown = null;
    try {
      // Member names matched as Go's encoding/json matches them ("Master" is master), as Go's plugins read them.
      decoded = foldConfigKeys(decodeJson(text));
    } catch (e) {
      undecodable = e;
    }
    errorVersion = requestedVersion(decoded);
    const env = parseEnvironment(environ);
    if (env.command === "VERSION") {
      const requested = configVersion(decoded);
      const cniVersion = typeof requested === "string" && /^\d+\.\d+\.\d+$/.test(requested)
        ? requested
        : LATEST_VERSION;
      writeAll(io.stdout, JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS }) + "\n");
      return 0;
    }
    // Before any lock, link or IPAM run: a nested run would wait on the lock its parent holds, or start another.
    refuseNestedRun(environ);
    if (undecodable !== null) throw undecodable;
    const { runVerb } = await import("./plugin.ts");
    const output = await runVerb({ env, environ, stdin, decoded, loadDriver: wiring.loadDriver });
    if (output !== null) writeAll(io.stdout, JSON.stringify(output) + "\n");
    return 0;
  } catch (e) {
    const err = toCniError(e);
    writeAll(io.stdout, JSON.stringify(errorObject(err, errorVersion)) + "\n");
    writeAll(io.stderr, `ipoib: ${oneLine(`${err.message}${err.details ? `: ${err.details}` : ""}`)}\n`);
    return 1;
  }
}
