/**
 * The plugin's verbs: ADD, DEL, CHECK, GC and STATUS. Each reads top to bottom as the steps it performs;
 * the cleanup of a step sits next to it, so a failure at any point leaves no link and no IPAM lease.
 * @module
 */

import { AttachmentLock } from "../ffi/lock.ts";
import { Netlink } from "../ffi/netlink.ts";
import {
  closeNetns,
  currentNetns,
  NetnsError,
  openNetns,
  sameNetns,
  withNetns,
  writeSysctl,
} from "../ffi/netns.ts";
import { type NetConf, parseDelConf, parseNetConf } from "./config.ts";
import type { ChildSpec, LinkDriver } from "./driver.ts";
import { type CniEnv, kernelNameProblem, requireCniPath } from "./env.ts";
import { CniError, ErrorCode } from "./errors.ts";
import { Ipam, IpamNotFound, validateCniPath } from "./ipam.ts";
import { Logger } from "./log.ts";
import { formatResult, limitToVersion, mergePrevResult, parseResult, type Result } from "./result.ts";
import { applyIpConfig, checkIpConfig, isOperUp } from "./ipconfig.ts";
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
  const unusable = env.command === "DEL" ? kernelNameProblem(env.ifname) : null;
  if (unusable !== null) {
    // ADD and every IPAM plugin built on Go's skel refuse such a name: no link, no lease can carry it.
    log.info(`DEL: CNI_IFNAME ${JSON.stringify(env.ifname)} ${unusable}; nothing of ours can exist`);
    return null;
  }
  let lock: AttachmentLock | null = null;
  try {
    if (conf.ipamType !== null) requireCniPath(env, conf.ipamType);
    validateCniPath(env.path);
    // One ADD, DEL or CHECK of an attachment at a time, and none while the IPAM plugin of a killed one runs.
    lock = await lockAttachment(env, conf, log);
    const driver = await inv.loadDriver();
    const ipam = conf.ipamType === null ? null : new Ipam(
      conf.ipamType,
      env.path,
      inv.environ,
      inv.stdin,
      conf.ipamTimeoutSeconds,
      log,
      { inheritFds: lock === null ? [] : [lock.fd] },
    );
    const ctx: Context = { env, conf, driver, log, ipam };
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
  return AttachmentLock.acquire(conf.name, env.containerId, env.ifname, conf.ipamTimeoutSeconds * 1000, {
    killHolders: env.command === "DEL",
    onKilled: (pids) =>
      log.info(`lock: killed ${pids.join(", ")}, still holding it after ${conf.ipamTimeoutSeconds} s`),
  });
}

/** Runs `fn` with a netlink socket of the current namespace, always closing it. */
function withNetlink<T>(fn: (nl: Netlink) => T): T {
  const nl = Netlink.open();
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}

