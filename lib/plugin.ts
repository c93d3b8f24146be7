/**
 * The plugin's verbs: ADD, DEL, CHECK, GC and STATUS. Each reads top to bottom as the steps it performs;
 * the cleanup of a step sits next to it, so a failure at any point leaves no link and no IPAM lease.
 * @module
 */

import { Errno, openErrno } from "../ffi/libc.ts";
import { AttachmentLock } from "../ffi/lock.ts";
import { type LinkInfo, Netlink, NetlinkError } from "../ffi/netlink.ts";
import { hostNetnsId, Netns, NetnsError, type NetnsId, sameNetns, writeSysctl } from "../ffi/netns.ts";
import {
  type NetConf,
  parseDelConf,
  parseNetConf,
  parseValidAttachments,
  type ValidAttachment,
} from "./config.ts";
import type { ChildSpec, LinkDriver } from "./driver.ts";
import {
  type CniEnv,
  DELEGATOR_VARIABLE,
  NESTED_RUN_REFUSED,
  requireCniPath,
  unusableIfnameProblem,
} from "./env.ts";
import { CniError, ErrorCode } from "./errors.ts";
import { Ipam, IpamNotFound } from "./ipam.ts";
import { Logger } from "./log.ts";
import { attachmentMark, type MarkFields, markFields, parseMark } from "./mark.ts";
import { readRefusal, recordRefusal, type Refusal, removeRefusal, removeStaleRefusals } from "./refusal.ts";
import { formatResult, limitToVersion, mergePrevResult, parseResult, type Result } from "./result.ts";
import { applyIpConfig, checkIpConfig, isOperUp, planIpConfig } from "./ipconfig.ts";
import { temporaryName } from "./temporary_name.ts";
import { requireVersion } from "./version.ts";

/** Everything one verb needs from the invocation. */
export interface Invocation {
  env: CniEnv;
  environ: Record<string, string>;
  /** The config as the runtime sent it: given to the IPAM plugin unchanged. */
  stdin: Uint8Array;
  /** The config decoded from `stdin`. */
  decoded: unknown;
  loadDriver: () => Promise<LinkDriver>;
}

interface Context {
  env: CniEnv;
  conf: NetConf;
  driver: LinkDriver;
  log: Logger;
  ipam: Ipam | null;
  /** The mark (alias) of this attachment's child (lib/mark.ts); "" for GC and STATUS, which have none. */
  mark: string;
  /** This attachment's fields as a mark holds them; null for GC and STATUS. */
  attachment: MarkFields | null;
  /**
   * The IPAM plugin run for another attachment of this network (GC releasing the lease of a child it
   * deleted): CNI_CONTAINERID and CNI_IFNAME as given, CNI_NETNS empty, inheriting `lockFd`. Null without IPAM.
   */
  ipamFor: (containerId: string, ifname: string, lockFd: number) => Ipam | null;
  /** GC: `cni.dev/valid-attachments` of the config, null when the runtime sent none. */
  validAttachments: ValidAttachment[] | null;
  /** DEL: the record of a refused ADD of this attachment (lib/refusal.ts), null when none. */
  refusal: Refusal | null;
}

/** The basename of the running executable, which `ipam.type` must not name; undefined when unknown. */
function executableName(): string | undefined {
  try {
    return Deno.execPath().split("/").at(-1);
  } catch {
    return undefined;
  }
}

