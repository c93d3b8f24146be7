/**
 * Seeded generation of hostile plugin invocations: stdin configs (valid, structurally mutated,
 * byte-mutated, random JSON, special blobs) and CNI_* environments (valid and hostile values). Case `i`
 * of seed `s` is the same on every machine: a failure is reproduced from the pair alone.
 *
 * Everything a case could make the plugin touch outside its pod namespace is confined to the fixture:
 * paths come from pools under the fixture's scratch directory, and a config that would reach host-local
 * gets the fixture's data dir and a plain network name (see {@link confine}).
 * @module
 */

import { SUPPORTED_VERSIONS } from "../../lib/version.ts";

/** What the cases run against, created by the test. */
export interface FuzzFixture {
  master: string;
  /** The pod namespace path. */
  netns: string;
  /** host-local's data dir. */
  dataDir: string;
  /** A CNI_PATH directory holding host-local, static (links to the Go plugins) and fakes. */
  cniDir: string;
  /** Holds `file`, `dir`, `fifo` and whatever else a case may name. */
  scratch: string;
}

/** One invocation: the environment (CNI_* only) and stdin. */
export interface FuzzCase {
  kind: string;
  env: Record<string, string>;
  stdin: Uint8Array;
}

/** A small fast PRNG (mulberry32): reproducible from a 32-bit seed. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** The seed of case `index` of a run seeded with `seed`: cases are independent of each other. */
export function caseSeed(seed: number, index: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
}

const VERBS = ["ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"];
const VERSIONS: readonly string[] = SUPPORTED_VERSIONS;

const ODD_STRINGS = [
  "",
  " ",
  "\u0000",
  "ib\u00001",
  "\uFEFFib1",
  "\u202Eib1",
  "🙂",
  "\uD800",
  "é",
  "ＡＢＣ",
  "ib1\n",
  "\t",
  "%s%n",
  "../",
  "/",
  ".",
  "..",
  "null",
  "0",
  "-1",
  "1e999",
  "true",
  "$(id)",
  "`id`",
  "'",
  '"',
  "\\",
  "ü".repeat(8),
  "x".repeat(16),
  "all",
  "default",
  "lo",
  "a:b",
];

const ODD_VERSIONS = ["0.0.0", "1.2.0", "2.0.0", "1.0", "v1.0.0", "1.0.0 ", "01.0.0", "", "latest"];

/** A string the generator makes up: odd ones, random characters, or very long ones. */
function randomString(r: Rng, max = 24): string {
  const roll = r.int(10);
  if (roll < 4) return r.pick(ODD_STRINGS);
  if (roll === 4) return "a".repeat(1 + r.int(200_000));
  const alphabet = r.pick([
    "abcdefghijklmnopqrstuvwxyz0123456789",
    "abcXYZ019._-",
    "ab/.:\\ \u0000\n\t%$;&|<>*?'\"",
    "éüñ漢字🙂\u200B\u202E\uFEFF",
  ]);
  const chars = [...alphabet];
  let s = "";
  for (let i = r.int(max + 1); i > 0; i--) s += r.pick(chars);
  return s;
}

/**
 * A value nested `depth` levels deep, as arrays or objects. Kept to a depth JSON.stringify can write;
 * deeper input is made as text by {@link specialStdin}.
 */
function nested(depth: number, asObject: boolean): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = asObject ? { a: v } : [v];
  return v;
}

/** Any JSON value, possibly huge or deep. */
function randomValue(r: Rng, depth = 0): unknown {
  const roll = r.int(depth > 3 ? 8 : 13);
  switch (roll) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 65536, 68, 1500, 0x8001, -2147483648]);
    case 3:
    case 4:
    case 5:
      return randomString(r);
    case 6:
      return r.pick(VERSIONS);
    case 7:
      return r.int(100) < 3 ? nested(1000 + r.int(3000), r.chance(0.5)) : [];
    case 8:
    case 9: {
      const arr: unknown[] = [];
      for (let i = r.int(4); i > 0; i--) arr.push(randomValue(r, depth + 1));
      // A long array of a small number: filling with anything bigger would multiply its size when written.
      return r.chance(0.02) ? new Array(100_000).fill(r.int(10)) : arr;
    }
    default: {
      const obj: Record<string, unknown> = {};
      for (let i = r.int(5); i > 0; i--) {
        obj[r.chance(0.5) ? r.pick(FIELDS) : randomString(r, 8)] = randomValue(r, depth + 1);
      }
      return obj;
    }
  }
}

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
];

/** A subnet for host-local: each case's own /24 inside 10.200.0.0/16 or a v6 /64. */
function subnet(r: Rng, v6: boolean): string {
  return v6 ? `fd20:${r.int(0xffff).toString(16)}::/64` : `10.200.${r.int(256)}.0/24`;
}