/** The master link from the host namespace, checked by the driver; throws when missing or unusable. */
function lookupMaster(ctx: Context) {
  const master = withNetlink((nl) => nl.getLink(ctx.conf.master));
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
 * A master that is down cannot carry the child's traffic: ADD refuses it with the code STATUS reports
 * for it (50, plugin not available), rather than attaching a pod that cannot talk.
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

/** Deletes a link by name in the current namespace when it exists; true when there was one. */
function deleteLinkNamed(name: string): boolean {
  return withNetlink((nl) => {
    const link = nl.getLink(name);
    if (link !== null) nl.deleteLink(link.index);
    return link !== null;
  });
}

/**
 * Fails when CNI_NETNS no longer names the namespace the child was moved into: the runtime removed the
 * sandbox while ADD ran (the open fd kept the namespace alive until now).
 */
function requireSameNetns(nsFd: number, path: string): void {
  let now: string;
  try {
    now = withNetns(path, currentNetns);
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
  if (now !== withNetns(nsFd, currentNetns)) {
    throw new CniError(ErrorCode.InvalidNetns, `network namespace ${path} was replaced during ADD`);
  }
}

async function cmdAdd(ctx: Context): Promise<unknown> {
  const { env, conf, driver, log } = ctx;
  // Chained after other plugins: their result is passed through with ours appended (CNI spec, chaining).
  const prev = conf.prevResult === undefined
    ? null
    : parseResult({ cniVersion: conf.cniVersion, ...conf.prevResult }, "prevResult");
  const nsFd = log.step("open netns", () => openNetns(env.netns));
  try {
    const { master, spec } = log.step("inspect master", () => {
      const found = lookupMaster(ctx);
      requireMasterUp(found.master);
      return found;
    });
    const mtu = conf.mtu ?? master.mtu;
    if (mtu > master.mtu) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `mtu ${mtu} exceeds the MTU ${master.mtu} of master "${master.name}"`,
      );
    }

    // Created under a temporary name in the host namespace, then moved: CNI_IFNAME may exist on the host.
    const tmpName = await temporaryName(env.containerId, env.ifname);
    if (deleteLinkNamed(tmpName)) log.info(`removed ${tmpName}, left in the host by an interrupted ADD`);
    log.step(
      `create child ${tmpName}`,
      () => withNetlink((nl) => driver.createChild(nl, tmpName, master, spec)),
    );
    let childIn: "host" | "pod" = "host";
    let childName = tmpName;
    const removeChild = () => {
      try {
        log.step(`cleanup: delete link ${childName} in the ${childIn}`, () => {
          if (childIn === "host") deleteLinkNamed(childName);
          else withNetns(nsFd, () => deleteLinkNamed(childName));
        });
      } catch { /* logged; the original failure is what the runtime must see */ }
    };
    try {
      log.step("move to netns", () =>
        withNetlink((nl) => {
          const link = nl.getLink(tmpName);
          if (link === null) {
            throw new CniError(ErrorCode.KernelFailure, `link ${tmpName} vanished after create`);
          }
          nl.moveToNetns(link.index, nsFd);
        }));
      childIn = "pod";
      const iface = log.step("configure link", () =>
        withNetns(nsFd, () =>
          withNetlink((nl) => {
            if (nl.getLink(env.ifname) !== null) {
              throw new CniError(
                ErrorCode.InvalidEnvironment,
                `interface "${env.ifname}" already exists in ${env.netns}`,
                "CNI_IFNAME must be unique within the container's network namespace",
              );
            }
            const link = nl.getLink(tmpName)!;
            writeLinkSysctls(tmpName);
            nl.setLink(link.index, { name: env.ifname, mtu });
            childName = env.ifname;
            nl.setLink(link.index, { up: true });
            return nl.getLink(link.index)!;
          })));

      let result: Result = { interfaces: [], ips: [], routes: [], dns: {} };
      const ipam = ctx.ipam;
      try {
        if (ipam !== null) {
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
          log.step(
            "apply addresses and routes",
            () => withNetns(nsFd, () => applyIpConfig(env.ifname, result, { settle: isOperUp(master) })),
          );
        }
        log.step("verify netns", () => requireSameNetns(nsFd, env.netns));
      } catch (e) {
        // A plugin that failed or was killed part-way may still hold a lease: DEL is always safe to repeat.
        if (ipam !== null) await log.stepAsync("cleanup: ipam del", () => ipam.exec("DEL")).catch(() => {});
        throw e;
      }
      return formatResult(
        mergePrevResult(prev, {
          interfaces: [{ name: env.ifname, mac: iface.hwaddr, mtu: iface.mtu, sandbox: env.netns }],
          ips: result.ips.map((ip) => ({ ...ip, interface: 0 })),
          routes: result.routes,
          dns: conf.dns ?? result.dns,
        }),
        conf.cniVersion,
      );
    } catch (e) {
      removeChild();
      throw e;
    }
  } finally {
    closeNetns(nsFd);
  }
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

async function cmdDel(ctx: Context): Promise<null> {
  const { env, log } = ctx;
  if (ctx.ipam !== null) {
    const ipam = ctx.ipam;
    try {
      await log.stepAsync("ipam del", () => ipam.exec("DEL"));
    } catch (e) {
      // Without the plugin no lease can exist that DEL could release; failing would make kubelet retry forever.
      if (!(e instanceof IpamNotFound)) throw e;
      log.info(`ipam del: ${e.message}; nothing to release`);
    }
  }
  // An ADD killed part-way may have left its child under the temporary name, in the host or in the pod.
  const tmpName = await temporaryName(env.containerId, env.ifname);
  log.step(`delete ${tmpName} in the host`, () => deleteLinkNamed(tmpName));
  if (env.netns === "") return null;
  let nsFd: number;
  try {
    nsFd = openNetns(env.netns);
  } catch (e) {
    // Nothing of ours can be in a namespace that is gone, nor in a path that is none (ADD refuses those):
    // failing would make the runtime retry forever.
    if (!(e instanceof NetnsError) || !(e.notANetns || netnsIsGone(env.netns))) throw e;
    log.info(`delete link: ${e.message}; nothing to delete there`);
    return null;
  }
  try {
    log.step("delete link", () =>
      withNetns(nsFd, () => {
        deleteLinkNamed(env.ifname);
        deleteLinkNamed(tmpName);
      }));
  } finally {
    closeNetns(nsFd);
  }
  return null;
}

/** True when the namespace path no longer exists (the runtime already tore the sandbox down). */
function netnsIsGone(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return false;
  } catch (e) {
    return e instanceof Deno.errors.NotFound;
  }
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
  if (ctx.ipam !== null) {
    const ipam = ctx.ipam;
    await log.stepAsync("ipam check", () => ipam.exec("CHECK"));
  }
  const { master, spec } = lookupMaster(ctx);
  const nsFd = openNetns(env.netns);
  try {
    withNetns(nsFd, () => withNetlink((nl) => checkInterface(nl, ctx, prev, master, spec, nsFd)));
  } finally {
    closeNetns(nsFd);
  }
  return null;
}