/** Decodes the config, sets up the log, and runs the verb; returns what to print (null for nothing). */
export async function runVerb(inv: Invocation): Promise<unknown> {
  const { env } = inv;
  // DEL must be able to finish: it reads only what it needs and reports what it went without.
  const { conf, ignored } = env.command === "DEL"
    ? parseDelConf(inv.decoded, executableName())
    : { conf: parseNetConf(inv.decoded, executableName()), ignored: [] };
  const log = new Logger(
    conf.logFile,
    conf.logLevel,
    `${env.command} container=${env.containerId || "-"} netns=${env.netns || "-"} ifname=${
      env.ifname || "-"
    }`,
    conf.logMaxSize,
  );
  const start = performance.now();
  log.info(`start: network "${conf.name}", cniVersion ${conf.cniVersion}, master ${conf.master}`);
  log.debug(`config: ${new TextDecoder().decode(inv.stdin).trim()}`);
  for (const what of ignored) log.report(`DEL goes on without: ${what}`);
  if (conf.ipamType === null) {
    log.info("no IPAM plugin runs: ipam.type is not set; layer 2 only, no addresses");
  }
  const unusable = env.command === "DEL" ? unusableIfnameProblem(env.ifname) : null;
  if (unusable !== null) {
    // ADD and every IPAM plugin built on Go's skel refuse such a name: no link, no lease can carry it.
    log.info(`DEL: CNI_IFNAME ${JSON.stringify(env.ifname)} ${unusable}; nothing of ours can exist`);
    return null;
  }
  let lock: AttachmentLock | null = null;
  try {
    if (conf.ipamType !== null) requireCniPath(env, conf.ipamType);
    // One ADD, DEL or CHECK of an attachment at a time, and none while the IPAM plugin of a killed one runs.
    lock = await lockAttachment(env, conf, log);
    const driver = await inv.loadDriver();
    // The IPAM child learns that this plugin started it: should ipam.type lead back here under any name (a
    // wrapper, a symlink), that run refuses at once (lib/env.ts, refuseNestedRun) instead of recursing.
    const ipamWith = (vars: Record<string, string>, lockFd: number | null) =>
      conf.ipamType === null ? null : new Ipam(
        conf.ipamType,
        env.path,
        { ...inv.environ, ...vars, [DELEGATOR_VARIABLE]: String(Deno.pid) },
        inv.stdin,
        conf.ipamTimeoutSeconds,
        log,
        { inheritFds: lockFd === null ? [] : [lockFd] },
      );
    const ipam = ipamWith({}, lock?.fd ?? null);
    const ctx: Context = {
      env,
      conf,
      driver,
      log,
      ipam,
      mark: env.containerId === "" ? "" : await attachmentMark(conf.name, env.containerId, env.ifname),
      attachment: env.containerId === "" ? null : await markFields(conf.name, env.containerId, env.ifname),
      ipamFor: (containerId, ifname, lockFd) =>
        ipamWith({ CNI_CONTAINERID: containerId, CNI_IFNAME: ifname, CNI_NETNS: "" }, lockFd),
      validAttachments: env.command === "GC" ? parseValidAttachments(inv.decoded) : null,
      refusal: null,
    };
    const verbs = { ADD: cmdAdd, DEL: cmdDel, CHECK: cmdCheck, GC: cmdGc, STATUS: cmdStatus } as const;
    const output = await verbs[env.command as keyof typeof verbs](ctx);
    lock?.release();
    lock = null;
    log.info(`${env.command}: done (${(performance.now() - start).toFixed(1)} ms)`);
    return output;
  } catch (e) {
    lock?.release();
    log.error(`${env.command}: failed (${(performance.now() - start).toFixed(1)} ms)`, e);
    throw e;
  }
}

/**
 * The lock of the attachment for ADD, DEL and CHECK (ffi/lock.ts), waited for at most the IPAM time limit;
 * DEL, which must be able to finish, then kills whatever still holds it. Null for the verbs that concern
 * the whole network.
 */
function lockAttachment(env: CniEnv, conf: NetConf, log: Logger): Promise<AttachmentLock> | null {
  if (!["ADD", "DEL", "CHECK"].includes(env.command)) return null;
  return AttachmentLock.acquire(env.containerId, env.ifname, conf.ipamTimeoutSeconds * 1000, {
    killHolders: env.command === "DEL",
    onKilled: (pids) =>
      log.info(`lock: killed ${pids.join(", ")}, still holding it after ${conf.ipamTimeoutSeconds} s`),
  });
}

/** The master link from the host namespace, checked by the driver; throws when missing or unusable. */
function lookupMaster(host: Netlink, ctx: Context) {
  const master = host.getLink(ctx.conf.master);
  if (master === null) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `master "${ctx.conf.master}" not found`,
      `no such interface in the host network namespace; it must be ${ctx.driver.masterKind}`,
    );
  }
  const spec = ctx.driver.inspectMaster(master, ctx.conf);
  return { master, spec };
}

/**
 * STATUS reports a master that is administratively down as code 50 (plugin not available): pods attached
 * now get an interface without carrier. ADD does not refuse it (Go's macvlan attaches such pods too).
 */
function requireMasterUp(master: { name: string; up: boolean }): void {
  if (!master.up) {
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `master "${master.name}" is down`,
      `bring it up (ip link set ${master.name} up) before attaching pods`,
    );
  }
}

/** The child's MTU: the configured one, else the master's; never above the master's. */
function childMtu(conf: NetConf, master: LinkInfo): number {
  const mtu = conf.mtu ?? master.mtu;
  if (mtu > master.mtu) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `mtu ${mtu} exceeds the MTU ${master.mtu} of master "${master.name}"`,
    );
  }
  return mtu;
}

/**
 * Opens CNI_NETNS for ADD and CHECK, refusing the plugin's own (host) namespace, whatever path names it
 * (a bind mount of /proc/self/ns/net under /run/netns, /proc/<host pid>/ns/net): configuring the host as a
 * pod would add addresses and routes to the host's main table. Compared by identity, not path text.
 * @throws NetnsError (code 8) when the path is no network namespace; CniError code 8 when it is the host's.
 */
function openPodNetns(path: string): Netns {
  const pod = Netns.open(path);
  if (sameNetns(pod.id(), hostNetnsId())) {
    pod[Symbol.dispose]();
    throw new CniError(
      ErrorCode.InvalidNetns,
      `network namespace ${path} is the host's own network namespace`,
      "CNI_NETNS must name the container's network namespace; the plugin runs in the host's",
    );
  }
  return pod;
}

/**
 * True when `alias` is a mark of this attachment (container id and ifname), whatever network name it
 * carries: a pod cannot hold two attachments of one ifname, and a network renamed since ADD must not
 * leave its child behind at DEL.
 */
