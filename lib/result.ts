/**
 * The CNI success result: one internal model (that of CNI 1.1.0), a strict parser for results of every
 * version from 0.1.0 to 1.1.0, and a printer that produces the exact shape of a requested version.
 *
 * This module runs on every ADD, so it is plain TypeScript with no schema library and no I/O.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { compareVersions, isSupportedVersion, SUPPORTED_VERSIONS } from "./version.ts";
import { isIp, parseCidr, parseIp } from "./ip.ts";

/** An interface created by the attachment (CNI 1.1.0 "interfaces" entry). */
export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** An address assigned by the attachment (CNI 1.1.0 "ips" entry). */
export interface ResultIp {
  /** The address with its prefix length, e.g. "10.1.0.5/16", in canonical form. */
  address: string;
  gateway?: string;
  /** Index into {@link Result.interfaces}. */
  interface?: number;
}

/** A route created by the attachment (CNI 1.1.0 "routes" entry). */
export interface ResultRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** DNS settings of the attachment. */
export interface ResultDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A success result in the internal (CNI 1.1.0) model; the lists are always present, possibly empty. */
export interface Result {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: ResultDns;
}

// ---------------------------------------------------------------------------------------------------------
// Limits

const UINT8_MAX = 255;
const INT32_MAX = 2147483647;
const UINT32_MAX = 4294967295;

// ---------------------------------------------------------------------------------------------------------
// Parsing

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A value quoted for an error message, cut short so a huge blob cannot flood the runtime's log. */
function show(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return `${typeof v} ${show(v)}`;
}

/** Reads fields of one JSON object, reporting errors as `label: path.field ...` with code 6. */
class Fields {
  constructor(readonly label: string, readonly path: string, readonly obj: Obj) {}

  static of(label: string, path: string, v: unknown): Fields {
    if (!isObj(v)) {
      const where = path === "" ? "" : `${path} `;
      throw new CniError(
        ErrorCode.DecodingFailure,
        `${label}: ${where}must be a JSON object, got ${describe(v)}`,
      );
    }
    return new Fields(label, path, v);
  }

  at(key: string): string {
    return this.path === "" ? key : `${this.path}.${key}`;
  }

  fail(key: string, msg: string): never {
    throw new CniError(ErrorCode.DecodingFailure, `${this.label}: ${this.at(key)} ${msg}`);
  }

  /** A present field; JSON null counts as absent, as it does for Go's decoder. */
  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  /** An optional string; "" counts as absent, matching Go's omitempty on the way out. */
  string(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") this.fail(key, `must be a string, got ${describe(v)}`);
    return v === "" ? undefined : v;
  }

  uint(key: string, max: number): number | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
      this.fail(key, `must be an integer from 0 to ${max}, got ${describe(v)}`);
    }
    return v;
  }

  array(key: string): unknown[] {
    const v = this.obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(key, `must be an array, got ${describe(v)}`);
    return v;
  }

  strings(key: string): string[] {
    return this.array(key).map((s, i) => {
      if (typeof s !== "string") this.fail(`${key}[${i}]`, `must be a string, got ${describe(s)}`);
      return s;
    });
  }

  /** A required CIDR, returned in canonical form, optionally of a required family. */
  cidr(key: string, family?: 4 | 6): { text: string; family: 4 | 6 } {
    const v = this.obj[key];
    if (v === undefined || v === null) this.fail(key, "is missing");
    if (typeof v !== "string") this.fail(key, `must be a string, got ${describe(v)}`);
    const c = parseCidr(v);
    if (!c) this.fail(key, `${show(v)} is not a CIDR`);
    if (family && c.family !== family) this.fail(key, `${show(v)} is not an IPv${family} CIDR`);
    return { text: `${c.ip}/${c.prefix}`, family: c.family };
  }

  /** An optional IP address, returned in canonical form. */
  ip(key: string): { text: string; family: 4 | 6 } | undefined {
    const v = this.string(key);
    if (v === undefined) return undefined;
    const ip = parseIp(v);
    if (!ip) this.fail(key, `${show(v)} is not an IP address`);
    return { text: ip.ip, family: ip.family };
  }
}

