/**
 * IP addresses and prefixes: the one parser of their text into bytes (what ffi/netlink.ts sends and
 * returns), and the canonical (RFC 5952) spelling of bytes, so that what the kernel reports and what a
 * CNI result says compare equal however each spells an address.
 * @module
 */

/** An IP address in network byte order with its family. */
export interface IpBytes {
  family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
}

/** An address plus a prefix length, as in 10.1.0.5/24 (host bits kept). */
export interface CidrBytes extends IpBytes {
  prefix: number;
}

/** Decimal without leading zeros: Go (since 1.17) rejects "010.0.0.1", and so do we. */
const DECIMAL = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

function parseIpv4Bytes(s: string): number[] | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const p of parts) {
    if (!DECIMAL.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    bytes.push(n);
  }
  return bytes;
}

/** The eight 16-bit groups of an IPv6 address, or null; zones ("%eth0") are not addresses and are refused. */
function parseIpv6Groups(s: string): number[] | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return null;
  const gap = s.indexOf("::");
  if (gap !== -1 && s.indexOf("::", gap + 1) !== -1) return null;
  const split = (part: string): string[] => (part === "" ? [] : part.split(":"));
  const head = gap === -1 ? s.split(":") : split(s.slice(0, gap));
  const tail = gap === -1 ? [] : split(s.slice(gap + 2));
  // A dotted IPv4 tail ("::ffff:10.0.0.1") stands for the last two groups.
  const last = tail.length > 0 ? tail : gap === -1 ? head : null;
  const embedded: number[] = [];
  if (last && last.length > 0 && last[last.length - 1]!.includes(".")) {
    const v4 = parseIpv4Bytes(last.pop()!);
    if (!v4) return null;
    embedded.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
  }
  const toGroups = (parts: string[]): number[] | null => {
    const out: number[] = [];
    for (const p of parts) {
      if (!HEX_GROUP.test(p)) return null;
      out.push(Number.parseInt(p, 16));
    }
    return out;
  };
  const h = toGroups(head);
  const t = toGroups(tail);
  if (!h || !t) return null;
  const given = h.length + t.length + embedded.length;
  if (gap === -1) return given === 8 ? [...h, ...embedded] : null;
  // "::" stands for at least one zero group.
  if (given > 7) return null;
  return [...h, ...new Array<number>(8 - given).fill(0), ...t, ...embedded];
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (2+) of zero groups as "::". */
function formatIpv6(g: number[]): string {
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    const a = g[6]!, b = g[7]!;
    return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart === -1) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/**
 * Parses an IP address (IPv4 dotted quad, or IPv6 compressed or not, with an optional dotted IPv4 tail)
 * into bytes; null for anything else, zones ("%eth0") and "1.2.3.4::1" included.
 */
export function ipBytes(s: string): IpBytes | null {
  if (typeof s !== "string") return null;
  if (s.includes(":")) {
    const g = parseIpv6Groups(s);
    if (!g) return null;
    const bytes = new Uint8Array(16);
    g.forEach((x, i) => {
      bytes[2 * i] = x >> 8;
      bytes[2 * i + 1] = x & 0xff;
    });
    return { family: 6, bytes };
  }
  const b = parseIpv4Bytes(s);
  return b ? { family: 4, bytes: Uint8Array.from(b) } : null;
}

/** Parses "address/prefix" (host bits allowed); null for anything else, including a prefix beyond 32 / 128. */
export function cidrBytes(s: string): CidrBytes | null {
  if (typeof s !== "string") return null;
  const slash = s.indexOf("/");
  if (slash === -1 || s.indexOf("/", slash + 1) !== -1) return null;
  const p = s.slice(slash + 1);
  if (!DECIMAL.test(p)) return null;
  const ip = ipBytes(s.slice(0, slash));
  if (!ip) return null;
  const prefix = Number(p);
  if (prefix > ip.bytes.length * 8) return null;
  return { ...ip, prefix };
}

/** The canonical text of address bytes: dotted quad, or RFC 5952 for IPv6. */
export function formatIpBytes(ip: IpBytes): string {
  const b = ip.bytes;
  if (ip.family === 4) return [0, 1, 2, 3].map((i) => b[i] ?? 0).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0));
  return formatIpv6(groups);
}

/** The canonical text of a prefix, "10.1.0.5/24". */
export function formatCidr(c: CidrBytes): string {
  return `${formatIpBytes(c)}/${c.prefix}`;
}

/** The network of a prefix: host bits cleared (10.1.2.3/16 becomes 10.1.0.0/16). */
export function maskCidr(c: CidrBytes): CidrBytes {
  const bytes = c.bytes.map((b, i) => b & (0xff << (8 - Math.max(0, Math.min(8, c.prefix - 8 * i)))) & 0xff);
  return { family: c.family, bytes, prefix: c.prefix };
}

/** A hardware address of any length (6 bytes ethernet, 20 IPoIB) as lower-case colon hex; "" for none. */
export function formatHwaddr(bytes: Uint8Array): string {
  return Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join(":");
}

/** Parses an IP address (IPv4 dotted quad or IPv6, compressed or not); `ip` is its canonical text. */
export function parseIp(s: string): { family: 4 | 6; ip: string } | null {
  const b = ipBytes(s);
  return b ? { family: b.family, ip: formatIpBytes(b) } : null;
}

/** The family of an IP address: 4, 6, or 0 when `s` is not an address. */
export function isIp(s: string): 4 | 6 | 0 {
  return parseIp(s)?.family ?? 0;
}

/**
 * Parses "address/prefix" (host bits allowed, as in "10.1.0.5/16"); `ip` is the canonical address text.
 * Returns null for anything else, including a prefix with leading zeros or beyond 32 / 128.
 */
export function parseCidr(s: string): { family: 4 | 6; ip: string; prefix: number } | null {
  const c = cidrBytes(s);
  return c === null ? null : { family: c.family, ip: formatIpBytes(c), prefix: c.prefix };
}
