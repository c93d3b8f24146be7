/**
 * Shared by the packaging tests: the repository root, temporary directories, and running `make` or the
 * installer as a process.
 * @module
 */

import { fileURLToPath } from "node:url";
import { type Arch, readElfArch } from "../../packaging/elf.ts";

/** The checkout this test file belongs to, without a trailing slash. */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");

/** What a finished process left behind. */
export interface Finished {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock duration in milliseconds. */
  ms: number;
}

/** Where temporary directories go; the only place the packaging tests may write (see `make test-package`). */
export const TMP_ROOT = Deno.env.get("TMPDIR") || "/tmp";

const decoder = new TextDecoder();

/** A temporary directory removed (recursively) at the end of the `using` scope. */
export async function tempDir(prefix = "ipoib-package-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/**
 * The current environment with `DENORT_BIN` removed and `overrides` applied: every make test decides for itself
 * which denort, if any, the build sees.
 */
export function makeEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  // Variables a developer may have exported that would change what make builds or where.
  for (
    const name of ["ARCH", "BUILD_DIR", "VERSION", "COMMIT", "DATE", "DOCKER", "DOCKERFILE", "MAKEFLAGS"]
  ) {
    delete env[name];
  }
  return { ...env, ...overrides };
}

/**
 * Runs `make -s <args>` in the repository with `env` (see {@linkcode makeEnv}); with `offline`, inside a new
 * network namespace that has no interface up, so nothing can leave the machine whatever its network.
 */
export async function runMake(
  args: string[],
  env: Record<string, string>,
  options: { offline?: boolean } = {},
): Promise<Finished> {
  const argv = ["make", "-s", "--no-print-directory", "-C", REPO_ROOT, ...args];
  const [cmd, ...rest] = options.offline ? ["unshare", "--net", ...argv] : argv;
  const started = performance.now();
  const out = await new Deno.Command(cmd!, {
    args: rest,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** The `deno run` command line of the installer with the narrow permissions a test grants it. */
export function installerCommand(args: string[], writable: string): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${REPO_ROOT}/deno.json`,
      "--no-prompt",
      "--allow-read",
      `--allow-write=${writable}`,
      `${REPO_ROOT}/installer/main.ts`,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs the installer to completion (for runs that must exit by themselves). */
export async function runInstaller(args: string[], writable: string): Promise<Finished> {
  const started = performance.now();
  const out = await installerCommand(args, writable).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** Makes a file of `size` bytes whose content depends on `seed`, with permission bits `mode`. */
export async function makeFile(
  path: string,
  seed: number,
  mode: number,
  size = 64 * 1024,
): Promise<Uint8Array> {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) & 0xff;
  await Deno.writeFile(path, data, { mode });
  await Deno.chmod(path, mode);
  return data;
}

/** The architecture of this machine's own executables, and the other supported one (for cross builds). */
export async function archs(): Promise<{ host: Arch; other: Arch }> {
  const elf = await readElfArch("/bin/true");
  if (!elf.ok) throw new Error(`/bin/true: ${elf.reason}`);
  return { host: elf.arch, other: elf.arch === "amd64" ? "arm64" : "amd64" };
}