/** Copies only the defined values, so models compare and serialise without `undefined` members. */
function defined<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

/** A MAC of any length (IPoIB hardware addresses are 20 bytes), octets separated by ":" or "-". */
const MAC = /^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2})*$/;

function parseInterface(label: string, path: string, v: unknown): ResultInterface {
  const f: Fields = Fields.of(label, path, v);
  const name = f.string("name");
  if (name === undefined) f.fail("name", "is missing");
  const mac = f.string("mac");
  if (mac !== undefined && !MAC.test(mac)) f.fail("mac", `${show(mac)} is not a hardware address`);
  const mtu = f.uint("mtu", UINT32_MAX);
  return defined<ResultInterface>({
    name,
    mac,
    // Go omits a zero MTU (omitempty), so zero cannot mean anything but "unset".
    mtu: mtu || undefined,
    sandbox: f.string("sandbox"),
    socketPath: f.string("socketPath"),
    pciID: f.string("pciID"),
  });
}

function parseRoute(label: string, path: string, v: unknown, family?: 4 | 6): ResultRoute {
  const f: Fields = Fields.of(label, path, v);
  const dst = f.cidr("dst", family);
  // No family check against dst: Linux routes IPv4 destinations via IPv6 next hops (RTA_VIA).
  const gw = f.ip("gw");
  // mtu, advmss and priority are omitempty ints in Go (zero = unset); table and scope are pointers.
  return defined<ResultRoute>({
    dst: dst.text,
    gw: gw?.text,
    mtu: f.uint("mtu", UINT32_MAX) || undefined,
    advmss: f.uint("advmss", UINT32_MAX) || undefined,
    priority: f.uint("priority", UINT32_MAX) || undefined,
    table: f.uint("table", UINT32_MAX),
    scope: f.uint("scope", UINT8_MAX),
  });
}

/** The gateway of an address; a gateway of the other family can never be reached, so it is refused. */
function gatewayFor(f: Fields, key: string, address: { text: string; family: 4 | 6 }, addressKey: string) {
  const gw = f.ip(key);
  if (gw && gw.family !== address.family) {
    f.fail(
      key,
      `${show(f.obj[key])} is an IPv${gw.family} address but ${f.at(addressKey)} ${
        show(f.obj[addressKey])
      } is IPv${address.family}`,
    );
  }
  return gw?.text;
}

function parseIpConfig(label: string, path: string, v: unknown, interfaceCount: number): ResultIp {
  const f: Fields = Fields.of(label, path, v);
  const address = f.cidr("address");
  // 0.3.x/0.4.0 carry a "version" that only repeats what the address says. A result mislabelled with an old
  // version may lack it, libcni 1.1 re-encodes Go loopback's 0.4.0 result with `"version": ""` before handing
  // it on as prevResult, and Go plugins read the field as an opaque string that converting the result drops
  // (types/040 to types/100): the address decides the family here too, and the printed result states it.
  if (f.has("version") && typeof f.obj.version !== "string") {
    f.fail("version", `must be a string, got ${describe(f.obj.version)}`);
  }
  const index = f.uint("interface", INT32_MAX);
  // IPAM results have no interfaces list (the plugin assigns indexes later), so only a list present bounds it.
  if (index !== undefined && interfaceCount > 0 && index >= interfaceCount) {
    f.fail("interface", `${index} is out of range: the result has ${interfaceCount} interface(s)`);
  }
  return defined<ResultIp>({
    address: address.text,
    gateway: gatewayFor(f, "gateway", address, "address"),
    interface: index,
  });
}