function marksThisAttachment(alias: string | null, ctx: Context): boolean {
  const mark = parseMark(alias);
  return mark !== null && ctx.attachment !== null && mark.containerId === ctx.attachment.containerId &&
    mark.ifname === ctx.attachment.ifname;
}

/**
 * True when `link`, in namespace `netns` (the `where` one), carries this attachment's mark as DEL sees it.
 * This network's exact mark always does: a refused ADD never records a link that carries it. Any network's
 * mark of this container id and ifname does too ({@link marksThisAttachment}: a network renamed since ADD),
 * except on the link a refused ADD of this attachment recorded in the pod, and in the host while such a
 * record exists: a child returned there may then be the other network's that the refused ADD found, and
 * nothing there tells which.
 */
function carriesOurMark(link: LinkInfo, ctx: Context, where: "host" | "pod", netns: NetnsId): boolean {
  if (link.alias !== null && link.alias === ctx.mark) return true;
  if (where === "pod" ? refusedLink(link, ctx, netns) : ctx.refusal !== null) return false;
  return marksThisAttachment(link.alias, ctx);
}

/** True when `link`, in namespace `netns`, is the one a refused ADD of this attachment found (lib/refusal.ts). */
function refusedLink(link: LinkInfo, ctx: Context, netns: NetnsId): boolean {
  return ctx.refusal !== null && link.index === ctx.refusal.ifindex && sameNetns(ctx.refusal.netns, netns);
}

/**
 * True when `link`, found by name in namespace `netns`, is this attachment's child. The link a refused ADD
 * recorded is another's, whatever it looks like. Otherwise the mark makes a link ours; so does, in the pod,
 * being of the driver's kind with `master` as parent and no mark of this plugin at all (something in the
 * pod overwrote the alias: another plugin's link of that kind under CNI_IFNAME made our ADD refuse and
 * record it). In the host, where only the temporary name is looked up, an unmarked link of the driver's
 * kind with `master` as parent is ours: an ADD killed between create and mark. `master` is null when DEL
 * could not look it up (then only the mark counts).
 */
function isOurChild(
  link: LinkInfo,
  ctx: Context,
  master: LinkInfo | null,
  where: "host" | "pod",
  netns: NetnsId,
): boolean {
  if (carriesOurMark(link, ctx, where, netns)) return true;
  if (where === "pod" && refusedLink(link, ctx, netns)) return false;
  if (master === null || !ctx.driver.isChildOf(link, master)) return false;
  return where === "host" ? !link.alias : parseMark(link.alias) === null;
}

/** Describes a link for the log: name, kind and mark. */
function describeLink(link: LinkInfo): string {
  return `${link.name} (${link.kind ?? "no kind"}, index ${link.index}, alias ${JSON.stringify(link.alias)})`;
}

/**
 * Deletes the link `name` in the socket's namespace when it is this attachment's child ({@link isOurChild});
 * a link of that name that is not ours stays, and is logged. True when one was deleted.
 */
function deleteOurLinkNamed(
  nl: Netlink,
  name: string,
  ctx: Context,
  master: LinkInfo | null,
  where: "host" | "pod",
  netns: NetnsId,
): boolean {
  const link = nl.getLink(name);
  if (link === null) return false;
  if (!isOurChild(link, ctx, master, where, netns)) {
    ctx.log.info(`left ${describeLink(link)} in the ${where}: not a child this attachment made`);
    return false;
  }
  deleteLinkGone(nl, link.index);
  return true;
}

/** Deletes link `index`; one that is gone already (ENODEV: deleted meanwhile, or its namespace died) is done. */
function deleteLinkGone(nl: Netlink, index: number): void {
  try {
    nl.deleteLink(index);
  } catch (e) {
    if (!(e instanceof NetlinkError && e.errno === Errno.ENODEV)) throw e;
  }
}

/** Finds the link `name` that a step has just made or moved; its absence is a kernel failure. */
function requireLink(nl: Netlink, name: string, what: string): LinkInfo {
  const link = nl.getLink(name);
  if (link === null) throw new CniError(ErrorCode.KernelFailure, `link ${name} vanished after ${what}`);
  return link;
}

/**
 * Defers `fn` on `undo` as a logged cleanup step that never throws: a cleanup that fails is logged, and
 * the runtime sees the failure that started the rollback, not the cleanup's.
 */
function deferCleanup(undo: AsyncDisposableStack, log: Logger, what: string, fn: () => unknown): void {
  undo.defer(async () => {
    try {
      await log.stepAsync(`cleanup: ${what}`, async () => await fn());
    } catch { /* logged by stepAsync */ }
  });
}

/**
 * Defers deleting link `index` through `nl` (a socket of the `where` namespace) if it is still there
 * then, under whatever name it has by then: a link that has moved on, or is gone, is not this undo's.
 * Never throws, as {@link deferCleanup}.
 */