function checkInterface(
  nl: Netlink,
  ctx: Context,
  prev: Result,
  master: ReturnType<typeof lookupMaster>["master"],
  spec: ChildSpec,
  nsFd: number,
): void {
  const { env, driver } = ctx;
  const fail = (msg: string) => {
    throw new CniError(
      ErrorCode.CheckFailed,
      `CHECK: ${msg}`,
      `container ${env.containerId}, netns ${env.netns}`,
    );
  };
  const link = nl.getLink(env.ifname);
  if (link === null) return fail(`interface "${env.ifname}" not found`);
  const problem = driver.childProblem(nl, link, master, spec);
  if (problem !== null) fail(`interface "${env.ifname}" ${problem}`);
  // No MTU, hardware-address-by-config or sysctl check: a plugin chained after this one (tuning) may change
  // them, and the CNI spec has CHECK allow that. What stays ours is the kind, parent and settings above, the
  // link being up, and the addresses and routes of prevResult (the chain's final result).
  if (!link.up) fail(`interface "${env.ifname}" is down`);
  const ifIndex = prev.interfaces.findIndex((i) => i.name === env.ifname && i.sandbox !== undefined);
  const recorded = prev.interfaces[ifIndex];
  if (recorded === undefined) fail(`prevResult has no interface "${env.ifname}" in a sandbox`);
  if (!namesSameNetns(recorded!.sandbox!, nsFd)) {
    fail(`prevResult puts interface "${env.ifname}" in sandbox ${recorded!.sandbox}, not in ${env.netns}`);
  }
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

/** True when `path` opens as the namespace of `nsFd` (by device and inode, not path text). */
function namesSameNetns(path: string, nsFd: number): boolean {
  let fd: number;
  try {
    fd = openNetns(path);
  } catch (e) {
    if (e instanceof NetnsError) return false;
    throw e;
  }
  try {
    return sameNetns(fd, nsFd);
  } finally {
    closeNetns(fd);
  }
}

async function cmdGc(ctx: Context): Promise<null> {
  requireVersion(ctx.conf.cniVersion, "1.1.0", "GC");
  // Every link this plugin makes lives in a pod namespace and goes with it: only IPAM holds state to collect.
  await forwardIfSupported(ctx, "GC");
  return null;
}

async function cmdStatus(ctx: Context): Promise<null> {
  requireVersion(ctx.conf.cniVersion, "1.1.0", "STATUS");
  try {
    requireMasterUp(lookupMaster(ctx).master);
  } catch (e) {
    if (e instanceof CniError && e.code === ErrorCode.PluginNotAvailable) throw e;
    const why = e instanceof Error ? e.message : String(e);
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `plugin not available: ${why}`,
      e instanceof CniError ? e.details : "",
    );
  }
  await forwardIfSupported(ctx, "STATUS");
  return null;
}

/** GC and STATUS exist since 1.1.0: an IPAM plugin built before that is not asked (as libcni does). */
async function forwardIfSupported(ctx: Context, verb: "GC" | "STATUS"): Promise<void> {
  if (ctx.ipam === null) return;
  const ipam = ctx.ipam;
  const versions = await ipam.supportedVersions();
  if (!versions.includes("1.1.0")) {
    ctx.log.info(`${verb}: IPAM plugin "${ipam.type}" predates CNI 1.1.0, not forwarded`);
    return;
  }
  await ctx.log.stepAsync(`ipam ${verb.toLowerCase()}`, () => ipam.exec(verb));
}
