/**
 * Applying an IPAM result to the interface inside the pod namespace, and checking it is still there.
 * Functions here run inside `withNetns`: synchronous, on a netlink socket of the pod's namespace.
 * @module
 */

import type { Netlink, RouteRequest } from "../ffi/netlink.ts";
import { writeSysctl } from "../ffi/netns.ts";
import { CniError, ErrorCode } from "./errors.ts";
import { type CidrBytes, cidrBytes, formatCidr, formatIpBytes, type IpBytes, ipBytes } from "./ip.ts";
import type { Result, ResultRoute } from "./result.ts";

/** The smallest MTU a link can have IPv6 on (RFC 8200). */
const IPV6_MIN_MTU = 1280;

/** How long IPv6 duplicate address detection may take before ADD gives up. */
export const DAD_TIMEOUT_MS = 10_000;

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

/** The gateway a route uses: its own, else the gateway of the first address of its family (as Go plugins do). */
function routeGateway(route: ResultRoute, result: Result, family: 4 | 6): string | undefined {
  if (route.gw) return route.gw;
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
 */
export function applyIpConfig(
  nl: Netlink,
  link: { index: number; name: string; mtu: number },
  plan: IpPlan,
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
  for (const address of plan.addresses) nl.addAddress(link.index, address);
  if (plan.hasV6) waitForDad(nl, link.index, ifname);
  for (const route of plan.routes) nl.addRoute({ ...route, index: link.index });
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
      throw new CniError(
        ErrorCode.KernelFailure,
        `IPv6 addresses on "${ifname}" still tentative after ${DAD_TIMEOUT_MS} ms`,
      );
    }
    sleepSync(20);
  }
}

/** Why the addresses and routes of `expected` are not all on link `index`, or null when they are. */
export function checkIpConfig(nl: Netlink, index: number, expected: Result): string | null {
  const have = new Set(nl.listAddresses(index).map((a) => formatCidr(a.address)));
  for (const ip of expected.ips) {
    const want = cidrBytes(ip.address);
    if (want === null || !have.has(formatCidr(want))) return `address ${ip.address} is missing`;
  }
  const routes = nl.listRoutes({ index });
  for (const route of expected.routes) {
    const dst = cidrBytes(route.dst);
    const gwText = dst === null ? undefined : routeGateway(route, expected, dst.family);
    const gw = gwText === undefined ? undefined : ipBytes(gwText);
    const table = route.table ?? 254;
    const found = dst !== null && gw !== null &&
      routes.some((r) =>
        formatCidr(r.dst) === formatCidr(dst) && r.table === table &&
        (gw === undefined || (r.gw !== undefined && formatIpBytes(r.gw) === formatIpBytes(gw)))
      );
    if (!found) return `route to ${route.dst}${gwText ? ` via ${gwText}` : ""} is missing`;
  }
  return null;
}