function deferDeleteLink(
  undo: AsyncDisposableStack,
  log: Logger,
  nl: Netlink,
  index: number,
  where: "host" | "pod",
): void {
  undo.defer(() => {
    try {
      const link = nl.getLink(index);
      if (link !== null) {
        log.step(`cleanup: delete link ${link.name} in the ${where}`, () => nl.deleteLink(index));
      }
    } catch { /* logged by step, or a lookup failure nothing can act on */ }
  });
}

/**
 * Fails when CNI_NETNS no longer names the namespace the child was moved into: the runtime removed the
 * sandbox while ADD ran (the open namespace kept it alive until now).
 */
function requireSameNetns(pod: Netns, path: string): void {
  let now: Netns;
  try {
    now = Netns.open(path);
  } catch (e) {
    if (!(e instanceof NetnsError)) throw e;
    throw new CniError(
      ErrorCode.InvalidNetns,
      `network namespace ${path} was removed during ADD`,
      e.message,
      {
        cause: e,
      },
    );
  }
  using _ = now;
  if (!sameNetns(now.id(), pod.id())) {
    throw new CniError(ErrorCode.InvalidNetns, `network namespace ${path} was replaced during ADD`);
  }
}

async function cmdAdd(ctx: Context): Promise<unknown> {
  const { env, conf, driver, log, ipam } = ctx;
  // Chained after other plugins: their result is passed through with ours appended (CNI spec, chaining).
  const prev = conf.prevResult === undefined
    ? null
    : parseResult({ cniVersion: conf.cniVersion, ...conf.prevResult }, "prevResult");
  using pod = log.step("open netns", () => openPodNetns(env.netns));
  using host = Netlink.open();
  using podNl = pod.run(() => Netlink.open());
  const { master, spec } = log.step("inspect master", () => lookupMaster(host, ctx));
  if (!master.up) {
    // As Go's macvlan does: the pod gets its interface and addresses now, without carrier until the master
    // comes up (STATUS reports the master as code 50 meanwhile).
    log.info(`master "${master.name}" is down: the child has no carrier until it is brought up`);
  }
  const mtu = childMtu(conf, master);
  await using undo = new AsyncDisposableStack();

  // Created under a temporary name in the host namespace, then moved: CNI_IFNAME may exist on the host.
  const tmpName = await temporaryName(env.containerId, env.ifname);
  // Refused before anything is made; the link found is recorded, so that the DEL that follows leaves it.
  const taken = podNl.getLink(env.ifname);
  if (taken !== null) throw await ifnameTaken(ctx, pod, taken);
  await forgetRefusal(ctx); // CNI_IFNAME is free now: a record of an earlier refusal names nothing of this ADD
  if (deleteOurLinkNamed(host, tmpName, ctx, master, "host", hostNetnsId())) {
    log.info(`removed ${tmpName}, left in the host by an interrupted ADD`);
  }
  const created = log.step(`create child ${tmpName}`, () => {
    driver.createChild(host, tmpName, master, spec);
    return requireLink(host, tmpName, "create");
  });
  deferDeleteLink(undo, log, host, created.index, "host");
  // Marked before the move, so that wherever the kernel puts it later (an IPoIB child returns to the host
  // when the pod's namespace dies), DEL and GC know it; the kernel ignores an alias in a create request.
  log.step("mark child", () => host.setLink(created.index, { alias: ctx.mark }));

  log.step("move to netns", () => host.moveToNetns(created.index, pod.fd));
  const child = requireLink(podNl, tmpName, "move"); // its index may differ in the pod
  deferDeleteLink(undo, log, podNl, child.index, "pod");

  const iface = log.step(
    "configure link",
    () => pod.run(() => configureChild(podNl, child, env.ifname, mtu, env.netns)),
  );

  let result: Result = { interfaces: [], ips: [], routes: [], dns: {} };
  if (ipam !== null) {
    // A plugin that failed or was killed part-way may still hold a lease: DEL is always safe to repeat.
    deferCleanup(undo, log, "ipam del", () => ipam.exec("DEL"));
    // Applied as the config's version can print it, so ADD installs what it reports and CHECK finds.
    result = limitToVersion(
      parseResult(
        await log.stepAsync("ipam add", () => ipam.exec("ADD")),
        `IPAM plugin "${ipam.type}" result`,
      ),
      conf.cniVersion,
    );
    if (result.ips.length === 0) {
      throw new CniError(ErrorCode.IpamFailure, `IPAM plugin "${ipam.type}" returned no IP addresses`);
    }
    const plan = planIpConfig(result);
    // Without carrier (a master down, or up without link) DAD cannot run: the addresses settle when the
    // port comes up (PR 1207 of the plugins).
    const settle = isOperUp(master);
    log.step(
      "apply addresses and routes",
      () => pod.run(() => applyIpConfig(podNl, iface, plan, { settle })),
    );
  }
  log.step("verify netns", () => requireSameNetns(pod, env.netns));

  // Formatting can still refuse (a result without addresses has no 0.1.0 form): before the undo is dropped.
  const output = formatResult(
    mergePrevResult(prev, {
      interfaces: [{ name: env.ifname, mac: iface.hwaddr, mtu: iface.mtu, sandbox: env.netns }],
      ips: result.ips.map((ip) => ({ ...ip, interface: 0 })),
      routes: result.routes,
      dns: conf.dns ?? result.dns,
    }),
    conf.cniVersion,
  );
  undo.move(); // success: keep the child and the lease
  return output;
}

