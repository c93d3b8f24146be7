/**
 * The test stand-in link driver: a macvlan child of a veth master. This machine's kernel has no
 * InfiniBand, so the verbs are exercised on a child kind it can create; the IPoIB request itself is
 * verified at the message level. Like IPoIB, the child is created in the host namespace and then moved.
 * @module
 */

import { IFLA_MACVLAN_MODE, type LinkInfo, MACVLAN_MODES, type Netlink } from "../../ffi/netlink.ts";
import { attrU32 } from "../../ffi/nlattr.ts";
import type { ChildSpec, LinkDriver } from "../../lib/driver.ts";
import { CniError, ErrorCode } from "../../lib/errors.ts";

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
    nl.createMacvlan({ name, parentIndex: master.index, mode: "bridge" });
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
