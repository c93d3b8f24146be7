/**
 * Command-line flags of `ipoib-installer`, the DaemonSet entrypoint that copies the plugin to the host.
 * @module
 */

import { parseArgs } from "@std/cli";
import { dirname, isAbsolute, join, normalize } from "node:path";

/** Where the DaemonSet mounts the host's /opt/cni/bin. */
export const DEFAULT_CNI_BIN_DIR = "/host/opt/cni/bin";

/** What the installer was asked to do. */
export interface InstallerOptions {
  /** Print usage and exit. */
  help: boolean;
  /** Print the version line and exit. */
  version: boolean;
  /** The destination: an absolute path, normalised. */
  cniBinDir: string;
  /** The plugin executable to install; its libraries are in `ipoib.d/` beside it. */
  ipoibBinFile: string;
}

/** A bad command line: reported as one line and exit status 2, without a stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The usage text; `defaultBinFile` is the plugin beside the running installer. */
export function usage(defaultBinFile: string): string {
  return [
    "Usage: ipoib-installer [--cni-bin-dir=DIR] [--ipoib-bin-file=FILE]",
    "",
    "Copies the ipoib CNI plugin and its ipoib.d/ libraries into DIR atomically, then waits for",
    "SIGTERM or SIGINT and exits 0 (the life of a DaemonSet pod).",
    "",
    `  --cni-bin-dir=DIR       absolute, existing CNI bin directory (default ${DEFAULT_CNI_BIN_DIR})`,
    `  --ipoib-bin-file=FILE   plugin executable to install (default ${defaultBinFile})`,
    "  --version               print the version and exit",
    "  -h, --help              print this help and exit",
  ].join("\n");
}

/** The plugin's default location: `ipoib` beside the running executable, as the image and `make build` lay out. */
export function defaultBinFile(execPath: string): string {
  return join(dirname(execPath), "ipoib");
}

/**
 * Parses the installer's arguments. Throws {@linkcode UsageError} on unknown flags, positional arguments, or a
 * flag given without a value. Does not touch the file system; see {@linkcode checkCniBinDir}.
 */
export function parseInstallerArgs(args: string[], defaultIpoibBinFile: string): InstallerOptions {
  const unknown: string[] = [];
  const flags = parseArgs(args, {
    string: ["cni-bin-dir", "ipoib-bin-file"],
    boolean: ["help", "version"],
    alias: { h: "help" },
    unknown: (arg: string) => {
      unknown.push(arg);
      return false;
    },
  });
  if (unknown.length > 0) throw new UsageError(`unknown argument ${JSON.stringify(unknown[0])}`);
  for (const name of ["cni-bin-dir", "ipoib-bin-file"]) {
    // parseArgs turns a bare `--cni-bin-dir` into "" rather than failing.
    if (flags[name] === "") throw new UsageError(`--${name} needs a value`);
  }
  const cniBinDir: string = flags["cni-bin-dir"] ?? DEFAULT_CNI_BIN_DIR;
  if (!isAbsolute(cniBinDir)) {
    throw new UsageError(`--cni-bin-dir must be an absolute path, got ${JSON.stringify(cniBinDir)}`);
  }
  return {
    help: flags.help === true,
    version: flags.version === true,
    cniBinDir: normalize(cniBinDir),
    ipoibBinFile: flags["ipoib-bin-file"] ?? defaultIpoibBinFile,
  };
}

/** Throws {@linkcode UsageError} unless `dir` exists and is a directory. */
export async function checkCniBinDir(dir: string): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(dir);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "does not exist"
      : `cannot be read (${(e as Error).message})`;
    throw new UsageError(`--cni-bin-dir ${dir} ${why}`);
  }
  if (!st.isDirectory) throw new UsageError(`--cni-bin-dir ${dir} is not a directory`);
}
