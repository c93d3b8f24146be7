/**
 * Routes decoded from the kernel's RTM_NEWROUTE messages (struct rtmsg, then route attributes), from
 * bytes already copied out of C memory. Pure: no FFI, so the decoding is testable anywhere.
 *
 * Layouts from the kernel's include/uapi/linux/rtnetlink.h: struct rtmsg (12 bytes: family, dst_len,
 * src_len, tos, table, protocol, scope, type as u8, then u32 flags), the RTA_* attribute types, struct
 * rtnexthop (8 bytes: u16 len, u8 flags, u8 hops, int ifindex, then its own attributes) and struct rtvia
 * (u16 family, then the address); RTAX_* from the same header.
 * @module
 */

import type { CidrBytes, IpBytes } from "../lib/ip.ts";
import { type Attributes, fixedAttr, HOST_LITTLE_ENDIAN, parseAttributes } from "./nlattr.ts";

/** A route as the kernel reports it. */
export interface RouteInfo {
  family: 4 | 6;
  /** RTA_DST with its prefix length; all zero bytes, prefix 0, for a default route. */
  dst: CidrBytes;
  /** The nexthop's gateway (RTA_GATEWAY, or RTA_VIA for an IPv4 route via an IPv6 gateway). */
  gw?: IpBytes;
  /** The nexthop's output interface (a multipath route is listed once per nexthop). */
  index?: number;
  /** RTA_PRIORITY; 0 when the route has none. */
  metric: number;
  table: number;
  /** RT_SCOPE_* (0 universe, 253 link, 254 host). */
  scope: number;
  /** RTN_* (1 unicast, 2 local, 3 broadcast, ...). */
  type: number;
  /** RTAX_MTU when set. */
  mtu?: number;
  /** RTAX_ADVMSS when set. */
  advmss?: number;
}

/** sizeof(struct rtmsg). */
export const RTMSG_LEN = 12;
const RTNEXTHOP_LEN = 8;
const AF_INET = 2;
const AF_INET6 = 10;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_METRICS = 8;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const RTA_VIA = 18;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;

function familyOf(af: number): 4 | 6 | null {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : null;
}

function u32(attrs: Attributes, type: number): number | undefined {
  return fixedAttr(attrs, type, 4)?.getUint32(0, HOST_LITTLE_ENDIAN);
}

/** An address attribute of exactly the family's length; undefined when absent or of another length. */
function ipAttr(attrs: Attributes, type: number, family: 4 | 6): IpBytes | undefined {
  const v = attrs.get(type);
  return v !== undefined && v.length === (family === 4 ? 4 : 16) ? { family, bytes: v.slice() } : undefined;
}

/** The gateway of one nexthop's attributes: RTA_GATEWAY (the route's family), else RTA_VIA (any family). */
function gatewayOf(attrs: Attributes, family: 4 | 6): IpBytes | undefined {
  const gw = ipAttr(attrs, RTA_GATEWAY, family);
  if (gw !== undefined) return gw;
  const via = attrs.get(RTA_VIA);
  if (via === undefined || via.length < 2) return undefined;
  const viaFamily = familyOf(new DataView(via.buffer, via.byteOffset, 2).getUint16(0, HOST_LITTLE_ENDIAN));
  const bytes = via.subarray(2);
  return viaFamily !== null && bytes.length === (viaFamily === 4 ? 4 : 16)
    ? { family: viaFamily, bytes: bytes.slice() }
    : undefined;
}

interface Nexthop {
  index?: number;
  gw?: IpBytes;
}

/** The rtnexthop entries of RTA_MULTIPATH, each with its own attributes; stops at a malformed entry. */
function multipathOf(value: Uint8Array, family: 4 | 6): Nexthop[] {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const out: Nexthop[] = [];
  let at = 0;
  while (at + RTNEXTHOP_LEN <= value.length) {
    const len = view.getUint16(at, HOST_LITTLE_ENDIAN);
    if (len < RTNEXTHOP_LEN || at + len > value.length) break;
    const index = view.getInt32(at + 4, HOST_LITTLE_ENDIAN);
    const attrs = parseAttributes(value.subarray(at + RTNEXTHOP_LEN, at + len));
    out.push({ ...(index > 0 ? { index } : {}), ...optional("gw", gatewayOf(attrs, family)) });
    at += (len + 3) & ~3;
  }
  return out;
}

function optional<K extends string, V>(key: K, v: V | undefined): { [k in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [k in K]?: V };
}

/**
 * The routes of one RTM_NEWROUTE message body (`body` starts at struct rtmsg, after the nlmsghdr): one
 * entry per nexthop of an RTA_MULTIPATH route, else one entry. Empty for a family other than IPv4 and
 * IPv6 (the multicast routing families of an AF_UNSPEC dump) or a body shorter than struct rtmsg.
 */
export function decodeRoute(body: Uint8Array): RouteInfo[] {
  if (body.length < RTMSG_LEN) return [];
  const family = familyOf(body[0]!);
  if (family === null) return [];
  const attrs = parseAttributes(body.subarray(RTMSG_LEN));
  const dst: CidrBytes = {
    family,
    bytes: ipAttr(attrs, RTA_DST, family)?.bytes ?? new Uint8Array(family === 4 ? 4 : 16),
    prefix: body[1]!,
  };
  const metrics = attrs.has(RTA_METRICS) ? parseAttributes(attrs.get(RTA_METRICS)!) : new Map();
  const route: RouteInfo = {
    family,
    dst,
    metric: u32(attrs, RTA_PRIORITY) ?? 0,
    // rtm_table holds only the low 8 bits' worth of table ids; RTA_TABLE the full u32.
    table: u32(attrs, RTA_TABLE) ?? body[4]!,
    scope: body[6]!,
    type: body[7]!,
    ...optional("mtu", u32(metrics, RTAX_MTU)),
    ...optional("advmss", u32(metrics, RTAX_ADVMSS)),
  };
  const multipath = attrs.get(RTA_MULTIPATH);
  const oif = u32(attrs, RTA_OIF);
  const nexthops = multipath === undefined ? [] : multipathOf(multipath, family);
  if (nexthops.length === 0) {
    nexthops.push({
      ...optional("index", oif ? oif : undefined),
      ...optional("gw", gatewayOf(attrs, family)),
    });
  }
  return nexthops.map((nh) => ({ ...route, ...nh }));
}
