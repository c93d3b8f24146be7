/**
 * The link driver: what is specific to one child link kind behind a small interface, so the same verbs
 * run on IPoIB (lib/ipoib.ts) and on a stand-in child kind in tests (tests/standin/driver.ts). ADD asks it
 * to check the master and derive the child's settings (`inspectMaster`) and to create the child
 * (`createChild`); DEL asks it to recognise an unmarked child (`isChildOf`); CHECK asks it whether the
 * pod's link still is the child the config describes (`childProblem`).
 * @module
 */

import type { LinkInfo, Netlink } from "../ffi/netlink.ts";
import type { NetConf } from "./config.ts";

/** The settings a child link is created with. */
export interface ChildSpec {
  /** Partition key without the membership bit, when the child kind has one. */
  pkey?: number;
  /** 0 datagram, 1 connected, when the child kind has one. */
  mode?: 0 | 1;
  /** Whether user-space multicast is allowed on the child. */
  umcast?: boolean;
}

/** What the verbs need from a child link kind. */
export interface LinkDriver {
  /** What the master must be, for messages: "an IPoIB interface". */
  readonly masterKind: string;
  /**
   * Checks that `master` (looked up in the host namespace) can parent a child and derives the child's
   * settings from it and the config. Throws a CniError that names the master and what it is.
   */
  inspectMaster(master: LinkInfo, conf: NetConf): ChildSpec;
  /** Creates a child of `master` named `name` in the current namespace. */
  createChild(nl: Netlink, name: string, master: LinkInfo, spec: ChildSpec): void;
  /**
   * True when `link` is of this driver's child kind with `master` as its parent (IFLA_LINK): how DEL
   * recognises a child made before children carried their mark (lib/mark.ts). Seen from the pod, a
   * child's IFLA_LINK still gives the parent's index in the host namespace.
   */
  isChildOf(link: LinkInfo, master: LinkInfo): boolean;
  /** Why `link`, seen from the pod namespace, is not a child of `master` with `spec`, or null when it is. */
  childProblem(nl: Netlink, link: LinkInfo, master: LinkInfo, spec: ChildSpec): string | null;
}
