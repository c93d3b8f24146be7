/**
 * Where shared libraries are looked up, how their symbols are bound, and the one place that turns a
 * library that cannot be loaded into a CniError. Nothing is loaded at import time.
 *
 * Symbols are bound through libc's dlopen/dlsym as `Deno.UnsafeFnPointer`s, not with `Deno.dlopen`:
 * Deno.dlopen compiles a machine-code trampoline for every symbol it binds (about 70 us each), which
 * made binding the 60 to 80 symbols of one ADD cost 6 to 9 ms of every run; a function pointer costs
 * nothing to bind and about 1 us more per call, and a run makes a few hundred calls (bench/README.md).
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

/** libc's dynamic loader: the only symbols bound with Deno.dlopen, since binding the rest needs them. */
const LOADER_SYMBOLS = {
  /** void *dlopen(const char *filename, int flags) */
  dlopen: { parameters: ["buffer", /* const char *filename */ "i32" /* int flags */], result: "pointer" },
  /** void *dlsym(void *handle, const char *symbol) */
  dlsym: { parameters: ["pointer", /* void *handle */ "buffer" /* const char *symbol */], result: "pointer" },
  /** char *dlerror(void): the last failure's text, NULL when none */
  dlerror: { parameters: [], result: "pointer" },
  /** int dlclose(void *handle) */
  dlclose: { parameters: ["pointer" /* void *handle */], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let loader: Bound<typeof LOADER_SYMBOLS> | undefined;

const RTLD_NOW = 2;
const encoder = new TextEncoder();

/** A NUL-terminated copy of `s` for a `const char *` parameter. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(encoder.encode(s).length + 1);
  encoder.encodeInto(s, bytes);
  return bytes;
}

function libdl(): Bound<typeof LOADER_SYMBOLS> {
  loader ??= Deno.dlopen("libc.so.6", LOADER_SYMBOLS).symbols;
  return loader;
}

function dlerrorText(what: string): string {
  const p = libdl().dlerror();
  return p ? Deno.UnsafePointerView.getCString(p) : what;
}

/** The handle of the candidate that loaded, per soname, so later symbols skip the failed lookups. */
const handles = new Map<string, Deno.PointerObject>();

/** `symbols` bound from the library `handle`; throws the loader's message when one is missing. */
function bind<S extends Deno.ForeignLibraryInterface>(
  handle: Deno.PointerObject,
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const out: Record<string, unknown> = {};
  for (const [name, definition] of Object.entries(symbols)) {
    const fn = libdl().dlsym(handle, cString(name));
    if (!fn) throw new Error(dlerrorText(`undefined symbol: ${name}`));
    const def = definition as Deno.ForeignFunction;
    const pointer = new Deno.UnsafeFnPointer(fn as Deno.PointerObject<typeof def>, def);
    out[name] = pointer.call.bind(pointer);
  }
  return out as Deno.DynamicLibrary<S>["symbols"];
}

/**
 * Opens `soname` with only the given symbols bound. Failures name the library and the package
 * that provides it; the dlopen messages of every candidate are kept as the cause.
 */
function openLibrary<S extends Deno.ForeignLibraryInterface>(
  soname: string,
  symbols: S,
  installHint: string,
): Deno.DynamicLibrary<S>["symbols"] {
  const dl = libdl();
  const known = handles.get(soname);
  if (known) return bind(known, symbols);
  const failures: string[] = [];
  for (const path of libraryCandidates(soname, execPathOrNull())) {
    const handle = dl.dlopen(cString(path), RTLD_NOW);
    if (!handle) {
      failures.push(`${path}: ${dlerrorText("dlopen failed")}`);
      continue;
    }
    try {
      const bound = bind(handle, symbols);
      handles.set(soname, handle);
      return bound;
    } catch (e) {
      dl.dlclose(handle);
      failures.push(`${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new CniError(ErrorCode.LibraryMissing, `cannot load ${soname}`, installHint, {
    cause: new Error(failures.join("; ")),
  });
}

/** The bound symbols of a library table: each one a function taking its C arguments. */
export type Bound<S extends Deno.ForeignLibraryInterface> = Deno.DynamicLibrary<S>["symbols"];

/**
 * One library's symbol table, bound lazily: the library is opened on first use of any symbol, and
 * each symbol is looked up with dlsym the first time it is called, so a verb pays only for what it
 * calls. `before` runs once before the library is opened (to load a library it depends on first).
 * A library that cannot be loaded is a CniError code 103 (LibraryMissing) naming it, with `installHint` as
 * its details and the dlopen message of every candidate as its cause; a missing symbol in a loaded
 * library too. Thrown by the first use of a symbol, not by this call.
 */
export function lazyLibrary<S extends Deno.ForeignLibraryInterface>(
  soname: string,
  table: S,
  installHint: string,
  before?: () => unknown,
): Bound<S> {
  const bound: Record<string, unknown> = {};
  return new Proxy(bound, {
    get(_, name) {
      if (typeof name !== "string" || !Object.hasOwn(table, name)) return undefined;
      if (!(name in bound)) {
        before?.();
        before = undefined;
        const one = { [name]: table[name]! } as Deno.ForeignLibraryInterface;
        bound[name] = (openLibrary(soname, one, installHint) as Record<string, unknown>)[name];
      }
      return bound[name];
    },
  }) as Bound<S>;
}
