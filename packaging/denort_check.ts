/**
 * `make build` runs this before `deno compile`: it decides whether compile can get the `denort` runtime of the
 * target, and otherwise stops the build with a message saying exactly what is missing. Without it, compile
 * fails late with a DNS error about a URL, or (with a wrong `DENORT_BIN`) silently writes an executable that
 * cannot run.
 *
 * Usage: `deno run --no-config --allow-env=DENORT_BIN --allow-read --allow-run=<deno> --allow-net=dl.deno.land
 * packaging/denort_check.ts <target>`
 *
 * No npm or JSR imports: this runs where nothing may have been downloaded yet.
 * @module
 */

import { type Arch, type ElfArch, readElfArch } from "./elf.ts";

/** The `deno compile --target` values this project builds, with their architecture. */
export const TARGETS: Record<string, Arch> = {
  "x86_64-unknown-linux-gnu": "amd64",
  "aarch64-unknown-linux-gnu": "arm64",
};

/** How long the reachability probe of the download URL may take; DNS may hang where there is no network. */
export const PROBE_TIMEOUT_MS = 10_000;

/** The URL `deno compile` downloads denort from (Deno's `cli/standalone/binary.rs`, release channel). */
export function denortUrl(denoVersion: string, target: string): string {
  return `https://dl.deno.land/release/v${denoVersion}/denort-${target}.zip`;
}

/** Where `deno compile` keeps a downloaded denort and looks for it before downloading. */
export function denortCachePath(denoDir: string, denoVersion: string, target: string): string {
  return `${denoDir}/dl/release/v${denoVersion}/denort-${target}.zip`;
}

/** What the check observed; gathered by {@linkcode gatherFacts} and judged by {@linkcode judge}. */
export interface DenortFacts {
  target: string;
  denoVersion: string;
  /** `DENORT_BIN` as set, or undefined when unset or empty. */
  denortBin?: string;
  /** What `DENORT_BIN` is: a missing or non-regular file, the Deno CLI itself, or an ELF file's architecture. */
  denortBinKind?: "missing" | "not-a-file" | "deno-cli" | ElfArch;
  cachePath: string;
  cached: boolean;
  /** The download probe: reachable, or the error it met. Absent when it was not needed. */
  probe?: { reachable: true } | { reachable: false; error: string };
}

/** The verdict: whether compile will find denort, and the line(s) to print. */
export interface Verdict {
  ok: boolean;
  message: string;
}

/**
 * Decides from the facts whether `deno compile` can get denort. `DENORT_BIN` wins when set (compile reads it
 * without looking at anything else, even for another target, hence the architecture check), then the cache,
 * then the download.
 */
export function judge(f: DenortFacts): Verdict {
  const arch = TARGETS[f.target];
  if (!arch) {
    return { ok: false, message: `make build: unknown deno compile target "${f.target}"` };
  }
  if (f.denortBin !== undefined) {
    const kind = f.denortBinKind;
    const where = `DENORT_BIN=${f.denortBin}`;
    if (kind === "missing") return { ok: false, message: `make build: ${where} does not exist.` };
    if (kind === "not-a-file") return { ok: false, message: `make build: ${where} is not a regular file.` };
    if (kind === "deno-cli") {
      return {
        ok: false,
        message:
          `make build: ${where} is the deno CLI itself, not denort. deno compile would accept it and ` +
          `write an executable that behaves as the deno CLI and ignores the embedded program. ` +
          `Point DENORT_BIN at denort ${f.denoVersion} for ${f.target}.`,
      };
    }
    if (kind && !kind.ok) return { ok: false, message: `make build: ${where} is ${kind.reason}.` };
    if (kind && kind.arch !== arch) {
      return {
        ok: false,
        message:
          `make build: ${where} is a linux ${kind.arch} executable, but ARCH=${arch} needs denort for ` +
          `${f.target}.`,
      };
    }
    return { ok: true, message: `make build: denort for ${f.target} from ${where}` };
  }
  if (f.cached) {
    return { ok: true, message: `make build: denort for ${f.target} from the cache ${f.cachePath}` };
  }
  const url = denortUrl(f.denoVersion, f.target);
  if (f.probe?.reachable) return { ok: true, message: `make build: deno compile will download ${url}` };
  const why = f.probe && !f.probe.reachable ? f.probe.error : "not probed";
  return {
    ok: false,
    message: [
      `make build: no denort runtime for ${f.target}, so deno compile cannot build an executable.`,
      `  DENORT_BIN is not set,`,
      `  no downloaded copy is cached at ${f.cachePath},`,
      `  and the download ${url}`,
      `  is unreachable: ${why}.`,
      `Either set DENORT_BIN=/path/to/denort (denort ${f.denoVersion} for ${f.target}, the file inside that`,
      `zip; the deno CLI cannot stand in for it) or run make build where that URL is reachable.`,
    ].join("\n"),
  };
}

