/**
 * Checks of decoded JSON values, each throwing an {@link Issue} (where and what) at the first problem.
 *
 * The configuration was validated with zod until the benchmark showed zod to be the largest start-up
 * cost of a plugin run (about 7 ms and 5 MB of each ADD, bench/README.md). These checks keep zod 3's
 * wording, order of checks and output shapes, so every error reads as before;
 * tests/unit/config_equivalence.test.ts holds the old zod schema and compares the two on generated configs.
 * @module
 */

/** Keys and indexes from the config's root to a value. */
export type Path = (string | number)[];

/** The first problem found in a value. */
export class Issue {
  constructor(readonly path: Path, readonly message: string) {}
}

/** A JSON value's type as the messages name it ("array" and "null" apart from "object"). */
export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number" && Number.isNaN(value)) return "nan";
  return typeof value;
}

function typed<T>(value: unknown, type: string, path: Path, expected = type): T {
  if (value === undefined) throw new Issue(path, "Required");
  if (jsonType(value) !== type) throw new Issue(path, `Expected ${expected}, received ${jsonType(value)}`);
  return value as T;
}

/** A string. */
export function string(value: unknown, path: Path): string {
  return typed<string>(value, "string", path);
}

/** A string of at least one character. */
export function nonEmptyString(value: unknown, path: Path): string {
  const s = string(value, path);
  if (s.length < 1) throw new Issue(path, "String must contain at least 1 character(s)");
  return s;
}

/** true or false. */
export function boolean(value: unknown, path: Path): boolean {
  return typed<boolean>(value, "boolean", path);
}

/** A number, any. */
export function number(value: unknown, path: Path): number {
  return typed<number>(value, "number", path);
}

/** An integer from `min` to `max`. */
export function integer(value: unknown, path: Path, min: number, max: number): number {
  const n = number(value, path);
  if (!Number.isInteger(n)) throw new Issue(path, "Expected integer, received float");
  if (n < min) throw new Issue(path, `Number must be greater than or equal to ${min}`);
  if (n > max) throw new Issue(path, `Number must be less than or equal to ${max}`);
  return n;
}

/** A JSON object (not an array, not null). */
export function object(value: unknown, path: Path): Record<string, unknown> {
  return typed<Record<string, unknown>>(value, "object", path);
}

/** One of `values`. */
export function oneOf<T extends string>(value: unknown, path: Path, values: readonly T[]): T {
  const expected = values.map((v) => `'${v}'`).join(" | ");
  const s = typed<string>(value, "string", path, expected);
  if (!(values as readonly string[]).includes(s)) {
    throw new Issue(path, `Invalid enum value. Expected ${expected}, received '${s}'`);
  }
  return s as T;
}

/** An array of strings, copied. */
export function stringArray(value: unknown, path: Path): string[] {
  return typed<unknown[]>(value, "array", path).map((v, i) => string(v, [...path, i]));
}

/** `check(value)` unless the value is absent. */
export function optional<T>(value: unknown, path: Path, check: (v: unknown, p: Path) => T): T | undefined {
  return value === undefined ? undefined : check(value, path);
}

/** An object whose every value passes `check`, copied without a `__proto__` key. */
export function record<T>(value: unknown, path: Path, check: (v: unknown, p: Path) => T): Record<string, T> {
  const o = object(value, path);
  const out: Record<string, T> = {};
  for (const key of Object.keys(o)) {
    const v = check(o[key], [...path, key]);
    if (key !== "__proto__") out[key] = v;
  }
  return out;
}

/**
 * An object with known fields checked in `shape`'s order and unknown ones kept: the copy holds the known
 * fields first (in `shape`'s order, when present), then the others in their order, never `__proto__`.
 */
export function passthrough(
  value: unknown,
  path: Path,
  shape: Record<string, (v: unknown, p: Path) => unknown>,
): Record<string, unknown> {
  const o = object(value, path);
  const out: Record<string, unknown> = {};
  for (const [key, check] of Object.entries(shape)) {
    const v = check(o[key], [...path, key]);
    if (v !== undefined || Object.hasOwn(o, key)) out[key] = v;
  }
  for (const key of Object.keys(o)) {
    if (!Object.hasOwn(shape, key) && key !== "__proto__") out[key] = o[key];
  }
  return out;
}
