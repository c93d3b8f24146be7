/**
 * Applying an IPAM result to the interface inside the pod namespace, and checking it is still there.
 * Functions here run inside `withNetns`: synchronous, on a netlink socket of the pod's namespace.
 * @module
 */

import { Netlink } from "../ffi/netlink.ts";
import { writeSysctl } from "../ffi/netns.ts";
import { CniError, ErrorCode } from "./errors.ts";
import { canonicalCidr, canonicalIp, ipFamily } from "./ip.ts";
import type { Result, ResultRoute } from "./result.ts";

/** The smallest MTU a link can have IPv6 on (RFC 8200). */
const IPV6_MIN_MTU = 1280;

/** How long IPv6 duplicate address detection may take before ADD gives up. */
export const DAD_TIMEOUT_MS = 10_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The gateway a route uses: its own, else the gateway of the first address of its family (as Go plugins do). */
function routeGateway(route: ResultRoute, result: Result): string | undefined {
  if (route.gw) return route.gw;
  const family = ipFamily(route.dst);
  return result.ips.find((ip) => ip.gateway && ipFamily(ip.address) === family)?.gateway;
}

/**
 * Adds the result's addresses and routes to `ifname` in the current namespace. IPv6 is enabled on the
 * interface when a v6 address comes, and ADD waits for DAD so a duplicate fails ADD instead of the pod.
 */
export function applyIpConfig(ifname: string, result: Result): void {
  const nl = Netlink.open();
  try {
    const link = nl.getLink(ifname);
    if (link === null) throw new CniError(ErrorCode.KernelFailure, `interface "${ifname}" vanished`);
    const hasV6 = result.ips.some((ip) => ipFamily(ip.address) === 6);
    if (hasV6 && link.mtu < IPV6_MIN_MTU) {
      // The kernel keeps no IPv6 state at all on such a link: its conf/<ifname> sysctls do not even exist.
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `IPv6 needs an MTU of at least ${IPV6_MIN_MTU}; "${ifname}" has ${link.mtu}`,
        "raise mtu in the network configuration or use IPv4 addresses only",
      );
    }
    if (hasV6) {
      try {
        writeSysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, "0");
      } catch (e) {
        throw new CniError(ErrorCode.IoFailure, `cannot enable IPv6 on "${ifname}"`, String(e), { cause: e });
      }
    }
    for (const ip of result.ips) nl.addAddress(link.index, ip.address);
    if (hasV6) waitForDad(nl, link.index, ifname);
    for (const route of result.routes) {
      nl.addRoute({
        dst: route.dst,
        gw: routeGateway(route, result),
        index: link.index,
        metric: route.priority,
        table: route.table,
        scope: route.scope,
        mtu: route.mtu,
        advmss: route.advmss,
      });
    }
  } finally {
    nl.close();
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
        `duplicate address detection failed for ${failed.address} on "${ifname}"`,
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
  const have = new Set(nl.listAddresses(index).map((a) => canonicalCidr(a.address)));
  for (const ip of expected.ips) {
    if (!have.has(canonicalCidr(ip.address))) return `address ${ip.address} is missing`;
  }
  const routes = nl.listRoutes({ index });
  for (const route of expected.routes) {
    const dst = canonicalCidr(route.dst);
    const gw = routeGateway(route, expected);
    const table = route.table ?? 254;
    const found = routes.some((r) =>
      canonicalCidr(r.dst) === dst && r.table === table &&
      (gw === undefined || (r.gw !== undefined && canonicalIp(r.gw) === canonicalIp(gw)))
    );
    if (!found) return `route to ${route.dst}${gw ? ` via ${gw}` : ""} is missing`;
  }
  return null;
}
