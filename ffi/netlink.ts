/**
 * The typed netlink layer: links, addresses and routes through libnl, with the kernel's own
 * error text. Nothing outside ffi/ sees a pointer.
 *
 * A {@link Netlink} socket belongs to the network namespace its thread was in when it was
 * opened; to work inside a pod, open it inside `withNetns` (ffi/netns.ts).
 * @module
 */

import { CniError, ErrorCode } from "../lib/errors.ts";
import {
  type CidrBytes,
  formatCidr as cidrText,
  formatHwaddr,
  formatIpBytes as ipText,
  type IpBytes,
  maskCidr,
} from "../lib/ip.ts";
import { cString, Errno, setIntSockopt, strerror } from "./libc.ts";
import { ERR_CALLBACK, libnl, libnlRoute, MSG_CALLBACK } from "./libnl.ts";
import { type Attributes, attrString, parseAttributes } from "./nlattr.ts";
import { decodeRoute, type RouteInfo, RTMSG_LEN } from "./rtmsg.ts";

export type { RouteInfo };

/** A link as the kernel reports it. */
export interface LinkInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND ("veth", "macvlan", "ipoib"), null for a physical device. */
  kind: string | null;
  /** ARPHRD_* (1 ethernet, 32 InfiniBand, 772 loopback). */
  arpType: number;
  mtu: number;
  /** IFF_* flags. */
  flags: number;
  /** IFF_UP is set (administratively up). */
  up: boolean;
  /** Colon hex of any length: 6 bytes for ethernet, 20 for IPoIB; "" when the link has none. */
  hwaddr: string;
  /** IFLA_LINK (the parent, or a veth's peer), 0 if none. */
  parentIndex: number;
  /** IFLA_IFALIAS, null when the link has none. It survives moves between namespaces. */
  alias: string | null;
}

/** An interface address. */
export interface AddressInfo {
  index: number;
  family: 4 | 6;
  /** IFA_LOCAL with the prefix length, in network byte order (format with lib/ip.ts). */
  address: CidrBytes;
  /** IFA_F_* flags. */
  flags: number;
  /** IPv6 duplicate address detection still running. */
  tentative: boolean;
  /** IPv6 duplicate address detection found another holder. */
  dadFailed: boolean;
}

/** What {@link Netlink.addRoute} sends. */
export interface RouteRequest {
  /** Destination; host bits are cleared before sending. Prefix 0 for a default route. */
  dst: CidrBytes;
  /** Gateway, of the destination's family (the caller checks). */
  gw?: IpBytes;
  index: number;
  /** The name of link `index`, for error messages ("dev ib1"); they say "link <index>" without it. */
  ifname?: string;
  metric?: number;
  /** Routing table; the main table (254) when absent. */
  table?: number;
  /** RT_SCOPE_*; when absent libnl picks link scope without a gateway, universe with one. */
  scope?: number;
  mtu?: number;
  advmss?: number;
  /**
   * What to do when a route with the same destination, table and metric exists: "exclusive" (the
   * default) fails with EEXIST (NLM_F_CREATE|NLM_F_EXCL); "create" adds it beside the existing one
   * unless it is identical (NLM_F_CREATE); "append" also adds it after the existing ones
   * (NLM_F_CREATE|NLM_F_APPEND). An identical route is EEXIST in every mode.
   */
  existing?: "exclusive" | "create" | "append";
}

/** One attribute of IFLA_INFO_DATA: its type and a value of the width the link kind declares. */
export type LinkDataAttribute =
  | { type: number; u8: number }
  | { type: number; u16: number }
  | { type: number; u32: number };

/** What {@link Netlink.createLink} sends: one RTM_NEWLINK of any link kind. */
export interface LinkRequest {
  /** IFLA_IFNAME. */
  name: string;
  /** IFLA_LINK: the parent link, in the socket's namespace. */
  parentIndex: number;
  /** IFLA_INFO_KIND, e.g. "ipoib" or "macvlan". */
  kind: string;
  /** The kind's IFLA_INFO_DATA attributes, in order; none (or empty) sends no IFLA_INFO_DATA. */
  data?: readonly LinkDataAttribute[];
}

/** The kind-specific settings of a link, which {@link LinkInfo} does not carry. */
export interface LinkInfoData {
  /** IFLA_INFO_KIND ("veth", "macvlan", "ipoib"), null for a physical device. */
  kind: string | null;
  /**
   * The attributes nested in IFLA_INFO_DATA by type (IFLA_IPOIB_PKEY, IFLA_MACVLAN_MODE, ...), as
   * the kernel sent them; empty when it sent none. Decode them with ffi/nlattr.ts.
   */
  data: Attributes;
}