function ipamConf(r: Rng, fx: FuzzFixture): Record<string, unknown> {
  switch (r.int(6)) {
    case 0:
    case 1:
      return { type: "host-local", dataDir: fx.dataDir, ranges: [[{ subnet: subnet(r, false) }]] };
    case 2:
      return {
        type: "host-local",
        dataDir: fx.dataDir,
        ranges: [[{ subnet: subnet(r, false) }], [{ subnet: subnet(r, true) }]],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "10.201.0.0/16", gw: "10.200.0.1" }],
      };
    case 3:
      return {
        type: "static",
        addresses: [{ address: `10.202.${r.int(256)}.${1 + r.int(250)}/24`, gateway: "10.202.0.1" }],
        routes: [{ dst: "10.203.0.0/16" }],
        dns: { nameservers: ["10.202.0.53"] },
      };
    case 4:
      return { type: "fake-garbage" };
    default:
      return {};
  }
}

/** A configuration the plugin should accept, on the fixture's master. */
export function validConfig(r: Rng, fx: FuzzFixture): Record<string, unknown> {
  const c: Record<string, unknown> = {
    cniVersion: r.pick(VERSIONS),
    name: r.pick(["fuzznet", "ib-net", "n1"]),
    type: "ipoib",
    master: fx.master,
    ipam: ipamConf(r, fx),
  };
  if (r.chance(0.2)) c.mtu = 68 + r.int(1500 - 67);
  if (r.chance(0.2)) c.pkey = r.pick([1, 0x7fff, "0x8001", "0x7fff", 0x8002]);
  if (r.chance(0.2)) c.dns = { nameservers: ["10.0.0.53"], search: ["cluster.local"] };
  if (r.chance(0.2)) c.logLevel = r.pick(["error", "info", "debug"]);
  if (r.chance(0.2)) c.logFile = `${fx.scratch}/fuzz.log`;
  if (r.chance(0.1)) c.ipamTimeout = 5 + r.int(20);
  if (r.chance(0.1)) c.args = { cni: { labels: [{ key: "k", value: "v" }] } };
  if (r.chance(0.1)) c.runtimeConfig = { ips: ["10.0.0.1/24"] };
  if (r.chance(0.1)) c.capabilities = { ips: true };
  if (r.chance(0.1)) c.someFutureField = { nested: [1, 2, 3] };
  return c;
}

/** Structural mutations of a config: drop, retype, replace with odd values, add deep or huge ones. */
function mutate(r: Rng, conf: Record<string, unknown>): unknown {
  const c: Record<string, unknown> = structuredClone(conf);
  for (let n = 1 + r.int(3); n > 0; n--) {
    const key = r.chance(0.85) ? r.pick(FIELDS) : randomString(r, 10);
    const roll = r.int(8);
    if (roll === 0) delete c[key];
    else if (roll === 1 && key === "cniVersion") c[key] = r.pick(ODD_VERSIONS);
    else if (roll === 2 && typeof c.ipam === "object" && c.ipam !== null) {
      const ipam = c.ipam as Record<string, unknown>;
      ipam[r.pick(["type", "dataDir", "ranges", "routes", "subnet", "addresses"])] = randomValue(r);
    } else if (roll === 3) c[key] = nested(1 + r.int(4000), r.chance(0.5));
    else c[key] = randomValue(r);
  }
  if (r.chance(0.05)) return [c];
  return c;
}

/** Byte-level damage to a config's text: flips, cuts, inserted bytes, invalid UTF-8, duplicate keys. */
function damage(r: Rng, text: string): Uint8Array {
  let bytes = new TextEncoder().encode(text);
  for (let n = 1 + r.int(3); n > 0; n--) {
    const at = r.int(bytes.length + 1);
    switch (r.int(6)) {
      case 0:
        bytes = bytes.slice(0, at);
        break;
      case 1:
        if (at < bytes.length) bytes[at] = r.int(256);
        break;
      case 2: {
        const insert = r.pick([[0], [0xff, 0xfe], [0xc3], [0xed, 0xa0, 0x80], [0x22], [0x7b], [0x5d], [
          0x2c,
        ]]);
        bytes = new Uint8Array([...bytes.slice(0, at), ...insert, ...bytes.slice(at)]);
        break;
      }
      case 3:
        bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes]); // a byte order mark
        break;
      case 4: {
        const dup = new TextEncoder().encode(`"master":${JSON.stringify(randomString(r))},`);
        const brace = bytes.indexOf(0x7b);
        if (brace >= 0) {
          bytes = new Uint8Array([...bytes.slice(0, brace + 1), ...dup, ...bytes.slice(brace + 1)]);
        }
        break;
      }
      default:
        bytes = new Uint8Array([
          ...bytes,
          ...new TextEncoder().encode(r.pick(["}", "]", " x", "\u0000", "{}"])),
        ]);
    }
  }
  return bytes;
}

