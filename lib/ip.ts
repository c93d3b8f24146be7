/**
 * IP addresses and prefixes in text: parsing, and the canonical (RFC 5952) spelling, so that what the
 * kernel reports and what a CNI result says compare equal however each spells an address.
 * @module
 */

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
export function formatIpv6(g: number[]): string {
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

/** Parses an IP address (IPv4 dotted quad or IPv6, compressed or not); `ip` is its canonical text. */
export function parseIp(s: string): { family: 4 | 6; ip: string } | null {
  if (typeof s !== "string") return null;
  if (s.includes(":")) {
    const g = parseIpv6Groups(s);
    return g ? { family: 6, ip: formatIpv6(g) } : null;
  }
  const b = parseIpv4Bytes(s);
  return b ? { family: 4, ip: b.join(".") } : null;
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
  if (typeof s !== "string") return null;
  const slash = s.indexOf("/");
  if (slash === -1 || s.indexOf("/", slash + 1) !== -1) return null;
  const p = s.slice(slash + 1);
  if (!DECIMAL.test(p)) return null;
  const ip = parseIp(s.slice(0, slash));
  if (!ip) return null;
  const prefix = Number(p);
  if (prefix > (ip.family === 4 ? 32 : 128)) return null;
  return { family: ip.family, ip: ip.ip, prefix };
}

/** The canonical spelling of an IP address, or null when `s` is not one. */
export function canonicalIp(s: string): string | null {
  return parseIp(s)?.ip ?? null;
}

/** The canonical spelling of "address/prefix", or null when `s` is not one. */
export function canonicalCidr(s: string): string | null {
  const c = parseCidr(s);
  return c === null ? null : `${c.ip}/${c.prefix}`;
}

/** 4 or 6 for an address or a prefix, 0 when it is neither. */
export function ipFamily(s: string): 0 | 4 | 6 {
  return parseCidr(s)?.family ?? isIp(s);
}