/** A failed netlink operation: code KernelFailure, with the errno and the kernel's own text. */
export class NetlinkError extends CniError {
  /** The errno the kernel answered (positive), or 0 when the failure was local to libnl. */
  readonly errno: number;
  /** The kernel's extended-ack text (e.g. "Unknown device type"), "" when it sent none. */
  readonly kernelMessage: string;
  constructor(what: string, errno: number, kernelMessage: string, libnlMessage: string) {
    super(
      ErrorCode.KernelFailure,
      `${what}: ${errno ? strerror(errno) : libnlMessage}`,
      kernelMessage || libnlMessage,
    );
    this.name = "NetlinkError";
    this.errno = errno;
    this.kernelMessage = kernelMessage;
  }
}

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NL_CB_VALID = 0;
const NL_CB_FINISH = 1;
const NL_CB_ACK = 4;
const NL_CB_DEFAULT = 0;
const NL_CB_CUSTOM = 3;
const NL_OK = 0;
const NL_STOP = 2;
const NLMSG_ERROR = 2;
const NLMSG_HDRLEN = 16;
const IFINFOMSG_LEN = 16;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300; // NLM_F_ROOT | NLM_F_MATCH
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWROUTE = 24;
const RTM_GETROUTE = 26;
/** Route origin "boot" (linux/rtnetlink.h RTPROT_BOOT): what `ip route add` and Go's netlink send. */
const RTPROT_BOOT = 3;
const IFF_UP = 0x1;
const IFLA_IFNAME = 3;
const IFLA_LINK = 5;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
const NLMSG_ALIGNTO = 4;

/** libnl NLE_* codes mapped back to the errno they usually stand for. */
const NLE_TO_ERRNO: Record<number, number> = {
  2: Errno.EINTR, // NLE_INTR
  3: Errno.EBADF, // NLE_BAD_SOCK
  4: Errno.EAGAIN, // NLE_AGAIN
  5: Errno.ENOMEM, // NLE_NOMEM
  6: Errno.EEXIST, // NLE_EXIST
  7: Errno.EINVAL, // NLE_INVAL
  8: Errno.ERANGE, // NLE_RANGE
  9: Errno.EMSGSIZE, // NLE_MSGSIZE
  10: Errno.EOPNOTSUPP, // NLE_OPNOTSUPP
  11: Errno.EAFNOSUPPORT, // NLE_AF_NOSUPPORT
  12: Errno.ENOENT, // NLE_OBJ_NOTFOUND
  19: Errno.EADDRNOTAVAIL, // NLE_NOADDR
  25: Errno.EBUSY, // NLE_BUSY
  27: Errno.EACCES, // NLE_NOACCESS
  28: Errno.EPERM, // NLE_PERM
  31: Errno.ENODEV, // NLE_NODEV
};
const NLE_OBJ_NOTFOUND = 12;
const NLE_NODEV = 31;
const NLE_DUMP_INTR = 33;
/** How often a dump the kernel interrupted (the table changed under it) is asked for again. */
const DUMP_ATTEMPTS = 5;

type Ptr = Deno.PointerObject;

const encoder = new TextEncoder();

const UINT_MAX = { u8: 0xff, u16: 0xffff, u32: 0xffffffff } as const;

function cStringOrNull(p: Deno.PointerValue): string | null {
  return p ? Deno.UnsafePointerView.getCString(p) : null;
}

function outOfMemory(what: string): CniError {
  return new CniError(ErrorCode.Internal, `${what}: libnl could not allocate memory`);
}

/** A copy of an nl_addr's bytes: the C buffer dies with its object. */
function addrBytes(addr: Deno.PointerValue): Uint8Array {
  if (!addr) return new Uint8Array(0);
  const len = libnl.nl_addr_get_len(addr);
  const p = libnl.nl_addr_get_binary_addr(addr);
  const out = new Uint8Array(len);
  if (p && len > 0) Deno.UnsafePointerView.copyInto(p, out);
  return out;
}

function familyOf(af: number): 4 | 6 | null {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : null;
}

/** An IP address of `family`; libnl hands out a zero-length address for a default route: zeros then. */
function ipOf(family: 4 | 6, addr: Deno.PointerValue): IpBytes {
  const bytes = new Uint8Array(family === 4 ? 4 : 16);
  bytes.set(addrBytes(addr).subarray(0, bytes.length));
  return { family, bytes };
}