/**
 * Renames the moved child to `ifname` with its MTU, sets its sysctls, and brings it up; returns the link
 * as the kernel then reports it. Runs inside the pod's namespace (sysctls follow the thread).
 */
function configureChild(nl: Netlink, child: LinkInfo, ifname: string, mtu: number, netns: string): LinkInfo {
  if (nl.getLink(ifname) !== null) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `interface "${ifname}" already exists in ${netns}`,
      "CNI_IFNAME must be unique within the container's network namespace",
    );
  }
  writeLinkSysctls(child.name);
  nl.setLink(child.index, { name: ifname, mtu });
  nl.setLink(child.index, { up: true });
  return requireLink(nl, ifname, "configure");
}

/** proxy_arp and arp_notify on the child, before it gets addresses (arp_notify sends gratuitous ARP then). */
function writeLinkSysctls(ifname: string): void {
  writeSysctlChecked(`net/ipv4/conf/${ifname}/proxy_arp`, "1");
  writeSysctlChecked(`net/ipv4/conf/${ifname}/arp_notify`, "1");
}

function writeSysctlChecked(key: string, value: string): void {
  try {
    writeSysctl(key, value);
  } catch (e) {
    throw new CniError(ErrorCode.IoFailure, `cannot set ${key.replaceAll("/", ".")} = ${value}`, String(e), {
      cause: e,
    });
  }
}

/**
 * The error of an ADD that finds CNI_IFNAME taken in the pod by `link`. Unless `link` is this attachment's
 * own child, records it first (lib/refusal.ts): the runtime's DEL after the failed ADD must leave it, even
 * when it looks like ours. A record that cannot be written is logged: ADD fails all the same.
 */
async function ifnameTaken(ctx: Context, pod: Netns, link: LinkInfo): Promise<CniError> {
  const { env, log } = ctx;
  if (link.alias !== ctx.mark) {
    try {
      await recordRefusal(env.containerId, env.ifname, { netns: pod.id(), ifindex: link.index });
      log.info(`recorded ${describeLink(link)} as another's, for the DEL that follows`);
    } catch (e) {
      log.info(`cannot record ${describeLink(link)} as another's: ${e instanceof Error ? e.message : e}`);
    }
  }
  return new CniError(
    ErrorCode.InvalidEnvironment,
    `interface "${env.ifname}" already exists in ${env.netns}`,
    "CNI_IFNAME must be unique within the container's network namespace",
  );
}

/**
 * Removes the record of a refused ADD of this attachment (lib/refusal.ts): at the end of DEL, which it served,
 * and in an ADD that found CNI_IFNAME free (the recorded link is gone; a record left by a DEL that never came
 * would hold a later DEL to the exact mark). One that cannot be removed is logged: the verb goes on.
 */
async function forgetRefusal(ctx: Context): Promise<void> {
  try {
    await removeRefusal(ctx.env.containerId, ctx.env.ifname);
  } catch (e) {
    ctx.log.info(`cannot remove the record of a refused ADD: ${e instanceof Error ? e.message : e}`);
  }
}

async function cmdDel(ctx: Context): Promise<null> {
  const { env, log } = ctx;
  ctx.refusal = await readRefusal(env.containerId, env.ifname);
  if (ctx.refusal !== null) log.info("ADD of this attachment was refused: its CNI_IFNAME link is another's");
  if (ctx.ipam !== null) {
    const ipam = ctx.ipam;
    try {
      await log.stepAsync("ipam del", () => ipam.exec("DEL"));
    } catch (e) {
      // Without the plugin no lease can exist that DEL could release; nor when ipam.type leads back to this
      // plugin, whose nested run refused before executing anything: failing would make kubelet retry forever.
      if (!(e instanceof IpamNotFound || isNestedRefusal(e))) throw e;
      log.info(`ipam del: ${e.message}; nothing to release`);
    }
  }
  using host = Netlink.open();
  // Only to recognise the unmarked child of an ADD killed before marking it (in the host); DEL goes on without.
  const master = ctx.conf.master === "" ? null : host.getLink(ctx.conf.master);
  // An ADD killed part-way may have left its child under the temporary name, in the host or in the pod.
  const tmpName = await temporaryName(env.containerId, env.ifname);
  log.step(
    `delete ${tmpName} in the host`,
    () => deleteOurLinkNamed(host, tmpName, ctx, master, "host", hostNetnsId()),
  );
  deleteInPod(ctx, master, tmpName);
  // The kernel returns an IPoIB child to the host when the pod's namespace dies (netns_refund), under its
  // pod name or dev<ifindex>: the mark finds it under any name. Looked for also when the pod held our child:
  // an ADD retried after such a refund leaves the returned one behind.
  log.step("delete marked child in the host", () => deleteMarked(host, ctx, "host", hostNetnsId()));
  await forgetRefusal(ctx);
  return null;
}