function parseDns(label: string, v: unknown): ResultDns {
  if (v === undefined || v === null) return {};
  const f: Fields = Fields.of(label, "dns", v);
  const nameservers = f.strings("nameservers");
  nameservers.forEach((ns, i) => {
    // resolv.conf accepts a zone on a link-local IPv6 server ("fe80::1%eth0").
    const zone = ns.indexOf("%");
    const ip = zone === -1 ? isIp(ns) : isIp(ns.slice(0, zone)) === 6 && zone < ns.length - 1 ? 6 : 0;
    if (!ip) f.fail(`nameservers[${i}]`, `${show(ns)} is not an IP address`);
  });
  const search = f.strings("search");
  const options = f.strings("options");
  return defined<ResultDns>({
    nameservers: nameservers.length ? nameservers : undefined,
    domain: f.string("domain"),
    search: search.length ? search : undefined,
    options: options.length ? options : undefined,
  });
}

/** 0.1.0 / 0.2.0: one "ip4" and one "ip6" object, each with its own routes. */
function parseLegacy(label: string, f: Fields): Result {
  const ips: ResultIp[] = [];
  const routes: ResultRoute[] = [];
  for (const [key, family] of [["ip4", 4], ["ip6", 6]] as const) {
    if (!f.has(key)) continue;
    const c: Fields = Fields.of(label, key, f.obj[key]);
    const address = c.cidr("ip", family);
    ips.push(defined<ResultIp>({ address: address.text, gateway: gatewayFor(c, "gateway", address, "ip") }));
    // A route filed under the wrong family would silently move on conversion: refuse it instead.
    c.array("routes").forEach((r, i) => routes.push(parseRoute(label, `${key}.routes[${i}]`, r, family)));
  }
  return { interfaces: [], ips, routes, dns: parseDns(label, f.obj.dns) };
}

/** 0.3.0 and later: "interfaces", "ips", "routes". */
function parseCurrent(label: string, f: Fields): Result {
  const interfaces = f.array("interfaces").map((v, i) => parseInterface(label, `interfaces[${i}]`, v));
  const ips = f.array("ips").map((v, i) => parseIpConfig(label, `ips[${i}]`, v, interfaces.length));
  const routes = f.array("routes").map((v, i) => parseRoute(label, `routes[${i}]`, v));
  return { interfaces, ips, routes, dns: parseDns(label, f.obj.dns) };
}

/**
 * Converts a success result of any CNI version from 0.1.0 to 1.1.0 (an IPAM plugin's output, or a
 * `prevResult`) into the internal model. The shape is chosen by `cniVersion`; without one, a result with
 * `ip4`/`ip6` is read as 0.1.0 and anything else as 0.3.0+ (with an optional `version` on each IP).
 * Addresses and gateways come back in canonical text ("2001:db8::5/64"); unknown fields are ignored, as
 * Go's decoder does; JSON null counts as absent.
 *
 * @param json the parsed JSON value
 * @param label names the source in error messages, e.g. "IPAM result" or "prevResult"
 * @throws CniError code 6 (DecodingFailure) naming the field path and bad value; code 1 for an
 *   unsupported `cniVersion`
 */