let bigBlobs: Uint8Array[] | null = null;

/** Large inputs, made once: 10 MB of config-like text, 1 MiB of nesting, NULs, just over the limit. */
function blobs(): Uint8Array[] {
  if (bigBlobs === null) {
    const enc = new TextEncoder();
    const tenMb = enc.encode(`{"cniVersion":"1.0.0","name":"${"n".repeat(10 * 1024 * 1024)}"}`);
    const deep = enc.encode("[".repeat(500_000) + "]".repeat(500_000));
    const deepObj = enc.encode('{"a":'.repeat(150_000) + "0" + "}".repeat(150_000));
    bigBlobs = [tenMb, deep, deepObj, new Uint8Array(1 << 20), new Uint8Array((1 << 20) + 1).fill(0x20)];
  }
  return bigBlobs;
}

function specialStdin(r: Rng, fx: FuzzFixture): Uint8Array {
  const enc = new TextEncoder();
  switch (r.int(9)) {
    case 0:
      return r.pick(blobs());
    case 1:
      return new Uint8Array(0);
    case 2:
      return enc.encode(r.pick(["null", "[]", '""', "0", "true", "{}", " \n\t", "\uFEFF{}", '{"":""}']));
    case 3: {
      const c = validConfig(r, fx);
      // Valid, padded to land just under, at, or over the stdin limit.
      const text = JSON.stringify(c);
      const size = (1 << 20) + r.pick([-1, 0, 1, 4096]);
      return enc.encode(text + " ".repeat(Math.max(0, size - text.length)));
    }
    case 4:
      return Uint8Array.from({ length: r.int(4096) }, () => r.int(256));
    case 5:
      return enc.encode(JSON.stringify(validConfig(r, fx)).replaceAll(fx.master, `${fx.master}\u0000`));
    case 6: {
      const obj: Record<string, number> = {};
      for (let i = 0; i < 20_000; i++) obj[`k${i}`] = i;
      return enc.encode(JSON.stringify({ ...validConfig(r, fx), ...obj }));
    }
    case 7:
      return enc.encode(JSON.stringify(validConfig(r, fx)).replace(/"ipam":/, '"ipam":' + "[".repeat(3000)));
    default:
      return enc.encode(JSON.stringify(validConfig(r, fx)) + "\n" + JSON.stringify(validConfig(r, fx)));
  }
}