/** Asks the running Deno for its cache directory (`DENO_DIR`), as `deno compile` would resolve it. */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--no-config"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("deno info --json failed");
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: unknown };
  if (typeof info.denoDir !== "string") throw new Error("deno info --json names no denoDir");
  return info.denoDir;
}

/** Classifies the file `DENORT_BIN` names; `deno` is the running Deno CLI, compared by device and inode. */
async function classifyDenortBin(path: string, deno: string): Promise<DenortFacts["denortBinKind"]> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "missing";
    throw e;
  }
  if (!st.isFile) return "not-a-file";
  const cli = await Deno.stat(deno);
  // Hard links count as the same file: npm's deno package links its binary under two names.
  if (st.dev === cli.dev && st.ino !== null && st.ino === cli.ino) return "deno-cli";
  return await readElfArch(path);
}

/** The message of the deepest cause: fetch says only "fetch failed", its cause names the DNS or TCP error. */
export function innermostMessage(e: unknown): string {
  let cur = e;
  while (cur instanceof Error && cur.cause instanceof Error) cur = cur.cause;
  const msg = cur instanceof Error ? cur.message : String(cur);
  // Deno's client error repeats the URL, which the report already shows.
  return msg.replace(/^error sending request for url \([^)]*\): /, "");
}

/** Reports whether the download URL answers at all, within {@linkcode PROBE_TIMEOUT_MS}. */
async function probeDownload(url: string): Promise<NonNullable<DenortFacts["probe"]>> {
  try {
    // Manual redirects: any answer proves the network path; following it would need more --allow-net hosts.
    const res = await fetch(url, {
      method: "HEAD",
      redirect: "manual",
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    await res.body?.cancel();
    if (res.status === 404) return { reachable: false, error: "HTTP 404: no such release file" };
    return { reachable: true };
  } catch (e) {
    return { reachable: false, error: innermostMessage(e) };
  }
}

/** Gathers the facts for `target`, probing the network only when neither `DENORT_BIN` nor the cache serves. */
export async function gatherFacts(target: string): Promise<DenortFacts> {
  const denoVersion = Deno.version.deno;
  const denortBin = Deno.env.get("DENORT_BIN") || undefined;
  const cachePath = denortCachePath(await denoDir(), denoVersion, target);
  const facts: DenortFacts = { target, denoVersion, denortBin, cachePath, cached: false };
  if (denortBin !== undefined) {
    facts.denortBinKind = await classifyDenortBin(denortBin, Deno.execPath());
    return facts;
  }
  facts.cached = await Deno.stat(cachePath).then((s) => s.isFile, () => false);
  if (!facts.cached && TARGETS[target]) facts.probe = await probeDownload(denortUrl(denoVersion, target));
  return facts;
}

if (import.meta.main) {
  const target = Deno.args[0] ?? "";
  const verdict = judge(await gatherFacts(target));
  (verdict.ok ? console.log : console.error)(verdict.message);
  Deno.exit(verdict.ok ? 0 : 1);
}