function cidrOf(family: 4 | 6, addr: Deno.PointerValue): CidrBytes {
  return { ...ipOf(family, addr), prefix: addr ? libnl.nl_addr_get_prefixlen(addr) : 0 };
}

/** A new nl_addr holding `ip`; the caller puts it once the object it was set on holds its own reference. */
function buildAddr(ip: IpBytes | CidrBytes): Ptr {
  const p = libnl.nl_addr_build(ip.family === 4 ? AF_INET : AF_INET6, ip.bytes, BigInt(ip.bytes.length));
  if (!p) throw outOfMemory("build address");
  libnl.nl_addr_set_prefixlen(p, "prefix" in ip ? ip.prefix : ip.bytes.length * 8);
  return p;
}

/** Reads the result of a `struct X **` out-parameter. */
function outPointer(slot: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(slot[0]!);
}

function linkInfo(link: Ptr): LinkInfo {
  const flags = libnlRoute.rtnl_link_get_flags(link);
  return {
    index: libnlRoute.rtnl_link_get_ifindex(link),
    name: cStringOrNull(libnlRoute.rtnl_link_get_name(link)) ?? "",
    kind: cStringOrNull(libnlRoute.rtnl_link_get_type(link)),
    arpType: libnlRoute.rtnl_link_get_arptype(link),
    mtu: libnlRoute.rtnl_link_get_mtu(link),
    flags,
    up: (flags & IFF_UP) !== 0,
    hwaddr: formatHwaddr(addrBytes(libnlRoute.rtnl_link_get_addr(link))),
    parentIndex: libnlRoute.rtnl_link_get_link(link),
    alias: cStringOrNull(libnlRoute.rtnl_link_get_ifalias(link)),
  };
}

/** Decodes the kernel's RTM_NEWLINK reply for link `index` (nlmsghdr, ifinfomsg, attributes). */
function linkInfoDataOf(reply: Uint8Array | null, index: number, what: string): LinkInfoData {
  const start = NLMSG_HDRLEN + IFINFOMSG_LEN;
  if (reply === null || reply.length < start) {
    throw new CniError(ErrorCode.Internal, `${what}: the kernel sent no link in its reply`);
  }
  // Typed arrays over an aligned copy read the headers in host byte order, as netlink sends them.
  const head = reply.slice(0, start).buffer;
  const type = new Uint16Array(head)[2]; // nlmsghdr.nlmsg_type
  const replyIndex = new Int32Array(head)[5]; // ifinfomsg.ifi_index
  if (type !== RTM_NEWLINK || replyIndex !== index) {
    throw new CniError(
      ErrorCode.Internal,
      `${what}: the kernel replied with message type ${type} for link ${replyIndex}`,
    );
  }
  const info = parseAttributes(reply.subarray(start)).get(IFLA_LINKINFO);
  const nested = info === undefined ? new Map<number, Uint8Array>() : parseAttributes(info);
  const data = nested.get(IFLA_INFO_DATA);
  return {
    kind: attrString(nested, IFLA_INFO_KIND),
    data: data === undefined ? new Map() : parseAttributes(data),
  };
}

/** What the error callback saw for the current operation. */
interface KernelReport {
  errno: number;
  message: string;
}

/**
 * Reads an NLMSG_ERROR: `nlerr` points at struct nlmsgerr, which sits right after its own
 * 16-byte nlmsghdr. With NETLINK_EXT_ACK the kernel appends TLVs after the echoed request
 * (only its header when NLM_F_CAPPED is set); NLMSGERR_ATTR_MSG carries the text.
 */
function readKernelReport(nlerr: Ptr): KernelReport {
  const outer = new Deno.UnsafePointerView(Deno.UnsafePointer.offset(nlerr, -16) as Ptr);
  const totalLen = outer.getUint32(0);
  const flags = outer.getUint16(6);
  const errno = -outer.getInt32(16);
  let message = "";
  if (flags & NLM_F_ACK_TLVS) {
    const echoedLen = flags & NLM_F_CAPPED ? 16 : outer.getUint32(20);
    let at = 20 + ((echoedLen + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1));
    while (at + 4 <= totalLen) {
      const len = outer.getUint16(at);
      const type = outer.getUint16(at + 2) & 0x3fff;
      if (len < 4 || at + len > totalLen) break;
      if (type === NLMSGERR_ATTR_MSG) {
        const bytes = new Uint8Array(len - 4);
        outer.copyInto(bytes, at + 4);
        const nul = bytes.indexOf(0);
        message = new TextDecoder().decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
        break;
      }
      at += (len + 3) & ~3;
    }
  }
  return { errno, message };
}

