/**
 * The IPoIB link driver: the master must be an IPoIB interface; the child gets the configured partition
 * key or the parent's, the parent's mode, and user-space multicast on.
 * @module
 */

import type { LinkInfo, Netlink } from "../ffi/netlink.ts";
import { readSysfsNet } from "../ffi/netns.ts";
import type { NetConf } from "./config.ts";
import type { ChildSpec, LinkDriver } from "./driver.ts";
import { CniError, ErrorCode } from "./errors.ts";

/** ARPHRD_INFINIBAND from if_arp.h: the hardware type of every IPoIB interface. */
export const ARPHRD_INFINIBAND = 32;

/** The full-membership bit of a partition key; the kernel sets it on every child it creates. */
const FULL_MEMBERSHIP = 0x8000;

/** True when `link` is an IPoIB interface. */
export function isIpoib(link: LinkInfo): boolean {
  return link.kind === "ipoib" || link.arpType === ARPHRD_INFINIBAND;
}

/** Parses the parent's sysfs `pkey` ("0x8001") into a key without the membership bit. */
export function parsePkey(text: string): number | null {
  const m = text.trim().match(/^0x([0-9a-f]{1,4})$/i);
  if (!m) return null;
  const key = Number.parseInt(m[1]!, 16) & 0x7fff;
  return key === 0 ? null : key;
}

/** Parses the parent's sysfs `mode` ("datagram" or "connected") into IFLA_IPOIB_MODE's value. */
export function parseMode(text: string): 0 | 1 | null {
  const mode = text.trim();
  return mode === "datagram" ? 0 : mode === "connected" ? 1 : null;
}

function sysfsValue<T>(master: LinkInfo, attr: string, parse: (text: string) => T | null): T {
  const text = readSysfsNet(master.name, attr);
  const value = text === null ? null : parse(text);
  if (value === null) {
    throw new CniError(
      ErrorCode.IoFailure,
      `cannot read the ${attr} of master "${master.name}"`,
      `/sys/class/net/${master.name}/${attr} ${text === null ? "is missing" : `holds "${text.trim()}"`}`,
    );
  }
  return value;
}

/** Creates IPoIB children of an IPoIB master. */
export const ipoibDriver: LinkDriver = {
  masterKind: "an IPoIB interface (ARP type 32)",

  inspectMaster(master: LinkInfo, conf: NetConf): ChildSpec {
    if (!isIpoib(master)) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `master "${master.name}" is not an IPoIB interface`,
        `it is ${master.kind ? `a ${master.kind} link` : "a device"} with ARP type ${master.arpType}; ` +
          `IPoIB interfaces have ARP type ${ARPHRD_INFINIBAND}`,
      );
    }
    if (master.parentIndex !== 0 && master.parentIndex !== master.index) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `master "${master.name}" is itself an IPoIB child interface`,
        "the kernel does not create a child of a child: use its parent as master",
      );
    }
    return {
      pkey: conf.pkey ?? sysfsValue(master, "pkey", parsePkey),
      mode: sysfsValue(master, "mode", parseMode),
      umcast: true,
    };
  },

  createChild(nl: Netlink, name: string, master: LinkInfo, spec: ChildSpec): void {
    nl.createIpoibChild({
      name,
      parentIndex: master.index,
      // Sent as an operator writes it (0x8001); the kernel sets this bit on the child either way.
      pkey: spec.pkey === undefined ? undefined : spec.pkey | FULL_MEMBERSHIP,
      mode: spec.mode,
      umcast: spec.umcast,
    });
  },

  childProblem(_nl: Netlink, link: LinkInfo, master: LinkInfo, _spec: ChildSpec): string | null {
    if (link.kind !== "ipoib") {
      return `is ${link.kind ? `a ${link.kind} link` : "not a typed link"}, not an IPoIB child`;
    }
    if (link.parentIndex !== master.index) return `is not a child of master "${master.name}"`;
    return null;
  },
};