/** True for the error of an IPAM run that was this plugin again and refused (lib/env.ts, refuseNestedRun). */
function isNestedRefusal(e: unknown): e is CniError {
  return e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig &&
    e.message.endsWith(` failed: ${NESTED_RUN_REFUSED}`);
}

/**
 * Deletes this attachment's child in the pod namespace (under CNI_IFNAME, or the temporary name of an ADD
 * killed before the rename), when it is ours. Nothing to do when there is no pod namespace to look in:
 * CNI_NETNS empty, gone, not a namespace, or the host's own.
 */
function deleteInPod(ctx: Context, master: LinkInfo | null, tmpName: string): void {
  const { env, log } = ctx;
  if (env.netns === "") return;
  let pod: Netns;
  try {
    pod = Netns.open(env.netns);
  } catch (e) {
    // Nothing of ours can be in a namespace that is gone, nor in a path that is none (ADD refuses those):
    // failing would make the runtime retry forever.
    if (
      !(e instanceof NetnsError) || !(e.notANetns || NOT_A_NETNS_PATH.has(e.errno) || netnsIsGone(env.netns))
    ) {
      throw e;
    }
    log.info(`delete link: ${e.message}; nothing to delete there`);
    return;
  }
  using _ = pod;
  if (sameNetns(pod.id(), hostNetnsId())) {
    // ADD refuses it: the host's CNI_IFNAME is not ours (the marked-child search still runs).
    log.info(`delete link: ${env.netns} is the host's network namespace; nothing of ours is there by name`);
    return;
  }
  const podId = pod.id();
  log.step("delete link", () =>
    pod.run(() => {
      using nl = Netlink.open();
      deleteOurLinkNamed(nl, env.ifname, ctx, master, "pod", podId);
      deleteOurLinkNamed(nl, tmpName, ctx, master, "pod", podId);
      // Something in the pod may have renamed our child (ip link set net1 name ib0): the mark still finds it.
      deleteMarked(nl, ctx, "pod", podId);
    }));
}

/**
 * Deletes every link of the socket's namespace that carries this attachment's mark, under any name: in the
 * host, a child the kernel returned there; in the pod, one renamed there.
 */
function deleteMarked(nl: Netlink, ctx: Context, where: "host" | "pod", netns: NetnsId): void {
  for (const link of nl.listLinks()) {
    if (!carriesOurMark(link, ctx, where, netns)) continue;
    deleteLinkGone(nl, link.index);
    ctx.log.info(
      `deleted ${describeLink(link)} in the ${where}` +
        (where === "host" ? ", returned there by the kernel" : ", renamed there"),
    );
  }
}

/**
 * What open(2) answers for a CNI_NETNS that names no namespace in other ways than a missing file: a path
 * under a regular file or a namespace file with a trailing slash (ENOTDIR), a symlink loop (ELOOP), a
 * path too long (ENAMETOOLONG), a directory that cannot be searched (EACCES). ADD refuses them all.
 */
const NOT_A_NETNS_PATH = new Set<number>([Errno.ENOTDIR, Errno.ELOOP, Errno.ENAMETOOLONG, Errno.EACCES]);

/**
 * True when the namespace path no longer exists (the runtime already tore the sandbox down): open(2)
 * answers ENOENT, or ESRCH for /proc/<pid>/ns/net of a process that is exiting. Through libc, because
 * Deno refuses /proc paths under the plugin's permissions.
 */
function netnsIsGone(path: string): boolean {
  const e = openErrno(path);
  return e === Errno.ENOENT || e === Errno.ESRCH;
}

async function cmdCheck(ctx: Context): Promise<null> {
  const { env, conf, log } = ctx;
  requireVersion(conf.cniVersion, "0.4.0", "CHECK");
  if (conf.prevResult === undefined) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      'CHECK needs "prevResult" in the network configuration',
    );
  }
  const prev = limitToVersion(
    parseResult({ cniVersion: conf.cniVersion, ...conf.prevResult }, "prevResult"),
    conf.cniVersion,
  );
  using pod = openPodNetns(env.netns);
  if (ctx.ipam !== null) {
    const ipam = ctx.ipam;
    await log.stepAsync("ipam check", () => ipam.exec("CHECK"));
  }
  const { master, spec } = withHostNetlink((host) => lookupMaster(host, ctx));
  // Resolved here, in the plugin's own namespace: inside pod.run a path such as /proc/self/ns/net would
  // name the pod itself (under `deno run` the JS thread is the main thread, which /proc/self follows).
  const ifIndex = ourInterfaceIndex(ctx, prev, pod);
  pod.run(() => {
    using nl = Netlink.open();
    checkInterface(nl, ctx, prev, ifIndex, master, spec);
  });
  return null;
}

/**
 * The index in prevResult's `interfaces` of this attachment's interface: the first entry named CNI_IFNAME
 * whose `sandbox` is the pod's namespace by identity (other entries of that name may be in other sandboxes,
 * e.g. a pod's `net1` of another network listed before ours). Must run outside the pod's namespace.
 * @throws CniError code 102 when no entry is, naming the sandboxes that were listed instead
 */
