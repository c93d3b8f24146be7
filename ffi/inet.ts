/**
 * Pure encoders and parsers for the values the netlink layer exchanges with the kernel:
 * IP addresses and CIDRs as bytes, and hardware addresses as colon hex. No FFI here, so
 * these run (and are unit-tested) without any permission.
 * @module
 */

import { CniError, ErrorCode } from "../lib/errors.ts";
import { formatIpv6 } from "../lib/ip.ts";

/** An IP address in network byte order with its family. */
export interface IpBytes {
  family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
}

/** An address plus a prefix length, as in `10.1.0.5/24`. */
export interface CidrBytes extends IpBytes {
  prefix: number;
}

function invalid(what: string, text: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `invalid ${what} "${text}"`);
}

function parseIpv4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // Leading zeros are refused because some tools read them as octal.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[at + i] = n;
  }
  return true;
}

function parseGroups(text: string): number[] | null {
  if (text === "") return [];
  const groups: number[] = [];
  const parts = text.split(":");
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i === parts.length - 1 && p.includes(".")) {
      const v4 = new Uint8Array(4);
      if (!parseIpv4Into(p, v4, 0)) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      groups.push(parseInt(p, 16));
    }
  }
  return groups;
}

function parseIpv6(text: string): Uint8Array | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  // "::" must stand for at least one zero group; without it all eight must be present.
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Parses a plain IPv4 or IPv6 address (no prefix, no zone); null when it is not one. */
export function tryParseIp(text: string): IpBytes | null {
  if (text.includes(":")) {
    const bytes = parseIpv6(text);
    return bytes ? { family: 6, bytes } : null;
  }
  const bytes = new Uint8Array(4);
  return parseIpv4Into(text, bytes, 0) ? { family: 4, bytes } : null;
}

/** Parses a plain IP address; throws CniError (InvalidNetworkConfig) when it is not one. */
export function parseIp(text: string): IpBytes {
  const ip = tryParseIp(text);
  if (!ip) throw invalid("IP address", text);
  return ip;
}

/** Parses `address/prefix`; the prefix is required and must fit the family. */
export function parseCidr(text: string): CidrBytes {
  const slash = text.indexOf("/");
  if (slash < 0) throw invalid("CIDR", text);
  const ip = tryParseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) throw invalid("CIDR", text);
  const prefix = Number(prefixText);
  if (prefix > ip.bytes.length * 8) throw invalid("CIDR", text);
  return { ...ip, prefix };
}

/** The network of a CIDR: host bits cleared ("10.1.2.3/16" becomes 10.1.0.0/16). */
export function maskCidr(c: CidrBytes): CidrBytes {
  const bytes = c.bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, c.prefix - 8 * i));
    return b & (0xff << (8 - keep)) & 0xff;
  });
  return { family: c.family, bytes, prefix: c.prefix };
}

/**
 * Formats address bytes: dotted quad for 4 bytes, RFC 5952 text (the same spelling as
 * lib/ip.ts, so kernel and config values compare equal) for 16 bytes. A shorter
 * buffer (libnl hands out a zero-length address for a default route) is padded with zeros.
 */
export function formatIp(family: 4 | 6, bytes: Uint8Array): string {
  const size = family === 4 ? 4 : 16;
  const b = new Uint8Array(size);
  b.set(bytes.subarray(0, size));
  if (family === 4) return b.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  return formatIpv6(groups);
}

/** Formats a hardware address of any length as lower-case colon hex ("" for none). */
export function formatHwaddr(bytes: Uint8Array): string {
  return Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join(":");
}

/** Parses colon hex of any length (6 bytes ethernet, 20 bytes IPoIB); null when malformed. */
export function parseHwaddr(text: string): Uint8Array | null {
  const parts = text.split(":");
  if (!parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return null;
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}
