/**
 * Where shared libraries are looked up, and the one place that turns a failed `Deno.dlopen`
 * into a CniError. Nothing is loaded at import time.
 * @module
 */

import { CniError, ErrorCode } from "../lib/errors.ts";

/** The directory beside the executable that may carry private copies of the libraries. */
export const PRIVATE_LIB_DIR = "ipoib.d";

/**
 * The paths tried, in order, for a library: first `ipoib.d/<soname>` beside the running
 * executable (a bundle can ship its own libnl), then the bare soname for the system's
 * dynamic linker. Pure, so the order is testable.
 */
export function libraryCandidates(soname: string, execPath: string | null): string[] {
  if (!execPath) return [soname];
  const slash = execPath.lastIndexOf("/");
  const dir = slash > 0 ? execPath.slice(0, slash) : slash === 0 ? "" : ".";
  return [`${dir}/${PRIVATE_LIB_DIR}/${soname}`, soname];
}

function execPathOrNull(): string | null {
  try {
    return Deno.execPath();
  } catch {
    // Without read permission the private directory cannot be found; the system copy still can.
    return null;
  }
}

/** Which candidate worked per soname, so later symbol groups skip the failed lookups. */
const resolved = new Map<string, string>();

/**
 * Opens `soname` with only the given symbols bound. Failures name the library and the package
 * that provides it; the dlopen messages of every candidate are kept as the cause.
 */
export function openLibrary<S extends Deno.ForeignLibraryInterface>(
  soname: string,
  symbols: S,
  installHint: string,
): Deno.DynamicLibrary<S> {
  const known = resolved.get(soname);
  const candidates = known ? [known] : libraryCandidates(soname, execPathOrNull());
  const failures: string[] = [];
  for (const path of candidates) {
    try {
      const lib = Deno.dlopen(path, symbols);
      resolved.set(soname, path);
      return lib;
    } catch (e) {
      failures.push(`${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new CniError(ErrorCode.LibraryMissing, `cannot load ${soname}`, installHint, {
    cause: new Error(failures.join("; ")),
  });
}

/** The symbols of `table` named by `keys`: one symbol table per library, bound in small groups. */
export function pick<T extends Deno.ForeignLibraryInterface, K extends keyof T & string>(
  table: T,
  keys: readonly K[],
): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) out[k] = table[k];
  return out;
}

/** A symbol group loaded on first use and kept for the life of the process. */
export function lazyGroup<S extends Deno.ForeignLibraryInterface>(
  soname: string,
  symbols: S,
  installHint: string,
  before?: () => unknown,
): () => Deno.DynamicLibrary<S>["symbols"] {
  let lib: Deno.DynamicLibrary<S> | undefined;
  return () => {
    if (!lib) {
      before?.();
      lib = openLibrary(soname, symbols, installHint);
    }
    return lib.symbols;
  };
}
