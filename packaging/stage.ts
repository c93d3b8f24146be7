/**
 * Stages one entry point for `deno compile`: copies exactly the local modules of its module graph, plus
 * deno.json and deno.lock, into a fresh directory, and writes the stamped version into the staged
 * `lib/build_info.json` (a JSON module, rewritten whole rather than edited). The tracked file is never
 * touched, and compile cannot embed anything (tests, the npm-installed Deno under .tools/) that the entry
 * does not import.
 *
 * Usage: `deno run --allow-read --allow-write=<out> --allow-run=<deno> packaging/stage.ts --out=DIR
 * --entry=FILE [--version=V] [--commit=C] [--date=D]`; an empty value keeps the source default.
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The values `make build` stamps into `BUILD_INFO`. */
export interface Stamp {
  version?: string;
  commit?: string;
  date?: string;
}

/** Where the version information lives, relative to the repository root. */
export const BUILD_INFO_PATH = "lib/build_info.json";

/** Directories whose files must never end up in an executable. */
const FORBIDDEN_PREFIXES = ["tests/", ".tools/", "build/", "bench/", "demo/", "support/"];

/**
 * Returns `source` (the text of lib/build_info.json) with each non-empty stamp value in place of its
 * default, as JSON. Throws when the file is not a JSON object holding a string for each of version,
 * commit and date: a stamp that silently missed would ship the defaults.
 */
export function stampBuildInfo(source: string, stamp: Stamp): string {
  const info = JSON.parse(source) as Record<string, unknown>;
  for (const key of ["version", "commit", "date"] as const) {
    if (typeof info?.[key] !== "string") throw new Error(`${BUILD_INFO_PATH}: expected a string "${key}"`);
    if (stamp[key]) info[key] = stamp[key];
  }
  return JSON.stringify(info, null, 2) + "\n";
}

/** One module of `deno info --json`. */
interface InfoModule {
  specifier: string;
  error?: string;
}

/**
 * Lists the local files (relative to `root`) in the module graph of `entry`, as `deno info` resolves it with
 * the project's import map. Throws on unresolved modules, files outside `root`, or files under one of
 * {@link FORBIDDEN_PREFIXES} (tests/, .tools/, build/, bench/, demo/, support/).
 */
export async function localModules(root: string, entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info ${entry} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules?: InfoModule[] };
  const files: string[] = [];
  for (const m of info.modules ?? []) {
    if (m.error) throw new Error(`${m.specifier}: ${m.error}`);
    if (!m.specifier.startsWith("file:")) continue;
    const rel = relative(root, fileURLToPath(m.specifier));
    if (rel.startsWith("..")) throw new Error(`${entry} imports ${m.specifier}, outside ${root}`);
    if (FORBIDDEN_PREFIXES.some((p) => rel.startsWith(p))) {
      throw new Error(
        `${entry} imports ${rel}: files under ${FORBIDDEN_PREFIXES.join(", ")} must not be compiled`,
      );
    }
    files.push(rel);
  }
  return files.sort();
}

/**
 * Recreates `outDir` holding the graph of `entry` from `root`, deno.json, deno.lock and the stamped build info.
 * @returns the staged files, relative to `outDir`
 */
export async function stage(root: string, entry: string, outDir: string, stamp: Stamp): Promise<string[]> {
  const files = await localModules(root, entry);
  await Deno.remove(outDir, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await Deno.mkdir(outDir, { recursive: true });
  const config = ["deno.json", "deno.lock"].filter((f) => existsSync(join(root, f)));
  for (const rel of [...config, ...files]) {
    const dest = join(outDir, rel);
    await Deno.mkdir(dirname(dest), { recursive: true });
    if (rel === BUILD_INFO_PATH) {
      await Deno.writeTextFile(dest, stampBuildInfo(await Deno.readTextFile(join(root, rel)), stamp));
    } else {
      await Deno.copyFile(join(root, rel), dest);
    }
  }
  return [...config, ...files];
}

function existsSync(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Parses `--name=value` arguments; anything else is an error, since only the Makefile calls this. */
export function parseStageArgs(args: string[]): Record<string, string> {
  const known = new Set(["out", "entry", "version", "commit", "date"]);
  const result: Record<string, string> = {};
  for (const arg of args) {
    const m = /^--([a-z]+)=(.*)$/s.exec(arg);
    if (!m || !known.has(m[1]!)) throw new Error(`stage.ts: unexpected argument ${JSON.stringify(arg)}`);
    result[m[1]!] = m[2]!;
  }
  if (!result.out || !result.entry) throw new Error("stage.ts: --out=DIR and --entry=FILE are required");
  return result;
}

if (import.meta.main) {
  try {
    const a = parseStageArgs(Deno.args);
    const outDir = resolve(a.out!);
    const staged = await stage(Deno.cwd(), a.entry!, outDir, {
      version: a.version,
      commit: a.commit,
      date: a.date,
    });
    console.log(`make build: staged ${staged.length} files for ${a.entry} in ${outDir}`);
  } catch (e) {
    console.error(`make build: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