/** A NETLINK_ROUTE socket. Synchronous; use one per namespace and close it (or `using` it). */
export class Netlink implements Disposable {
  #sk: Ptr | null;
  #callback: Deno.UnsafeCallback<typeof ERR_CALLBACK> | null = null;
  #report: KernelReport | null = null;

  private constructor(sk: Ptr) {
    this.#sk = sk;
  }

  /**
   * Opens a NETLINK_ROUTE socket in the calling thread's current network namespace, with
   * extended acks on so that failures carry the kernel's explanation.
   */
  static open(): Netlink {
    const sk = libnl.nl_socket_alloc();
    if (!sk) throw outOfMemory("open netlink socket");
    const nl = new Netlink(sk);
    try {
      nl.#check(libnl.nl_connect(sk, NETLINK_ROUTE), "open netlink socket");
      const fd = libnl.nl_socket_get_fd(sk);
      // Best effort: kernels before 4.12 lack extended acks and still report the errno.
      setIntSockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
      // Acks then echo only the request's header, not the whole request.
      setIntSockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      nl.#callback = new Deno.UnsafeCallback(ERR_CALLBACK, (_nla, nlerr) => {
        if (nlerr) nl.#report = readKernelReport(nlerr);
        // NL_STOP makes libnl return the error too, mapped from the kernel's errno.
        return NL_STOP;
      });
      nl.#check(
        libnl.nl_socket_modify_err_cb(sk, NL_CB_CUSTOM, nl.#callback.pointer, null),
        "set error callback",
      );
    } catch (e) {
      nl.close();
      throw e;
    }
    return nl;
  }

  /** Closes the socket and frees its callback; safe to call twice. */
  close(): void {
    if (this.#sk) libnl.nl_socket_free(this.#sk);
    this.#sk = null;
    this.#callback?.close();
    this.#callback = null;
  }

  /** Same as {@link Netlink.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  get #socket(): Ptr {
    if (!this.#sk) throw new CniError(ErrorCode.Internal, "netlink socket used after close");
    this.#report = null;
    return this.#sk;
  }

  /** Turns a negative libnl result into a NetlinkError, preferring what the kernel said. */
  #check(rc: number, what: string): number {
    const report = this.#report;
    // A report belongs to one call: libnl may retry after an error (rtnl_link_change falls
    // back from RTM_NEWLINK to RTM_SETLINK) and then succeed.
    this.#report = null;
    if (rc >= 0) return rc;
    const errno = report?.errno ?? NLE_TO_ERRNO[-rc] ?? 0;
    const libnlText = cStringOrNull(libnl.nl_geterror(rc)) ?? `libnl error ${-rc}`;
    throw new NetlinkError(what, errno, report?.message ?? "", libnlText);
  }

  /** Runs `alloc` (a `*_alloc_cache` call), hands each object to `each`, then frees the cache. */
  #walkCache(what: string, alloc: (sk: Ptr, slot: BigUint64Array) => number, each: (obj: Ptr) => void): void {
    const slot = new BigUint64Array(1);
    this.#check(alloc(this.#socket, slot), what);
    const cache = outPointer(slot);
    if (!cache) return;
    try {
      for (let obj = libnl.nl_cache_get_first(cache); obj; obj = libnl.nl_cache_get_next(obj)) each(obj);
    } finally {
      libnl.nl_cache_free(cache);
    }
  }

  /** One link by name or index; null when there is none. */
  getLink(nameOrIndex: string | number): LinkInfo | null {
    const slot = new BigUint64Array(1);
    const byName = typeof nameOrIndex === "string";
    const rc = libnlRoute.rtnl_link_get_kernel(
      this.#socket,
      byName ? 0 : nameOrIndex,
      byName ? cString(nameOrIndex) : null,
      slot,
    );
    if (rc === -NLE_OBJ_NOTFOUND || rc === -NLE_NODEV) {
      this.#report = null;
      return null;
    }
    this.#check(rc, `get link ${JSON.stringify(nameOrIndex)}`);
    const link = outPointer(slot);
    if (!link) return null;
    try {
      return linkInfo(link);
    } finally {
      libnlRoute.rtnl_link_put(link);
    }
  }

  /**
   * The kind and the raw IFLA_INFO_DATA attributes of one link; null when there is no such link.
   * libnl keeps IFLA_INFO_DATA only for kinds it has a module for, and it has none for IPoIB, so
   * this sends its own RTM_GETLINK and copies the attributes out of the kernel's reply.
   */
  getLinkInfoData(index: number): LinkInfoData | null {
    const what = `get settings of link ${index}`;
    const sk = this.#socket;
    const got: { reply: Uint8Array | null; acked: boolean } = { reply: null, acked: false };
    // One callback for the reply and the ack. The reply is copied: libnl frees it after the call.
    const callback = new Deno.UnsafeCallback(MSG_CALLBACK, (msg) => {
      const hdr = msg ? libnl.nlmsg_hdr(msg) : null;
      if (!hdr) return NL_OK;
      const view = new Deno.UnsafePointerView(hdr);
      if (view.getUint16(4) === NLMSG_ERROR) {
        got.acked = true;
        return NL_STOP;
      }
      const bytes = new Uint8Array(view.getUint32(0));
      view.copyInto(bytes);
      got.reply = bytes;
      return NL_OK;
    });
    const msg = libnl.nlmsg_alloc_simple(RTM_GETLINK, 0);
    try {
      if (!msg) throw outOfMemory(what);
      const ifinfomsg = new Uint8Array(IFINFOMSG_LEN); // family AF_UNSPEC, then ifi_index at 4
      new Int32Array(ifinfomsg.buffer, 4, 1)[0] = index;
      if (libnl.nlmsg_append(msg, ifinfomsg, BigInt(ifinfomsg.length), NLMSG_ALIGNTO) < 0) {
        throw new NetlinkError(`${what}: build message`, Errno.EMSGSIZE, "", "message too long");
      }
      this.#check(libnl.nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, callback.pointer, null), what);
      this.#check(libnl.nl_socket_modify_cb(sk, NL_CB_ACK, NL_CB_CUSTOM, callback.pointer, null), what);
      this.#check(libnl.nl_send_auto(sk, msg), what);
      // nl_send_auto asks for an ack; the reply and the ack come as separate datagrams, one per
      // nl_recvmsgs_default. Reading up to the ack keeps the socket's sequence numbers in step
      // for the next request. A failure (ENODEV) comes instead of both, through the error callback.
      for (let reads = 0; !got.acked; reads++) {
        if (reads === 8) {
          throw new CniError(ErrorCode.Internal, `${what}: the kernel sent no acknowledgement`);
        }
        const rc = libnl.nl_recvmsgs_default(sk);
        if (rc === -NLE_NODEV || rc === -NLE_OBJ_NOTFOUND) {
          this.#report = null;
          return null;
        }
        this.#check(rc, what);
      }
    } finally {
      libnl.nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_DEFAULT, null, null);
      libnl.nl_socket_modify_cb(sk, NL_CB_ACK, NL_CB_DEFAULT, null, null);
      callback.close();
      if (msg) libnl.nlmsg_free(msg);
    }
    return linkInfoDataOf(got.reply, index, what);
  }

  /** Every link in this namespace, in the kernel's order. */
  listLinks(): LinkInfo[] {
    const out: LinkInfo[] = [];
    this.#walkCache(
      "list links",
      (sk, slot) => libnlRoute.rtnl_link_alloc_cache(sk, AF_UNSPEC, slot),
      (obj) => out.push(linkInfo(obj)),
    );
    return out;
  }

  /**
   * Creates a link of any kind with one hand-built RTM_NEWLINK (NLM_F_CREATE|NLM_F_EXCL): IFLA_LINK,
   * IFLA_IFNAME, then IFLA_LINKINFO holding IFLA_INFO_KIND and, when `data` has any, IFLA_INFO_DATA
   * with the kind's attributes in the given order and widths. Hand-built because libnl has no
   * module for some kinds (IPoIB: none in any release), and generic libnl links carry the kind
   * but no IFLA_INFO_DATA. For IPoIB this equals iproute2's `ip link add ... type ipoib` byte for
   * byte, except that libnl 3.7 marks nests with NLA_F_NESTED and iproute2 does not (the kernel
   * accepts both). Throws NetlinkError (code 100) when the kernel refuses, CniError Internal when
   * a value does not fit its width (a caller's bug, not a configuration error).
   */
  createLink(req: LinkRequest): void {
    const what = `create link ${JSON.stringify(req.name)}`;
    for (const attr of req.data ?? []) {
      const [width, value] = Object.entries(attr).find(([k]) => k !== "type") as [
        keyof typeof UINT_MAX,
        number,
      ];
      if (!(Number.isInteger(value) && value >= 0 && value <= UINT_MAX[width])) {
        throw new CniError(
          ErrorCode.Internal,
          `${what}: attribute ${attr.type} value ${value} is not a ${width}`,
        );
      }
    }
    const msg = libnl.nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    if (!msg) throw outOfMemory(what);
    let built = false;
    try {
      const ifinfomsg = new Uint8Array(IFINFOMSG_LEN); // family AF_UNSPEC, no type, index 0, no flags
      const kind = encoder.encode(req.kind); // without the NUL, as iproute2 sends it
      const ok = (rc: number) => {
        if (rc < 0) throw new NetlinkError(`${what}: build message`, Errno.EMSGSIZE, "", "message too long");
      };
      ok(libnl.nlmsg_append(msg, ifinfomsg, BigInt(ifinfomsg.length), NLMSG_ALIGNTO));
      // Attribute order as iproute2's, so the two requests compare byte for byte in tests.
      ok(libnl.nla_put_u32(msg, IFLA_LINK, req.parentIndex));
      ok(libnl.nla_put_string(msg, IFLA_IFNAME, cString(req.name)));
      const linkinfo = libnl.nla_nest_start(msg, IFLA_LINKINFO);
      if (!linkinfo) ok(-1);
      ok(libnl.nla_put(msg, IFLA_INFO_KIND, kind.length, kind));
      // Like iproute2, no IFLA_INFO_DATA at all when nothing goes in it: the kernel then applies
      // the kind's defaults (IPoIB: leaves the parent's mode and umcast alone).
      if (req.data !== undefined && req.data.length > 0) {
        const data = libnl.nla_nest_start(msg, IFLA_INFO_DATA);
        if (!data) ok(-1);
        for (const attr of req.data) {
          if ("u8" in attr) ok(libnl.nla_put(msg, attr.type, 1, Uint8Array.of(attr.u8)));
          else if ("u16" in attr) ok(libnl.nla_put_u16(msg, attr.type, attr.u16));
          else ok(libnl.nla_put_u32(msg, attr.type, attr.u32));
        }
        ok(libnl.nla_nest_end(msg, data));
      }
      ok(libnl.nla_nest_end(msg, linkinfo));
      built = true;
    } finally {
      if (!built) libnl.nlmsg_free(msg);
    }
    // nl_send_sync frees the message whatever happens.
    this.#check(libnl.nl_send_sync(this.#socket, msg), what);
  }

  /** Sends an RTM_NEWLINK for `index` carrying what `fill` sets on a changes object. */
  #change(index: number, what: string, fill: (changes: Ptr) => void): void {
    const orig = libnlRoute.rtnl_link_alloc();
    if (!orig) throw outOfMemory(what);
    const changes = libnlRoute.rtnl_link_alloc();
    try {
      if (!changes) throw outOfMemory(what);
      libnlRoute.rtnl_link_set_ifindex(orig, index);
      fill(changes);
      this.#check(libnlRoute.rtnl_link_change(this.#socket, orig, changes, 0), what);
    } finally {
      libnlRoute.rtnl_link_put(orig);
      if (changes) libnlRoute.rtnl_link_put(changes);
    }
  }

  /** Moves a link into the network namespace open at `nsFd`; its index may change there. */
  moveToNetns(index: number, nsFd: number): void {
    this.#change(
      index,
      `move link ${index} to another namespace`,
      (c) => libnlRoute.rtnl_link_set_ns_fd(c, nsFd),
    );
  }

  /**
   * Renames, sets the MTU of, brings up or down, and sets the alias (IFLA_IFALIAS; "" removes it) of
   * a link, in one request. The kernel ignores IFLA_IFALIAS in a create request: set it afterwards.
   */
  setLink(index: number, change: { name?: string; mtu?: number; up?: boolean; alias?: string }): void {
    if (Object.values(change).every((v) => v === undefined)) return;
    this.#change(index, `set link ${index}`, (c) => {
      if (change.name !== undefined) libnlRoute.rtnl_link_set_name(c, cString(change.name));
      if (change.alias !== undefined) libnlRoute.rtnl_link_set_ifalias(c, cString(change.alias));
      if (change.mtu !== undefined) libnlRoute.rtnl_link_set_mtu(c, change.mtu);
      if (change.up === true) libnlRoute.rtnl_link_set_flags(c, IFF_UP);
      if (change.up === false) libnlRoute.rtnl_link_unset_flags(c, IFF_UP);
    });
  }

  /** Deletes a link (a veth takes its peer with it). */
  deleteLink(index: number): void {
    const what = `delete link ${index}`;
    const link = libnlRoute.rtnl_link_alloc();
    if (!link) throw outOfMemory(what);
    try {
      libnlRoute.rtnl_link_set_ifindex(link, index);
      this.#check(libnlRoute.rtnl_link_delete(this.#socket, link), what);
    } finally {
      libnlRoute.rtnl_link_put(link);
    }
  }

  /**
   * Adds an address with its prefix length to a link; fails with EEXIST if it is there already. `ifname`,
   * the link's name, is for error messages ("to ib1"); they say "to link <index>" without it.
   */
  addAddress(index: number, cidr: CidrBytes, ifname?: string): void {
    const what = `add address ${cidrText(cidr)} to ${ifname ?? `link ${index}`}`;
    const addr = libnlRoute.rtnl_addr_alloc();
    if (!addr) throw outOfMemory(what);
    try {
      libnlRoute.rtnl_addr_set_ifindex(addr, index);
      const local = buildAddr(cidr);
      try {
        this.#check(libnlRoute.rtnl_addr_set_local(addr, local), what);
      } finally {
        libnl.nl_addr_put(local);
      }
      this.#check(libnlRoute.rtnl_addr_add(this.#socket, addr, NLM_F_EXCL), what);
    } finally {
      libnlRoute.rtnl_addr_put(addr);
    }
  }

  /** Addresses of one link, or of every link, IPv4 and IPv6. */
  listAddresses(index?: number): AddressInfo[] {
    const out: AddressInfo[] = [];
    this.#walkCache("list addresses", (sk, slot) => libnlRoute.rtnl_addr_alloc_cache(sk, slot), (obj) => {
      const ifindex = libnlRoute.rtnl_addr_get_ifindex(obj);
      const family = familyOf(libnlRoute.rtnl_addr_get_family(obj));
      if (family === null || (index !== undefined && ifindex !== index)) return;
      const flags = libnlRoute.rtnl_addr_get_flags(obj);
      out.push({
        index: ifindex,
        family,
        address: cidrOf(family, libnlRoute.rtnl_addr_get_local(obj)),
        flags,
        tentative: (flags & IFA_F_TENTATIVE) !== 0,
        dadFailed: (flags & IFA_F_DADFAILED) !== 0,
      });
    });
    return out;
  }

  /**
   * Adds a route through `index`, optionally via a gateway. By default fails with EEXIST when one
   * with the same destination, table and metric exists; see {@link RouteRequest.existing}.
   */
  addRoute(r: RouteRequest): void {
    // Go plugins hand over route destinations masked (net.IPNet); do the same for 10.1.2.3/16.
    const dst = maskCidr(r.dst);
    const gw = r.gw;
    const dev = r.ifname === undefined ? `link ${r.index}` : `dev ${r.ifname}`;
    const what = `add route ${cidrText(r.dst)}${gw ? ` via ${ipText(gw)}` : ""} ${dev}`;
    const flags = r.existing === "create" ? 0 : r.existing === "append" ? NLM_F_APPEND : NLM_F_EXCL;
    const s = libnlRoute;
    const a = libnl;
    const route = s.rtnl_route_alloc();
    if (!route) throw outOfMemory(what);
    try {
      const dstAddr = buildAddr(dst);
      try {
        this.#check(s.rtnl_route_set_dst(route, dstAddr), what);
      } finally {
        a.nl_addr_put(dstAddr);
      }
      // RTPROT_BOOT, as iproute2 and Go's netlink send (libnl's default is RTPROT_STATIC): `ip route` then
      // shows the pod's routes as it shows those of a pod configured by the reference plugins.
      s.rtnl_route_set_protocol(route, RTPROT_BOOT);
      if (r.table !== undefined) s.rtnl_route_set_table(route, r.table);
      if (r.scope !== undefined) s.rtnl_route_set_scope(route, r.scope);
      if (r.metric !== undefined) s.rtnl_route_set_priority(route, r.metric);
      if (r.mtu !== undefined) this.#check(s.rtnl_route_set_metric(route, RTAX_MTU, r.mtu), what);
      if (r.advmss !== undefined) this.#check(s.rtnl_route_set_metric(route, RTAX_ADVMSS, r.advmss), what);
      const gwAddr = gw ? buildAddr(gw) : null;
      try {
        const nh = s.rtnl_route_nh_alloc();
        if (!nh) throw outOfMemory(what);
        // From here the route owns the nexthop; nothing between can fail.
        s.rtnl_route_nh_set_ifindex(nh, r.index);
        if (gwAddr) s.rtnl_route_nh_set_gateway(nh, gwAddr);
        s.rtnl_route_add_nexthop(route, nh);
      } finally {
        if (gwAddr) a.nl_addr_put(gwAddr);
      }
      this.#check(s.rtnl_route_add(this.#socket, route, flags), what); // libnl adds NLM_F_CREATE
    } finally {
      s.rtnl_route_put(route);
    }
  }

  /**
   * Routes of every table, filtered by output interface, family and table when given; a multipath route
   * is listed once per nexthop. Read with a plain RTM_GETROUTE dump rather than libnl's route cache: the
   * cache keeps one IPv4 route per destination, table, tos and priority (its object identity ignores
   * nexthops), so it hides routes the kernel holds, such as a connected route and a gatewayed one to the
   * same prefix, or two default routes via different gateways.
   */
  listRoutes(filter: { index?: number; family?: 4 | 6; table?: number } = {}): RouteInfo[] {
    const rtmsg = new Uint8Array(RTMSG_LEN); // all zero: every table, type and protocol
    rtmsg[0] = filter.family === 4 ? AF_INET : filter.family === 6 ? AF_INET6 : AF_UNSPEC;
    const out: RouteInfo[] = [];
    this.#dump("list routes", RTM_GETROUTE, rtmsg, (type, body) => {
      if (type !== RTM_NEWROUTE) return;
      for (const route of decodeRoute(body)) {
        if (filter.family !== undefined && route.family !== filter.family) continue;
        if (filter.table !== undefined && route.table !== filter.table) continue;
        if (filter.index !== undefined && route.index !== filter.index) continue;
        out.push(route);
      }
    });
    return out;
  }

  /**
   * Sends one dump request (`type` with NLM_F_DUMP, then `header`) and hands each message of the reply to
   * `each` as its type and its body (the bytes after the nlmsghdr, copied: libnl frees them after the
   * callback). Reads up to NLMSG_DONE. A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the table
   * changed while it was read) is thrown away and asked for again, as libnl's cache refill does.
   */
  #dump(
    what: string,
    type: number,
    header: Uint8Array,
    each: (type: number, body: Uint8Array) => void,
  ): void {
    for (let attempt = 1;; attempt++) {
      const messages: { type: number; body: Uint8Array }[] = [];
      const got = { done: false };
      const onValid = new Deno.UnsafeCallback(MSG_CALLBACK, (msg) => {
        const hdr = msg ? libnl.nlmsg_hdr(msg) : null;
        if (!hdr) return NL_OK;
        const view = new Deno.UnsafePointerView(hdr);
        const len = view.getUint32(0);
        const body = new Uint8Array(Math.max(0, len - NLMSG_HDRLEN));
        view.copyInto(body, NLMSG_HDRLEN);
        messages.push({ type: view.getUint16(4), body });
        return NL_OK;
      });
      const onFinish = new Deno.UnsafeCallback(MSG_CALLBACK, () => {
        got.done = true;
        return NL_STOP;
      });
      const sk = this.#socket;
      const msg = libnl.nlmsg_alloc_simple(type, NLM_F_DUMP);
      let rc = 0;
      try {
        if (!msg) throw outOfMemory(what);
        if (libnl.nlmsg_append(msg, header, BigInt(header.length), NLMSG_ALIGNTO) < 0) {
          throw new NetlinkError(`${what}: build message`, Errno.EMSGSIZE, "", "message too long");
        }
        this.#check(libnl.nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, onValid.pointer, null), what);
        this.#check(libnl.nl_socket_modify_cb(sk, NL_CB_FINISH, NL_CB_CUSTOM, onFinish.pointer, null), what);
        this.#check(libnl.nl_send_auto(sk, msg), what);
        // One nl_recvmsgs_default reads datagrams until NLMSG_DONE; the loop only guards against a reply
        // cut short. A dump is never acknowledged, so nothing else is left on the socket after DONE.
        for (let reads = 0; !got.done && rc >= 0; reads++) {
          if (reads === 8) {
            throw new CniError(ErrorCode.Internal, `${what}: the kernel did not finish its dump`);
          }
          rc = libnl.nl_recvmsgs_default(sk);
        }
      } finally {
        libnl.nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_DEFAULT, null, null);
        libnl.nl_socket_modify_cb(sk, NL_CB_FINISH, NL_CB_DEFAULT, null, null);
        onValid.close();
        onFinish.close();
        if (msg) libnl.nlmsg_free(msg);
      }
      if (rc === -NLE_DUMP_INTR && attempt < DUMP_ATTEMPTS) continue;
      this.#check(rc, what);
      for (const m of messages) each(m.type, m.body);
      return;
    }
  }
}