/** A valid environment for `verb` on the fixture. */
function validEnv(r: Rng, fx: FuzzFixture, verb: string): Record<string, string> {
  return {
    CNI_COMMAND: verb,
    CNI_CONTAINERID: `fuzz-${r.int(1e9).toString(36)}`,
    CNI_NETNS: fx.netns,
    CNI_IFNAME: r.pick(["ib1", "net1", "ib0", `i${r.int(1e6)}`, "é1", "a.b"]),
    CNI_PATH: r.chance(0.9) ? fx.cniDir : `${fx.scratch}/absent:${fx.cniDir}`,
    ...(r.chance(0.2) ? { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns" } : {}),
  };
}

/** Hostile values of each variable; paths stay inside the fixture (see the module doc). */
function hostileValue(r: Rng, fx: FuzzFixture, name: string): string | undefined {
  if (r.chance(0.1)) return undefined;
  switch (name) {
    case "CNI_COMMAND":
      return r.pick([...VERBS, "add", "ADD ", " DEL", "REMOVE", "", "ADD\u0000", randomString(r, 8)]);
    case "CNI_NETNS":
      return r.pick([
        fx.netns,
        `${fx.scratch}/file`,
        `${fx.scratch}/dir`,
        `${fx.scratch}/fifo`,
        `${fx.scratch}/absent`,
        `${fx.scratch}/${randomString(r, 12)}`,
        "/proc/self/ns/uts",
        "/dev/null",
        "relative/netns",
        "",
        `${fx.netns}\u0000x`,
      ]);
    case "CNI_PATH":
      return r.pick([
        fx.cniDir,
        `${fx.scratch}/file`,
        `${fx.scratch}/file:${fx.cniDir}`,
        "bin",
        "",
        ":::",
        `${fx.cniDir}/`,
        `${fx.scratch}/${randomString(r, 12)}:${fx.cniDir}`,
        `${fx.scratch}/dir:${fx.cniDir}`,
        `${fx.cniDir}\u0000`,
      ]);
    case "CNI_ARGS":
      return r.pick([
        "",
        "IgnoreUnknown=1",
        "K8S_POD_NAME=x",
        "FOO=bar",
        "=x",
        "a",
        ";;;",
        "IgnoreUnknown=true;X=1",
        randomString(r, 30),
      ]);
    default:
      return randomString(r, 20);
  }
}

const VARIABLES = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH", "CNI_ARGS"];

function hostileEnv(r: Rng, fx: FuzzFixture, base: Record<string, string>): Record<string, string> {
  const env = { ...base };
  for (let n = 1 + r.int(3); n > 0; n--) {
    const name = r.pick(VARIABLES);
    const v = hostileValue(r, fx, name);
    if (v === undefined) delete env[name];
    else env[name] = v;
  }
  return env;
}

/** Makes a config safe to hand to host-local: the fixture's data dir and a plain network name. */
export function confine(stdin: Uint8Array, fx: FuzzFixture): Uint8Array {
  let decoded: unknown;
  try {
    decoded = JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return stdin; // the plugin cannot decode it either: it never reaches host-local
  }
  if (decoded === null || typeof decoded !== "object" || Array.isArray(decoded)) return stdin;
  const c = decoded as Record<string, unknown>;
  const ipam = c.ipam as Record<string, unknown> | undefined;
  if (ipam === null || typeof ipam !== "object" || ipam.type !== "host-local") return stdin;
  const safeName = typeof c.name === "string" && /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(c.name);
  if (ipam.dataDir === fx.dataDir && safeName) return stdin;
  // host-local writes under dataDir/name: keep both inside the fixture.
  return new TextEncoder().encode(
    JSON.stringify({ ...c, name: safeName ? c.name : "confined", ipam: { ...ipam, dataDir: fx.dataDir } }),
  );
}

/** Keeps a log file the config names inside the fixture (the plugin appends to it as root). */
function confineLog(c: unknown, r: Rng, fx: FuzzFixture): unknown {
  if (c !== null && typeof c === "object" && !Array.isArray(c)) {
    const o = c as Record<string, unknown>;
    if (typeof o.logFile === "string" && o.logFile.startsWith("/")) {
      o.logFile = r.pick([`${fx.scratch}/fuzz.log`, `${fx.scratch}/absent/x.log`, `${fx.scratch}/fifo`]);
    }
  }
  return c;
}

/** Generates case `index` of the run seeded with `seed`. */
export function generateCase(seed: number, index: number, fx: FuzzFixture): FuzzCase {
  const r = new Rng(caseSeed(seed, index));
  const enc = new TextEncoder();
  const roll = r.int(100);
  let kind: string;
  let env: Record<string, string>;
  let stdin: Uint8Array;
  if (roll < 12) {
    kind = "valid-add";
    env = validEnv(r, fx, "ADD");
    stdin = enc.encode(JSON.stringify(validConfig(r, fx)));
  } else if (roll < 18) {
    kind = "valid-other-verb";
    env = validEnv(r, fx, r.pick(["DEL", "CHECK", "VERSION", "GC", "STATUS"]));
    stdin = enc.encode(JSON.stringify(validConfig(r, fx)));
  } else if (roll < 48) {
    kind = "mutated-config";
    env = validEnv(r, fx, r.chance(0.6) ? "ADD" : r.pick(VERBS));
    stdin = enc.encode(JSON.stringify(confineLog(mutate(r, validConfig(r, fx)), r, fx)));
  } else if (roll < 62) {
    kind = "damaged-bytes";
    env = validEnv(r, fx, r.chance(0.6) ? "ADD" : r.pick(VERBS));
    stdin = damage(r, JSON.stringify(confineLog(validConfig(r, fx), r, fx)));
  } else if (roll < 70) {
    kind = "random-json";
    env = validEnv(r, fx, r.pick(VERBS));
    stdin = enc.encode(JSON.stringify(confineLog(randomValue(r), r, fx)) ?? "");
  } else if (roll < 86) {
    kind = "hostile-env";
    env = hostileEnv(r, fx, validEnv(r, fx, r.pick(VERBS)));
    stdin = enc.encode(JSON.stringify(validConfig(r, fx)));
  } else if (roll < 93) {
    kind = "special-stdin";
    env = validEnv(r, fx, r.chance(0.7) ? "ADD" : r.pick(VERBS));
    stdin = specialStdin(r, fx);
  } else {
    kind = "everything-hostile";
    env = hostileEnv(r, fx, validEnv(r, fx, r.pick(VERBS)));
    stdin = enc.encode(JSON.stringify(confineLog(mutate(r, validConfig(r, fx)), r, fx)));
  }
  return { kind, env, stdin: confine(stdin, fx) };
}
