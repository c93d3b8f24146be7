/**
 * Member names of the network configuration matched as Go's encoding/json matches them, so that a config
 * Debian's Go reference plugins accept is read the same way here: a member whose name equals a known field's
 * name without regard to ASCII case (`"Master"`, `"IPAM"`, `"MTU"`, `"CNIVersion"`) sets that field, and where
 * several members set one field the last in the document wins (encoding/json decodes members in order).
 * Unknown members are kept as they are. The IPAM plugin still receives the runtime's bytes.
 * @module
 */

/** The fields this plugin reads, by object: the config itself, and its `ipam` and `dns` members. */
const TOP = [
  "cniVersion",
  "name",
  "type",
  "master",
  "ipam",
  "mtu",
  "pkey",
  "dns",
  "prevResult",
  "logFile",
  "logLevel",
  "logMaxSize",
  "ipamTimeout",
  "args",
  "runtimeConfig",
  "capabilities",
] as const;
const NESTED: Record<string, readonly string[]> = {
  ipam: ["type"],
  dns: ["nameservers", "domain", "search", "options"],
};

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** `obj` with members naming one of `known` in another ASCII case renamed to it, in document order. */
/** ASCII letters in lower case; other characters as they are (JavaScript's toLowerCase folds more than ASCII). */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

function foldObject(obj: Record<string, unknown>, known: readonly string[]): Record<string, unknown> {
  const byFolded = new Map(known.map((k) => [asciiLower(k), k]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const name = byFolded.get(asciiLower(key)) ?? key;
    // A later member for the same field replaces an earlier one, and takes its place at the end, as it was read.
    delete out[name];
    out[name] = value;
  }
  return out;
}

/**
 * The decoded configuration with the names of the members this plugin reads folded to their canonical case,
 * at the top level and in `ipam` and `dns`; anything that is not a JSON object is returned as it is.
 */
export function foldConfigKeys(decoded: unknown): unknown {
  if (!isObject(decoded)) return decoded;
  const out = foldObject(decoded, TOP);
  for (const [field, known] of Object.entries(NESTED)) {
    if (isObject(out[field])) out[field] = foldObject(out[field] as Record<string, unknown>, known);
  }
  return out;
}