function ourInterfaceIndex(ctx: Context, prev: Result, pod: Netns): number {
  const { env } = ctx;
  const named = prev.interfaces.flatMap((iface, index) =>
    iface.name === env.ifname && iface.sandbox !== undefined ? [{ index, sandbox: iface.sandbox }] : []
  );
  const ours = named.find((i) => namesSameNetns(i.sandbox, pod));
  if (ours !== undefined) return ours.index;
  throw checkFailed(
    ctx,
    named.length === 0
      ? `prevResult has no interface "${env.ifname}" in a sandbox`
      : `prevResult puts interface "${env.ifname}" in sandbox ${
        named.map((i) => i.sandbox).join(", ")
      }, not in ${env.netns}`,
  );
}

/** The code 102 error of a CHECK that found `msg`. */
function checkFailed(ctx: Context, msg: string): CniError {
  return new CniError(
    ErrorCode.CheckFailed,
    `CHECK: ${msg}`,
    `container ${ctx.env.containerId}, netns ${ctx.env.netns}`,
  );
}

/** Runs `fn` with a netlink socket of the host (current) namespace, closed afterwards. */
function withHostNetlink<T>(fn: (host: Netlink) => T): T {
  using host = Netlink.open();
  return fn(host);
}

/**
 * Checks this attachment's interface inside the pod (the JS thread switched in, `nl` a socket of the pod):
 * `ifIndex` is its entry in prevResult's `interfaces` ({@link ourInterfaceIndex}).
 * @throws CniError code 102 for the first thing that is not as ADD left it
 */
function checkInterface(
  nl: Netlink,
  ctx: Context,
  prev: Result,
  ifIndex: number,
  master: LinkInfo,
  spec: ChildSpec,
): void {
  const { env, driver } = ctx;
  const fail = (msg: string) => {
    throw checkFailed(ctx, msg);
  };
  const link = nl.getLink(env.ifname);
  if (link === null) return fail(`interface "${env.ifname}" not found`);
  const problem = driver.childProblem(nl, link, master, spec);
  if (problem !== null) fail(`interface "${env.ifname}" ${problem}`);
  // No MTU, hardware-address-by-config or sysctl check: a plugin chained after this one (tuning) may change
  // them, and the CNI spec has CHECK allow that. What stays ours is the kind, parent and settings above, the
  // link being up, and the addresses and routes of prevResult (the chain's final result).
  if (!link.up) fail(`interface "${env.ifname}" is down`);
  const recorded = prev.interfaces[ifIndex];
  if (recorded?.mac && recorded.mac.toLowerCase() !== link.hwaddr.toLowerCase()) {
    fail(`interface "${env.ifname}" has hardware address ${link.hwaddr}, prevResult says ${recorded.mac}`);
  }
  const problemIp = checkIpConfig(nl, link.index, {
    ...prev,
    // An IP without an index is ours only when ours is the result's only interface (no chain before us).
    ips: prev.ips.filter((ip) =>
      ip.interface === ifIndex || (ip.interface === undefined && prev.interfaces.length === 1)
    ),
  });
  if (problemIp !== null) fail(problemIp);
}

/**
 * True when `path` opens as the namespace `pod` (by device and inode, not path text). Call it in the
 * plugin's own namespace: a /proc/self or /proc/thread-self path follows the thread.
 */
function namesSameNetns(path: string, pod: Netns): boolean {
  let other: Netns;
  try {
    other = Netns.open(path);
  } catch (e) {
    if (e instanceof NetnsError) return false;
    throw e;
  }
  using _ = other;
  return sameNetns(other.id(), pod.id());
}

async function cmdGc(ctx: Context): Promise<null> {
  requireVersion(ctx.conf.cniVersion, "1.1.0", "GC");
  // A child in a pod namespace goes with it, but the kernel returns an IPoIB child to the host instead
  // (netns_refund): those of this network whose attachment is no longer valid are collected here.
  const ipamGc = await ipamSupportsGcStatus(ctx);
  const failure = await collectReturnedChildren(ctx, ipamGc);
  removeUnheldLocks(ctx.log);
  removeStaleRecords(ctx.log);
  if (ipamGc) await forwardToIpam(ctx, "GC");
  if (failure !== null) throw failure;
  return null;
}

/**
 * Removes the attachment lock files that no one holds: a run killed by its runtime cannot remove its own
 * (ffi/lock.ts). A failure costs an inode on tmpfs only: logged, GC goes on.
 */
