/**
 * Small helpers on textual IP addresses and prefixes, for comparing what the kernel reports with what a
 * result says (the two may spell the same IPv6 address differently).
 * @module
 */

/** The canonical spelling of an IPv4 or IPv6 address (IPv6 fully expanded, lower case), or null. */
export function canonicalIp(ip: string): string | null {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
    const parts = ip.split(".").map(Number);
    return parts.every((p) => p <= 255) ? parts.join(".") : null;
  }
  if (!/^[0-9a-fA-F:.]+$/.test(ip) || !ip.includes(":")) return null;
  let text = ip.toLowerCase();
  const v4 = text.match(/(\d{1,3}(?:\.\d{1,3}){3})$/);
  if (v4) {
    const parts = v4[1]!.split(".").map(Number);
    if (parts.some((p) => p > 255)) return null;
    const hex = (a: number, b: number) => ((a << 8) | b).toString(16);
    text = text.slice(0, -v4[1]!.length) + `${hex(parts[0]!, parts[1]!)}:${hex(parts[2]!, parts[3]!)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)) return null;
  const groups = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.map((g) => g.padStart(4, "0")).join(":");
}

/** The canonical spelling of `address/prefix`, or null when it is not one. */
export function canonicalCidr(cidr: string): string | null {
  const slash = cidr.lastIndexOf("/");
  if (slash < 0) return null;
  const ip = canonicalIp(cidr.slice(0, slash));
  const prefixText = cidr.slice(slash + 1);
  if (ip === null || !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  return prefix > (ip.includes(":") ? 128 : 32) ? null : `${ip}/${prefix}`;
}

/** 4 or 6 for an address or prefix, 0 when it is neither. */
export function ipFamily(text: string): 0 | 4 | 6 {
  const ip = canonicalIp(text.split("/")[0]!);
  return ip === null ? 0 : ip.includes(":") ? 6 : 4;
}
