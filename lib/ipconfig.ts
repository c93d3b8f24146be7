/**
 * Applying an IPAM result to the interface inside the pod namespace, and checking it is still there.
 * Functions here run inside `withNetns`: synchronous, on a netlink socket of the pod's namespace.
 * @module
 */

import { type Netlink, NetlinkError, type RouteRequest } from "../ffi/netlink.ts";
import { writeSysctl } from "../ffi/netns.ts";
import { CniError, ErrorCode } from "./errors.ts";
import { type CidrBytes, cidrBytes, formatCidr, formatIpBytes, type IpBytes, ipBytes } from "./ip.ts";
import type { Result, ResultRoute } from "./result.ts";

/** The smallest MTU a link can have IPv6 on (RFC 8200). */
const IPV6_MIN_MTU = 1280;

/** How long IPv6 duplicate address detection may take before ADD gives up. */
export const DAD_TIMEOUT_MS = 10_000;

/** IFF_RUNNING (linux/if.h): the kernel sets it while the link is operationally up, clears it without carrier. */
const IFF_RUNNING = 0x40;
/** Scope of a route to a destination on the link (linux/rtnetlink.h RT_SCOPE_LINK). */
const RT_SCOPE_LINK = 253;
/** The main routing table (linux/rtnetlink.h RT_TABLE_MAIN). */
const RT_TABLE_MAIN = 254;
/** EEXIST (asm-generic/errno-base.h). */
const EEXIST = 17;

/**
 * True when a link is operationally up (RFC 2863 "up", or "unknown" for drivers that report no state): the
 * kernel's IFF_RUNNING flag, cleared while the link has no carrier (an InfiniBand port down, no subnet
 * manager, partition not joined; a veth whose peer is down). IPv6 duplicate address detection cannot run
 * until then: the kernel keeps new addresses tentative (net/ipv6/addrconf.c, IF_READY).
 * @param link IFF_* flags as netlink reports them (ifi_flags)
 */
export function isOperUp(link: { flags: number }): boolean {
  return (link.flags & IFF_RUNNING) !== 0;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** What ADD sends for a result: each address and route parsed once, into the bytes netlink takes. */
export interface IpPlan {
  addresses: CidrBytes[];
  routes: Omit<RouteRequest, "index">[];
  hasV6: boolean;
}

function invalid(what: string, text: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `invalid ${what} "${text}"`);
}

function cidrOrThrow(text: string, what: string): CidrBytes {
  return cidrBytes(text) ?? (() => {
    throw invalid(what, text);
  })();
}

/**
 * The gateway a route uses: its own, else the gateway of the first address of its family (as Go plugins
 * do), except for a route of link or host scope (RT_SCOPE_LINK 253, RT_SCOPE_HOST 254: a CNI 1.1.0 route's
 * `scope`): its destination is on the link, and the kernel refuses a gateway on it ("Nexthop has invalid
 * gateway"). containernetworking/plugins' ipam.ConfigureIface (pkg/ipam/ipam_linux.go, 2026) still fills
 * the gateway in whatever the scope and so fails such a route; Debian's 1.1.1 knows no `scope` and adds it
 * with the gateway in universe scope.
 */
function routeGateway(route: ResultRoute, result: Result, family: 4 | 6): string | undefined {
  if (route.gw) return route.gw;
  if (route.scope !== undefined && route.scope >= RT_SCOPE_LINK) return undefined;
  return result.ips.find((ip) => ip.gateway && cidrBytes(ip.address)?.family === family)?.gateway;
}

/**
 * Parses the result's addresses and routes into bytes. Throws CniError InvalidNetworkConfig (7) for an
 * address or route that is not one, or a gateway of another family than its route's destination.
 */
export function planIpConfig(result: Result): IpPlan {
  const addresses = result.ips.map((ip) => cidrOrThrow(ip.address, "CIDR"));
  const routes = result.routes.map((route) => {
    const dst = cidrOrThrow(route.dst, "CIDR");
    const gwText = routeGateway(route, result, dst.family);
    let gw: IpBytes | undefined;
    if (gwText !== undefined) {
      gw = ipBytes(gwText) ?? undefined;
      if (gw === undefined) throw invalid("IP address", gwText);
      if (gw.family !== dst.family) {
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `add route ${route.dst} via ${gwText}: gateway and destination differ in family`,
        );
      }
    }
    return {
      dst,
      gw,
      metric: route.priority,
      table: route.table,
      scope: route.scope,
      mtu: route.mtu,
      advmss: route.advmss,
    };
  });
  return { addresses, routes, hasV6: addresses.some((a) => a.family === 6) };
}