export function parseResult(json: unknown, label = "IPAM result"): Result {
  const f: Fields = Fields.of(label, "", json);
  const legacyShape = f.has("ip4") || f.has("ip6");
  let legacy: boolean;
  const version = f.obj.cniVersion;
  if (version === undefined || version === null || version === "") {
    legacy = legacyShape;
  } else if (typeof version !== "string") {
    f.fail("cniVersion", `must be a string, got ${describe(version)}`);
  } else if (!isSupportedVersion(version)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `${label}: cniVersion ${show(version)} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  } else {
    legacy = compareVersions(version, "0.3.0") < 0;
    // A result labelled with the wrong generation would otherwise lose all its addresses without a word.
    if (legacy && !legacyShape && f.has("ips")) {
      f.fail(
        "ips",
        `is a 0.3.0+ field, but the result says cniVersion ${show(version)} (which uses ip4/ip6)`,
      );
    }
    if (!legacy && legacyShape && !f.has("ips")) {
      const key = f.has("ip4") ? "ip4" : "ip6";
      f.fail(key, `is a 0.1.0/0.2.0 field, but the result says cniVersion ${show(version)} (which uses ips)`);
    }
  }
  return legacy ? parseLegacy(label, f) : parseCurrent(label, f);
}

// ---------------------------------------------------------------------------------------------------------
// Printing

/** The family of a model CIDR; a model that does not hold one was built wrongly by the plugin itself. */
function familyOf(cidr: string, what: string): 4 | 6 {
  const c = parseCidr(cidr);
  if (!c) throw new CniError(ErrorCode.Internal, `result ${what} ${show(cidr)} is not a CIDR`);
  return c.family;
}

function formatDns(d: ResultDns): Record<string, unknown> {
  return defined<Record<string, unknown>>({
    nameservers: d.nameservers?.length ? [...d.nameservers] : undefined,
    domain: d.domain || undefined,
    search: d.search?.length ? [...d.search] : undefined,
    options: d.options?.length ? [...d.options] : undefined,
  });
}

/** Route fields of the given version; only 1.1.0 knows more than dst and gw. */
function formatRoute(r: ResultRoute, full: boolean): Record<string, unknown> {
  if (!full) return defined<Record<string, unknown>>({ dst: r.dst, gw: r.gw || undefined });
  return defined<Record<string, unknown>>({
    dst: r.dst,
    gw: r.gw || undefined,
    mtu: r.mtu || undefined,
    advmss: r.advmss || undefined,
    priority: r.priority || undefined,
    table: r.table,
    scope: r.scope,
  });
}

function formatLegacy(r: Result, version: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: version };
  for (const family of [4, 6] as const) {
    const ip = r.ips.find((x, i) => familyOf(x.address, `ips[${i}].address`) === family);
    if (!ip) continue;
    // Routes of a family with no address have no place in 0.1.0/0.2.0 and are dropped, as libcni does.
    const routes = r.routes
      .filter((x, i) => familyOf(x.dst, `routes[${i}].dst`) === family)
      .map((x) => formatRoute(x, false));
    out[`ip${family}`] = defined<Record<string, unknown>>({
      ip: ip.address,
      gateway: ip.gateway || undefined,
      routes: routes.length ? routes : undefined,
    });
  }
  if (!out.ip4 && !out.ip6) {
    // 0.1.0/0.2.0 results are built around ip4/ip6: with no address there is nothing to print, so the
    // configuration's version is the problem (code 1), not a field.
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `a result without any IP address cannot be expressed in cniVersion ${version}`,
      "cniVersion 0.1.0 and 0.2.0 results carry addresses in ip4/ip6 only; use cniVersion 0.3.0 or later",
    );
  }
  out.dns = formatDns(r.dns);
  return out;
}

/**
 * The JSON object to print for `r` in CNI version `version`, with exactly that version's shape:
 * 1.1.0 prints everything; 1.0.0 drops interface mtu/socketPath/pciID and route mtu/advmss/priority/
 * table/scope; 0.3.0/0.3.1/0.4.0 additionally add `version` ("4"/"6") to each IP; 0.1.0/0.2.0 print the
 * first address of each family as `ip4`/`ip6` with that family's routes. Empty lists and unset fields are
 * omitted as Go's omitempty does; `dns` is always present (`{}` when empty).
 *
 * @throws CniError code 1 for an unsupported version, or for a result without addresses in 0.1.0/0.2.0
 */
export function formatResult(r: Result, version: string): Record<string, unknown> {
  if (!isSupportedVersion(version)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cannot print a result in cniVersion ${show(version)}`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  if (compareVersions(version, "0.3.0") < 0) return formatLegacy(r, version);
  const v1 = compareVersions(version, "1.0.0") >= 0;
  const v11 = compareVersions(version, "1.1.0") >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces.length) {
    out.interfaces = r.interfaces.map((i) =>
      defined<Record<string, unknown>>({
        name: i.name,
        mac: i.mac || undefined,
        mtu: v11 ? i.mtu || undefined : undefined,
        sandbox: i.sandbox || undefined,
        socketPath: v11 ? i.socketPath || undefined : undefined,
        pciID: v11 ? i.pciID || undefined : undefined,
      })
    );
  }
  if (r.ips.length) {
    out.ips = r.ips.map((ip, i) =>
      defined<Record<string, unknown>>({
        version: v1 ? undefined : String(familyOf(ip.address, `ips[${i}].address`)),
        interface: ip.interface,
        address: ip.address,
        gateway: ip.gateway || undefined,
      })
    );
  }
  if (r.routes.length) out.routes = r.routes.map((x) => formatRoute(x, v11));
  out.dns = formatDns(r.dns);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Versions and chaining

/**
 * `r` as a result of CNI version `version` can hold it: the route fields `mtu`, `advmss`, `priority`,
 * `table` and `scope` and the interface fields `mtu`, `socketPath` and `pciID` exist only in 1.1.0 and are
 * dropped below it. Addresses and routes are all kept (0.1.0/0.2.0 print only the first address of each
 * family, but an IPAM result's every address is still applied, as Go's plugins do).
 *
 * ADD applies the IPAM result through this and CHECK reads `prevResult` through it, so what ADD installs is
 * exactly what it prints and what CHECK then looks for, whatever version the IPAM plugin answered in: a
 * 1.1.0 IPAM route in table 100 under a 1.0.0 config goes to the main table, as Go's 1.0.0 types (which have
 * no `table`) would decode it.
 *
 * @param version a supported CNI version (not checked here)
 */
export function limitToVersion(r: Result, version: string): Result {
  if (compareVersions(version, "1.1.0") >= 0) return r;
  return {
    interfaces: r.interfaces.map((i) =>
      defined<ResultInterface>({ name: i.name, mac: i.mac, sandbox: i.sandbox, mtu: undefined })
    ),
    ips: r.ips,
    routes: r.routes.map((x) => defined<ResultRoute>({ dst: x.dst, gw: x.gw })),
    dns: r.dns,
  };
}

/** The values of `a` then those of `b` not already in `a`; undefined when both are empty. */
function union(a: string[] | undefined, b: string[] | undefined): string[] | undefined {
  const out = [...(a ?? [])];
  for (const v of b ?? []) if (!out.includes(v)) out.push(v);
  return out.length ? out : undefined;
}

function sameRoute(a: ResultRoute, b: ResultRoute): boolean {
  return a.dst === b.dst && a.gw === b.gw && a.table === b.table && a.priority === b.priority &&
    a.scope === b.scope && a.mtu === b.mtu && a.advmss === b.advmss;
}

/**
 * The result a chained ADD outputs: the earlier plugins' `prev` (the `prevResult` of the config, parsed)
 * with this plugin's own `ours` appended, as the CNI spec's chaining rules ask ("Section 4": a plugin
 * passes prevResult through with its own additions).
 *
 * - interfaces: `prev`'s, then `ours`; the `interface` index of each of `ours.ips` is shifted past `prev`'s
 *   entries, so it still names our interface; `prev`'s IPs keep their indexes.
 * - ips: `prev`'s, then `ours`.
 * - routes: `prev`'s, then those of `ours` not already listed (an equal route is one route in the kernel).
 * - dns: nameservers, search and options are the union (`prev`'s first); `domain` is ours when set.
 *
 * For 0.1.0/0.2.0 (no interfaces list; one address per family) the printer then keeps the first address of
 * each family, i.e. `prev`'s, as libcni's conversion from a newer result to 0.2.0 does.
 *
 * @param prev the parsed prevResult, or null when the plugin is first in the chain (then `ours` is returned)
 */
export function mergePrevResult(prev: Result | null, ours: Result): Result {
  if (prev === null) return ours;
  const offset = prev.interfaces.length;
  return {
    interfaces: [...prev.interfaces, ...ours.interfaces],
    ips: [
      ...prev.ips,
      ...ours.ips.map((ip) => ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset }),
    ],
    routes: [...prev.routes, ...ours.routes.filter((r) => !prev.routes.some((p) => sameRoute(p, r)))],
    dns: defined<ResultDns>({
      nameservers: union(prev.dns.nameservers, ours.dns.nameservers),
      domain: ours.dns.domain ?? prev.dns.domain,
      search: union(prev.dns.search, ours.dns.search),
      options: union(prev.dns.options, ours.dns.options),
    }),
  };
}
