/**
 * parseNetConf's field checks (lib/json_checks.ts) against the zod schema they replaced, kept here as the
 * reference and run through the same parseNetConf: the same verdict, the same first error (code, message,
 * details) and the same normalised config (key order included) on every generated config: each field set to each sample value, and seeded random mixes of
 * several fields at once (where the order of checks decides which error is reported).
 */
import { assertEquals } from "@std/assert";
import { z } from "zod";
import { type CheckedFields, parseNetConf, partitionKey, PKEY_PROBLEM } from "../../lib/config.ts";
import { CniError } from "../../lib/errors.ts";
import { interfaceNameProblem } from "../../lib/env.ts";
import { Issue } from "../../lib/json_checks.ts";

// ---- the reference: lib/config.ts's zod schema as it was ----

const ifname = z.string().superRefine((name, ctx) => {
  const problem = interfaceNameProblem(name);
  if (problem) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `is not a valid interface name: it ${problem}` });
  }
});
const pluginName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be a bare plugin name, not a path");
const pkey = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const key = partitionKey(v);
  if (key === null) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: PKEY_PROBLEM });
    return z.NEVER;
  }
  return key;
});
const strings = z.array(z.string());
const schema = z.object({
  cniVersion: z.string(),
  name: z.string().min(1),
  type: z.string().min(1),
  master: ifname,
  ipam: z.object({ type: pluginName.optional() }).passthrough(),
  mtu: z.number().int().min(68).max(65535).optional(),
  pkey: pkey.optional(),
  dns: z.object({
    nameservers: strings.optional(),
    domain: z.string().optional(),
    search: strings.optional(),
    options: strings.optional(),
  }).passthrough().optional(),
  args: z.record(z.unknown()).optional(),
  runtimeConfig: z.record(z.unknown()).optional(),
  prevResult: z.record(z.unknown()).optional(),
  capabilities: z.record(z.boolean()).optional(),
  logFile: z.string().startsWith("/", "must be an absolute path").optional(),
  logLevel: z.enum(["error", "info", "debug"]).optional(),
  ipamTimeout: z.number().int().min(1).max(600).optional(),
}).passthrough();

/** The zod schema as a field check: the parsed data, or zod's first issue as an Issue. */
function zodCheck(input: Record<string, unknown>): CheckedFields {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data as CheckedFields;
  const issue = parsed.error.issues[0]!;
  throw new Issue(issue.path, issue.message);
}

// ---- the comparison ----

/** What a parser made of a config: the normalised config as JSON (key order counts), or the error. */
function outcome(parse: (d: unknown) => unknown, decoded: unknown): string {
  try {
    return JSON.stringify({ ok: parse(decoded) });
  } catch (e) {
    if (!(e instanceof CniError)) throw e;
    return JSON.stringify({ code: e.code, msg: e.message, details: e.details });
  }
}

function assertSame(text: string): void {
  const reference = outcome((d) => parseNetConf(d, zodCheck), JSON.parse(text));
  assertEquals(outcome(parseNetConf, JSON.parse(text)), reference, text);
}

const BASE = {
  cniVersion: "1.0.0",
  name: "ib-net",
  type: "ipoib",
  master: "ib0",
  ipam: { type: "host-local", subnet: "10.56.0.0/16" },
};

/** Values every field is tried with; `__proto__` keys are made by JSON.parse, as stdin would. */
const SAMPLES: unknown[] = [
  null,
  true,
  false,
  0,
  1,
  -1,
  1.5,
  67,
  68,
  600,
  601,
  2044,
  65535,
  65536,
  0x8000,
  0x8001,
  "",
  "a",
  "ib0",
  "ib/0",
  "a".repeat(16),
  "/var/log/ipoib.log",
  "relative.log",
  "0x8001",
  "0x8000",
  "0X7FFF",
  "32770",
  "123456",
  "abc",
  "dhcp",
  "host-local",
  "../host-local",
  "error",
  "info",
  "debug",
  "warn",
  "1.0.0",
  [],
  ["a"],
  [1],
  ["a", 2],
  {},
  { a: 1 },
  { type: "host-local" },
  { type: 5 },
  { type: "a/b" },
  { type: "dhcp" },
  { nameservers: ["1.1.1.1"], search: ["x"], extra: 1, domain: "d" },
  { options: ["a"], nameservers: "1.1.1.1" },
  { search: [1] },
  { domain: 3 },
  { a: true, b: false },
  { a: true, b: "x" },
  JSON.parse('{"__proto__": {"x": 1}}'),
  JSON.parse('{"__proto__": true, "a": true}'),
  JSON.parse('{"__proto__": "no", "a": true}'),
  JSON.parse('{"z": 1, "__proto__": [1], "nameservers": ["n"]}'),
];

const FIELDS = [
  "cniVersion",
  "name",
  "type",
  "master",
  "ipam",
  "mtu",
  "pkey",
  "dns",
  "args",
  "runtimeConfig",
  "prevResult",
  "capabilities",
  "logFile",
  "logLevel",
  "ipamTimeout",
  "vendorExtra",
];

/** The text of BASE with `changes` applied (undefined removes a field). */
function variant(changes: [string, unknown][]): string {
  const c: Record<string, unknown> = structuredClone(BASE);
  for (const [k, v] of changes) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  return JSON.stringify(c);
}

Deno.test("parseNetConf decides every single-field variant exactly as the zod schema did", () => {
  let n = 0;
  for (const field of FIELDS) {
    for (const value of [undefined, ...SAMPLES]) {
      assertSame(variant([[field, value]]));
      n++;
    }
  }
  assertEquals(n, FIELDS.length * (SAMPLES.length + 1));
});

Deno.test("parseNetConf reports the same first error as the zod schema when several fields are wrong", () => {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pick = <T>(xs: T[]) => xs[Math.floor(next() * xs.length)]!;
  for (let i = 0; i < 5000; i++) {
    const changes: [string, unknown][] = [];
    const count = 1 + Math.floor(next() * 4);
    for (let j = 0; j < count; j++) changes.push([pick(FIELDS), pick([undefined, ...SAMPLES])]);
    assertSame(variant(changes));
  }
});

Deno.test("parseNetConf keeps the zod schema's key order in dns and drops __proto__ from copies", () => {
  const text = JSON.stringify({
    ...BASE,
    dns: JSON.parse('{"extra": 1, "search": ["s"], "__proto__": {"a": 1}, "nameservers": ["n"]}'),
    prevResult: JSON.parse('{"__proto__": {"a": 1}, "ips": []}'),
  });
  assertSame(text);
  const c = parseNetConf(JSON.parse(text));
  assertEquals(Object.keys(c.dns!), ["nameservers", "search", "extra"]);
  assertEquals(Object.keys(c.prevResult!), ["ips"]);
});