/**
 * Adds the planned addresses and routes to link `index` (named `ifname`, of MTU `mtu`) through `nl`, a
 * socket of the pod's namespace; the JS thread must be in that namespace too (sysctls follow the thread).
 * IPv6 is enabled on the interface when a v6 address comes, and ADD waits for DAD so a duplicate fails
 * ADD instead of the pod.
 *
 * Routes are added as Go's reference plugins add them (`RouteAddEcmp`: NLM_F_CREATE without NLM_F_EXCL):
 * a route to a destination the kernel already routes (the connected route of the subnet, a default route of
 * the pod's primary network) is appended beside it (IPv4) or made an ECMP sibling of it (IPv6), and an
 * identical route (the only case where the kernel still answers EEXIST) is already what was asked for.
 *
 * @param opts.settle wait for DAD; false when the master has no carrier: DAD cannot start before the link
 *   is operationally up, so the addresses stay tentative until the port comes up and waiting only delays
 *   the pod (as containernetworking/plugins PR 1207 stops waiting on a link that is not up)
 */
export function applyIpConfig(
  nl: Netlink,
  link: { index: number; name: string; mtu: number },
  plan: IpPlan,
  opts: { settle?: boolean } = {},
): void {
  const ifname = link.name;
  if (plan.hasV6 && link.mtu < IPV6_MIN_MTU) {
    // The kernel keeps no IPv6 state at all on such a link: its conf/<ifname> sysctls do not even exist.
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `IPv6 needs an MTU of at least ${IPV6_MIN_MTU}; "${ifname}" has ${link.mtu}`,
      "raise mtu in the network configuration or use IPv4 addresses only",
    );
  }
  if (plan.hasV6) {
    try {
      writeSysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, "0");
    } catch (e) {
      throw new CniError(ErrorCode.IoFailure, `cannot enable IPv6 on "${ifname}"`, String(e), { cause: e });
    }
  }
  for (const address of plan.addresses) nl.addAddress(link.index, address, ifname);
  if (plan.hasV6 && opts.settle !== false) waitForDad(nl, link.index, ifname);
  for (const route of plan.routes) addRouteUnlessEqual(nl, { ...route, index: link.index, ifname });
}

/** Adds a route; EEXIST (without NLM_F_EXCL the kernel says it only for an identical route) is success. */
function addRouteUnlessEqual(nl: Netlink, route: RouteRequest): void {
  try {
    nl.addRoute({ ...route, existing: "create" });
  } catch (e) {
    if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
  }
}

function waitForDad(nl: Netlink, index: number, ifname: string): void {
  const deadline = performance.now() + DAD_TIMEOUT_MS;
  while (true) {
    const v6 = nl.listAddresses(index).filter((a) => a.family === 6);
    const failed = v6.find((a) => a.dadFailed);
    if (failed) {
      throw new CniError(
        ErrorCode.KernelFailure,
        `duplicate address detection failed for ${formatCidr(failed.address)} on "${ifname}"`,
        "another node on the network already uses this address",
      );
    }
    if (!v6.some((a) => a.tentative)) return;
    if (performance.now() > deadline) {
      // Carrier lost while waiting: DAD resumes when it returns, as after a prompt ADD on a port that is down.
      if (!isOperUp(nl.getLink(index) ?? { flags: 0 })) return;
      throw new CniError(
        ErrorCode.KernelFailure,
        `IPv6 addresses on "${ifname}" still tentative after ${DAD_TIMEOUT_MS} ms`,
      );
    }
    sleepSync(20);
  }
}

/**
 * Why the addresses and routes of `expected` are not in place, or null when they are. Addresses must be on
 * link `index`; routes are looked for in the whole namespace by destination, table (main when the result
 * names none) and the gateway the result names, as Go's `ip.ValidateExpectedRoute` does: in a chain,
 * `expected` is the whole prevResult and holds routes of earlier plugins through other interfaces, and a
 * route ADD found already present (the connected route, the primary network's default) need not be on ours.
 */
export function checkIpConfig(nl: Netlink, index: number, expected: Result): string | null {
  const have = new Set(nl.listAddresses(index).map((a) => formatCidr(a.address)));
  for (const ip of expected.ips) {
    const want = cidrBytes(ip.address);
    if (want === null || !have.has(formatCidr(want))) return `address ${ip.address} is missing`;
  }
  const routes = nl.listRoutes();
  for (const route of expected.routes) {
    const dst = cidrBytes(route.dst);
    const gw = route.gw === undefined ? undefined : ipBytes(route.gw);
    const table = route.table ?? RT_TABLE_MAIN;
    const found = dst !== null && gw !== null &&
      routes.some((r) =>
        formatCidr(r.dst) === formatCidr(dst) && r.table === table &&
        (gw === undefined || (r.gw !== undefined && formatIpBytes(r.gw) === formatIpBytes(gw)))
      );
    if (!found) return `route to ${route.dst}${route.gw ? ` via ${route.gw}` : ""} is missing`;
  }
  return null;
}
