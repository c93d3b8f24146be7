/**
 * The test stand-in link driver: a macvlan child of a veth master. This machine's kernel has no
 * InfiniBand, so the verbs are exercised on a child kind it can create; the IPoIB request itself is
 * verified at the message level. Like IPoIB, the child is created in the host namespace and then moved,
 * through the same Netlink.createLink.
 * @module
 */

import type { LinkInfo, LinkRequest, Netlink } from "../../ffi/netlink.ts";
import { type Attributes, fixedAttr, HOST_LITTLE_ENDIAN } from "../../ffi/nlattr.ts";
import type { ChildSpec, LinkDriver } from "../../lib/driver.ts";
import { CniError, ErrorCode } from "../../lib/errors.ts";

/** IFLA_MACVLAN_MODE of if_link.h (u32, in IFLA_INFO_DATA): one of {@link MACVLAN_MODES}. */
export const IFLA_MACVLAN_MODE = 1;

/** Macvlan modes by name (MACVLAN_MODE_* of if_link.h). */
export const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;

/** A macvlan mode name. */
export type MacvlanMode = keyof typeof MACVLAN_MODES;

/** A u32 attribute's value; null when absent or not 4 bytes long. */
export function attrU32(attrs: Attributes, type: number): number | null {
  return fixedAttr(attrs, type, 4)?.getUint32(0, HOST_LITTLE_ENDIAN) ?? null;
}

/** The RTM_NEWLINK of a macvlan child of `parentIndex` in `mode` (IFLA_MACVLAN_MODE, u32). */
export function macvlanLinkRequest(name: string, parentIndex: number, mode: MacvlanMode): LinkRequest {
  return {
    name,
    parentIndex,
    kind: "macvlan",
    data: [{ type: IFLA_MACVLAN_MODE, u32: MACVLAN_MODES[mode] }],
  };
}

/** Creates macvlan (bridge mode) children of a veth master. */
export const standinDriver: LinkDriver = {
  masterKind: "a veth interface (test stand-in for IPoIB)",

  inspectMaster(master: LinkInfo): ChildSpec {
    if (master.kind !== "veth") {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `master "${master.name}" is not a veth interface (test stand-in for IPoIB)`,
        `it is ${master.kind ? `a ${master.kind} link` : "a device"} with ARP type ${master.arpType}`,
      );
    }
    return {};
  },

  createChild(nl: Netlink, name: string, master: LinkInfo): void {
    nl.createLink(macvlanLinkRequest(name, master.index, "bridge"));
  },

  isChildOf(link: LinkInfo, master: LinkInfo): boolean {
    return link.kind === "macvlan" && link.parentIndex === master.index;
  },

  childProblem(nl: Netlink, link: LinkInfo, master: LinkInfo): string | null {
    if (link.kind !== "macvlan") {
      return `is ${link.kind ? `a ${link.kind} link` : "not a typed link"}, not a macvlan child`;
    }
    if (link.parentIndex !== master.index) return `is not a child of master "${master.name}"`;
    // Read the way the IPoIB driver reads pkey, mode and umcast: raw IFLA_INFO_DATA from the kernel.
    const info = nl.getLinkInfoData(link.index);
    if (info === null) return "disappeared while being checked";
    const mode = attrU32(info.data, IFLA_MACVLAN_MODE);
    if (mode !== MACVLAN_MODES.bridge) {
      const name = Object.entries(MACVLAN_MODES).find(([, v]) => v === mode)?.[0] ?? String(mode);
      return `is in macvlan mode ${name}, expected bridge`;
    }
    return null;
  },
};