function removeUnheldLocks(log: Logger): void {
  try {
    const removed = AttachmentLock.removeUnheld();
    if (removed.length > 0) log.info(`GC: removed ${removed.length} lock file(s) no run holds`);
  } catch (e) {
    log.info(`GC: lock files not swept: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Removes the records of refused ADDs (lib/refusal.ts) older than a day: a DEL that never came. */
function removeStaleRecords(log: Logger): void {
  try {
    const removed = removeStaleRefusals();
    if (removed > 0) log.info(`GC: removed ${removed} record(s) of refused ADDs older than a day`);
  } catch (e) {
    log.info(`GC: records of refused ADDs not swept: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Deletes the marked children of this network in the host namespace whose attachment (container id,
 * ifname) is not in `cni.dev/valid-attachments`, skipping any whose attachment lock is held (an ADD, DEL
 * or CHECK in flight, or its IPAM plugin). Without the list nothing is known to be stale: nothing is
 * deleted. When the IPAM plugin gets no GC (`ipamGc` false: it predates CNI 1.1.0), the lease of each
 * child is released by the IPAM's DEL ({@link releaseLease}) before the child is deleted, and a child
 * whose release failed stays. Goes on past a failure, which it
 * returns (null when none) so that the IPAM still gets its GC.
 */
async function collectReturnedChildren(ctx: Context, ipamGc: boolean): Promise<CniError | null> {
  const { log } = ctx;
  if (ctx.validAttachments === null) {
    log.info('GC: no "cni.dev/valid-attachments" in the config; no link collected');
    return null;
  }
  const valid = new Set<string>();
  for (const a of ctx.validAttachments) {
    const f = await markFields(ctx.conf.name, a.containerID, a.ifname);
    valid.add(`${f.containerId} ${f.ifname}`);
  }
  const network = (await markFields(ctx.conf.name, "-", "-")).network;
  using host = Netlink.open();
  let failure: CniError | null = null;
  for (const link of host.listLinks()) {
    const mark = parseMark(link.alias);
    if (mark === null || mark.network !== network || valid.has(`${mark.containerId} ${mark.ifname}`)) {
      continue;
    }
    const lock = await AttachmentLock.tryAcquireMark(link.alias!);
    if (lock === null) {
      log.info(`GC: kept ${describeLink(link)}: its attachment is in use (lock held)`);
      continue;
    }
    try {
      // Looked up again under the lock: the link seen in the listing may have gone or been reused since.
      const now = host.getLink(link.index);
      if (now !== null && now.alias === link.alias) {
        // The lease first: the child's mark is its only record, so a release that fails (or a GC killed
        // meanwhile) keeps the child, and the next GC tries again.
        if (!ipamGc) await releaseLease(ctx, mark, lock.fd);
        log.step(`GC: delete ${describeLink(now)}`, () => deleteLinkGone(host, now.index));
      }
    } catch (e) {
      failure ??= e instanceof CniError ? e : new CniError(ErrorCode.Internal, String(e));
    } finally {
      lock.release();
    }
  }
  return failure;
}

/**
 * Runs the IPAM plugin's DEL for the attachment of a child GC deleted, as the DEL that never came would
 * have (CNI_NETNS empty: the pod is gone), holding its lock (`lockFd`). Only when the mark holds the
 * container id and ifname themselves: a hashed field cannot be turned back into the value.
 * @throws the IPAM plugin's failure (CniError)
 */
async function releaseLease(ctx: Context, mark: MarkFields, lockFd: number): Promise<void> {
  const hashed = (field: string) => field.startsWith("#");
  if (hashed(mark.containerId) || hashed(mark.ifname)) {
    ctx.log.info(`GC: the mark of container ${mark.containerId} holds hashes; its lease is left to the IPAM`);
    return;
  }
  const ipam = ctx.ipamFor(mark.containerId, mark.ifname, lockFd);
  if (ipam === null) return;
  try {
    await ctx.log.stepAsync(
      `GC: ipam del of container ${mark.containerId} ifname ${mark.ifname}`,
      () => ipam.exec("DEL"),
    );
  } catch (e) {
    if (!(e instanceof IpamNotFound || isNestedRefusal(e))) throw e;
  }
}

async function cmdStatus(ctx: Context): Promise<null> {
  requireVersion(ctx.conf.cniVersion, "1.1.0", "STATUS");
  try {
    requireMasterUp(withHostNetlink((host) => lookupMaster(host, ctx)).master);
  } catch (e) {
    if (e instanceof CniError && e.code === ErrorCode.PluginNotAvailable) throw e;
    const why = e instanceof Error ? e.message : String(e);
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `plugin not available: ${why}`,
      e instanceof CniError ? e.details : "",
    );
  }
  if (await ipamSupportsGcStatus(ctx)) await forwardToIpam(ctx, "STATUS");
  return null;
}

/**
 * GC and STATUS exist since 1.1.0: an IPAM plugin built before that is not asked (as libcni does). False
 * also without IPAM.
 */
async function ipamSupportsGcStatus(ctx: Context): Promise<boolean> {
  if (ctx.ipam === null) return false;
  if ((await ctx.ipam.supportedVersions()).includes("1.1.0")) return true;
  ctx.log.info(`IPAM plugin "${ctx.ipam.type}" predates CNI 1.1.0: GC and STATUS not forwarded`);
  return false;
}

/** Runs `verb` in the IPAM plugin (one that {@link ipamSupportsGcStatus}). */
async function forwardToIpam(ctx: Context, verb: "GC" | "STATUS"): Promise<void> {
  const ipam = ctx.ipam!;
  await ctx.log.stepAsync(`ipam ${verb.toLowerCase()}`, () => ipam.exec(verb));
}
