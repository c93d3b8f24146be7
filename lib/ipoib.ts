/**
 * The IPoIB link driver: the master must be an IPoIB interface; the child gets the configured partition
 * key or the parent's, the parent's mode, and user-space multicast on.
 * @module
 */

import type { LinkDataAttribute, LinkInfo, LinkRequest, Netlink } from "../ffi/netlink.ts";
import { readSysfsNet } from "../ffi/netns.ts";
import { type Attributes, attrU16 } from "../ffi/nlattr.ts";
import type { NetConf } from "./config.ts";
import type { ChildSpec, LinkDriver } from "./driver.ts";
import { CniError, ErrorCode } from "./errors.ts";

/** ARPHRD_INFINIBAND from if_arp.h: the hardware type of every IPoIB interface. */
const ARPHRD_INFINIBAND = 32;

/** IFLA_IPOIB_PKEY of if_link.h (u16, in IFLA_INFO_DATA): the partition key. */
export const IFLA_IPOIB_PKEY = 1;
/** IFLA_IPOIB_MODE (u16): 0 datagram, 1 connected. */
export const IFLA_IPOIB_MODE = 2;
/** IFLA_IPOIB_UMCAST (u16): 1 when user-space multicast is allowed. */
export const IFLA_IPOIB_UMCAST = 3;

/** The full-membership bit of a partition key; the kernel sets it on every child it creates. */
const FULL_MEMBERSHIP = 0x8000;

const hex16 = (n: number) => `0x${n.toString(16).padStart(4, "0")}`;
const modeName = (m: number) => (m === 0 ? "datagram" : m === 1 ? "connected" : `unknown (${m})`);

/**
 * Why the IFLA_INFO_DATA attributes of an IPoIB link (as the kernel's ipoib_fill_info reports them)
 * do not match `spec`, or null when they do. Partition keys compare without the full-membership bit,
 * which the kernel sets on every child; a setting `spec` leaves open is not compared.
 */
export function ipoibSettingsProblem(data: Attributes, spec: ChildSpec): string | null {
  const missing = (what: string, type: number) =>
    `reports no ${what} (IFLA_INFO_DATA holds no u16 attribute ${type})`;
  if (spec.pkey !== undefined) {
    const pkey = attrU16(data, IFLA_IPOIB_PKEY);
    if (pkey === null) return missing("partition key", IFLA_IPOIB_PKEY);
    if ((pkey & 0x7fff) !== (spec.pkey & 0x7fff)) {
      return `has partition key ${hex16(pkey)}, expected ${hex16(spec.pkey | FULL_MEMBERSHIP)}`;
    }
  }
  if (spec.mode !== undefined) {
    const mode = attrU16(data, IFLA_IPOIB_MODE);
    if (mode === null) return missing("IPoIB mode", IFLA_IPOIB_MODE);
    if (mode !== spec.mode) return `is in ${modeName(mode)} mode, expected ${modeName(spec.mode)}`;
  }
  if (spec.umcast !== undefined) {
    const umcast = attrU16(data, IFLA_IPOIB_UMCAST);
    if (umcast === null) return missing("user-space multicast setting", IFLA_IPOIB_UMCAST);
    if ((umcast !== 0) !== spec.umcast) {
      return `has user-space multicast ${umcast ? "on" : "off"}, expected ${spec.umcast ? "on" : "off"}`;
    }
  }
  return null;
}

/**
 * The RTM_NEWLINK of an IPoIB child of `parentIndex`, each setting sent as given (as iproute2's
 * `ip link add name N link P type ipoib pkey K mode M umcast U` sends it, all u16); a setting left
 * out leaves the kernel's default (the parent's pkey, mode and umcast). No IFLA_INFO_DATA when none
 * is given. Source: the kernel's ipoib_netlink.c (ipoib_policy).
 */
export function ipoibLinkRequest(
  name: string,
  parentIndex: number,
  settings: { pkey?: number; mode?: 0 | 1; umcast?: boolean },
): LinkRequest {
  const data: LinkDataAttribute[] = [];
  if (settings.pkey !== undefined) data.push({ type: IFLA_IPOIB_PKEY, u16: settings.pkey });
  if (settings.mode !== undefined) data.push({ type: IFLA_IPOIB_MODE, u16: settings.mode });
  if (settings.umcast !== undefined) data.push({ type: IFLA_IPOIB_UMCAST, u16: settings.umcast ? 1 : 0 });
  return { name, parentIndex, kind: "ipoib", data };
}

/** True when `link` is an IPoIB interface. */
function isIpoib(link: LinkInfo): boolean {
  return link.kind === "ipoib" || link.arpType === ARPHRD_INFINIBAND;
}

/** Parses the parent's sysfs `pkey` ("0x8001") into a key without the membership bit. */
function parsePkey(text: string): number | null {
  const m = text.trim().match(/^0x([0-9a-f]{1,4})$/i);
  if (!m) return null;
  const key = Number.parseInt(m[1]!, 16) & 0x7fff;
  return key === 0 ? null : key;
}

/** Parses the parent's sysfs `mode` ("datagram" or "connected") into IFLA_IPOIB_MODE's value. */
function parseMode(text: string): 0 | 1 | null {
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
    nl.createLink(ipoibLinkRequest(name, master.index, {
      // Sent as an operator writes it (0x8001); the kernel sets this bit on the child either way.
      pkey: spec.pkey === undefined ? undefined : spec.pkey | FULL_MEMBERSHIP,
      mode: spec.mode,
      umcast: spec.umcast,
    }));
  },

  isChildOf(link: LinkInfo, master: LinkInfo): boolean {
    return link.kind === "ipoib" && link.parentIndex === master.index;
  },

  childProblem(nl: Netlink, link: LinkInfo, master: LinkInfo, spec: ChildSpec): string | null {
    if (link.kind !== "ipoib") {
      return `is ${link.kind ? `a ${link.kind} link` : "not a typed link"}, not an IPoIB child`;
    }
    if (link.parentIndex !== master.index) return `is not a child of master "${master.name}"`;
    // LinkInfo has no IPoIB settings (libnl drops them) and sysfs shows the host's namespace, not
    // the pod's: read them from the kernel's own report of the link.
    const info = nl.getLinkInfoData(link.index);
    if (info === null) return "disappeared while being checked";
    return ipoibSettingsProblem(info.data, spec);
  },
};
