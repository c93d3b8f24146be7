/**
 * ffi/netlink.ts and ffi/netns.ts against the real kernel, inside namespaces the tests create
 * and always remove. Needs root and
 * `--allow-env --allow-read --allow-write=/tmp,/run/netns --allow-run --allow-ffi`.
 */

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertNotEquals,
  assertThrows,
} from "@std/assert";
import { CniError, ErrorCode } from "../../lib/errors.ts";
import { type AddressInfo, Netlink, NetlinkError, type RouteInfo } from "../../ffi/netlink.ts";
import { hostNetnsId, Netns, NetnsError, readSysfsNet, sameNetns, writeSysctl } from "../../ffi/netns.ts";
import { Errno, openErrno, readTextFile } from "../../ffi/libc.ts";
import { lazyLibrary } from "../../ffi/load.ts";
import { type CidrBytes, cidrBytes, formatCidr, formatIpBytes, type IpBytes, ipBytes } from "../../lib/ip.ts";
import { ipoibLinkRequest } from "../../lib/ipoib.ts";
import { planIpConfig } from "../../lib/ipconfig.ts";
import { attrU32, IFLA_MACVLAN_MODE, macvlanLinkRequest } from "../standin/driver.ts";
import { run, TestNetns, threadNetns, uniqueName, vethPair } from "../../support/net.ts";

const EEXIST = 17;
const ENODEV = 19;
const ENOENT = 2;
const EOPNOTSUPP = 95;
const RT_TABLE_MAIN = 254;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;
/** IFF_RUNNING (linux/if.h): operationally up, with carrier; what lib/ipconfig.ts reads. */
const IFF_RUNNING = 0x40;

const cidr = (text: string): CidrBytes => cidrBytes(text)!;
const ip = (text: string): IpBytes => ipBytes(text)!;

/** An address as text, so expectations read as iproute2 prints them. */
function addressText(a: AddressInfo) {
  return { ...a, address: formatCidr(a.address) };
}

/** A route as text, so expectations read as iproute2 prints them. */
function routeText(r: RouteInfo) {
  const { gw, ...rest } = r;
  return { ...rest, dst: formatCidr(r.dst), ...(gw ? { gw: formatIpBytes(gw) } : {}) };
}

/** A sysctl of the thread's current namespace, trimmed; null when it does not exist (test-side reader). */
function readSysctl(key: string): string | null {
  return readTextFile(`/proc/sys/${key}`)?.trim() ?? null;
}

/** Runs `fn` inside the namespace at `path` (Netns.run), opening and closing it around. */
function inPath<T>(path: string, fn: () => T): T {
  using ns = Netns.open(path);
  return ns.run(fn);
}

/** Opens a socket in namespace `ns`, runs `fn`, closes the socket. */
function inNs<T>(ns: TestNetns, fn: (nl: Netlink) => T): T {
  return inPath(ns.path, () => {
    using nl = Netlink.open();
    return fn(nl);
  });
}

/** IFLA_OPERSTATE of `ifname` in `ns` as iproute2 prints it ("UP", "DOWN", "LOWERLAYERDOWN"). */
function operstate(ns: TestNetns, ifname: string): string {
  return JSON.parse(run("ip", "-n", ns.name, "-j", "link", "show", ifname))[0].operstate;
}

function pollUntil(what: string, ok: () => boolean, timeoutMs = 5000): void {
  const deadline = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

// The libraries loaded lazily stay loaded for the life of the process, by design.
const opts = { sanitizeResources: false } as const;

Deno.test("links: veth, macvlan, move, rename/MTU/up, addresses, routes, delete", opts, () => {
  using a = TestNetns.createSync("nla");
  using b = TestNetns.createSync("nlb");
  const hostNs = threadNetns();

  // Namespace A: the master veth pair and a macvlan child, then the child moves to B.
  const moved = inNs(a, (nl) => {
    assertNotEquals(threadNetns(), hostNs);
    vethPair("va", "vb", a.name);
    const va = nl.getLink("va")!;
    const vb = nl.getLink("vb")!;
    assertEquals(va.kind, "veth");
    assertEquals(va.parentIndex, vb.index);
    assertEquals(vb.parentIndex, va.index);
    assertEquals(va.arpType, 1);
    assertEquals(va.up, false);
    assertMatch(va.hwaddr, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    // A link found by index is the same as found by name.
    assertEquals(nl.getLink(va.index), va);
    // The veth carrier needs both ends up; the macvlan's carrier (and IPv6 DAD) follows it.
    nl.setLink(va.index, { up: true });
    nl.setLink(vb.index, { up: true });

    nl.createLink(macvlanLinkRequest("mv", va.index, "private"));
    const mv = nl.getLink("mv")!;
    assertEquals(mv.kind, "macvlan");
    assertEquals(mv.parentIndex, va.index);
    assertEquals(mv.mtu, 1500);
    assertEquals(
      nl.listLinks().map((l) => l.name).sort(),
      ["lo", "mv", "va", "vb"],
    );

    using nsB = Netns.open(b.path);
    nl.moveToNetns(mv.index, nsB.fd);
    assertEquals(nl.getLink("mv"), null);
    return mv;
  });

  // The host's socket never saw any of this.
  {
    using host = Netlink.open();
    assertEquals(host.getLink("va"), null);
  }

  inNs(b, (nl) => {
    const mv = nl.getLink("mv")!;
    assertEquals(mv.hwaddr, moved.hwaddr);
    assertEquals(mv.kind, "macvlan");
    nl.setLink(mv.index, { name: "eth7", mtu: 1400, up: true });
    const eth7 = nl.getLink("eth7")!;
    assertEquals(
      { index: eth7.index, name: eth7.name, mtu: eth7.mtu, up: eth7.up },
      { index: mv.index, name: "eth7", mtu: 1400, up: true },
    );
    nl.setLink(eth7.index, { up: false });
    assertEquals(nl.getLink(eth7.index)!.up, false);
    nl.setLink(eth7.index, { up: true });
    nl.setLink(eth7.index, {}); // nothing to change: no request at all

    // Sysctls follow the thread's namespace: eth7 exists here, not on the host.
    writeSysctl("net/ipv4/conf/eth7/proxy_arp", "1");
    assertEquals(readSysctl("net/ipv4/conf/eth7/proxy_arp"), "1");
    writeSysctl("net/ipv6/conf/eth7/disable_ipv6", "0");

    // Addresses: IPv4, IPv6 without DAD (usable at once), IPv6 with DAD (tentative, then settles).
    nl.addAddress(eth7.index, cidr("10.77.0.5/24"));
    run("ip", "-n", b.name, "addr", "add", "fd00:77::5/64", "dev", "eth7", "nodad");
    nl.addAddress(eth7.index, cidr("fd00:77:0:0::6/64"));
    const find = (text: string) =>
      nl.listAddresses(eth7.index).map(addressText).find((x) => x.address === text);
    assertEquals(find("10.77.0.5/24"), {
      index: eth7.index,
      family: 4,
      address: "10.77.0.5/24",
      flags: 0x80, // IFA_F_PERMANENT
      tentative: false,
      dadFailed: false,
    });
    const noDad = find("fd00:77::5/64")!;
    assertEquals([noDad.family, noDad.tentative, noDad.dadFailed, (noDad.flags & 0x02) !== 0], [
      6,
      false,
      false,
      true,
    ]);
    assertEquals(find("fd00:77::6/64")?.tentative, true);
    pollUntil("DAD of fd00:77::6", () => find("fd00:77::6/64")?.tentative === false);
    assertEquals(find("fd00:77::6/64")?.dadFailed, false);
    // Listing every link's addresses includes these, and the loopback's only after it is up.
    assert(
      nl.listAddresses().map(addressText).some((x) => x.index === eth7.index && x.address === "10.77.0.5/24"),
    );
    const dup = assertThrows(() => nl.addAddress(eth7.index, cidr("10.77.0.5/24")), NetlinkError);
    assertEquals(dup.errno, EEXIST);

    // Routes: gateway + metric + mtu + advmss, a default in another table, IPv6 default, link scope.
    nl.addRoute({
      dst: cidr("10.78.0.0/16"),
      gw: ip("10.77.0.1"),
      index: eth7.index,
      metric: 50,
      mtu: 1300,
      advmss: 1200,
    });
    nl.addRoute({ dst: cidr("0.0.0.0/0"), gw: ip("10.77.0.1"), index: eth7.index, table: 100 });
    nl.addRoute({ dst: cidr("::/0"), gw: ip("fd00:77::1"), index: eth7.index, metric: 300 });
    nl.addRoute({ dst: cidr("10.79.1.7/24"), index: eth7.index, scope: RT_SCOPE_LINK }); // host bits are masked
    const v4main = nl.listRoutes({ index: eth7.index, family: 4, table: RT_TABLE_MAIN });
    const byDst = (rs: RouteInfo[], dst: string) => rs.map(routeText).find((r) => r.dst === dst);
    assertEquals(byDst(v4main, "10.78.0.0/16"), {
      family: 4,
      dst: "10.78.0.0/16",
      gw: "10.77.0.1",
      index: eth7.index,
      metric: 50,
      table: RT_TABLE_MAIN,
      scope: RT_SCOPE_UNIVERSE,
      type: RTN_UNICAST,
      mtu: 1300,
      advmss: 1200,
    });
    assertEquals(byDst(v4main, "10.79.1.0/24"), {
      family: 4,
      dst: "10.79.1.0/24",
      index: eth7.index,
      metric: 0,
      table: RT_TABLE_MAIN,
      scope: RT_SCOPE_LINK,
      type: RTN_UNICAST,
    });
    // The prefix route of the address, added by the kernel.
    assertEquals(byDst(v4main, "10.77.0.0/24")?.scope, RT_SCOPE_LINK);
    assertEquals(byDst(v4main, "0.0.0.0/0"), undefined);
    assertEquals(nl.listRoutes({ table: 100 }).map(routeText), [{
      family: 4,
      dst: "0.0.0.0/0",
      gw: "10.77.0.1",
      index: eth7.index,
      metric: 0,
      table: 100,
      scope: RT_SCOPE_UNIVERSE,
      type: RTN_UNICAST,
    }]);
    assertEquals(byDst(nl.listRoutes({ family: 6, table: RT_TABLE_MAIN }), "::/0"), {
      family: 6,
      dst: "::/0",
      gw: "fd00:77::1",
      index: eth7.index,
      metric: 300,
      table: RT_TABLE_MAIN,
      scope: RT_SCOPE_UNIVERSE,
      type: RTN_UNICAST,
    });
    assertEquals(nl.listRoutes({ family: 6 }).every((r) => r.family === 6), true);
    // An independent observer agrees on the route with metrics.
    const ipView = JSON.parse(run("ip", "-n", b.name, "-j", "-d", "route", "show", "10.78.0.0/16"));
    assertEquals(ipView[0]?.gateway, "10.77.0.1");
    assertEquals(ipView[0]?.metric, 50);
    assertEquals(ipView[0]?.metrics, [{ mtu: 1300, advmss: 1200 }]);
    // The default ("exclusive") refuses a second route to the same destination, table and metric.
    const dupRoute = assertThrows(
      () => nl.addRoute({ dst: cidr("10.78.0.0/16"), gw: ip("10.77.0.1"), index: eth7.index, metric: 50 }),
      NetlinkError,
    );
    assertEquals(dupRoute.errno, EEXIST);
    // Without NLM_F_EXCL (as Go's RouteAddEcmp) only an identical route is EEXIST; one that differs (here:
    // without the metrics) is added beside it, as ADD does beside the kernel's connected route.
    const identical = assertThrows(
      () =>
        nl.addRoute({
          dst: cidr("10.78.0.0/16"),
          gw: ip("10.77.0.1"),
          index: eth7.index,
          metric: 50,
          mtu: 1300,
          advmss: 1200,
          existing: "create",
        }),
      NetlinkError,
    );
    assertEquals(identical.errno, EEXIST);
    nl.addRoute({
      dst: cidr("10.78.0.0/16"),
      gw: ip("10.77.0.1"),
      index: eth7.index,
      metric: 50,
      existing: "create",
    });
    const both = JSON.parse(run("ip", "-n", b.name, "-j", "-d", "route", "show", "10.78.0.0/16"));
    assertEquals(both.length, 2, JSON.stringify(both));

    nl.deleteLink(eth7.index);
    assertEquals(nl.getLink("eth7"), null);
    assertEquals(nl.listAddresses(eth7.index), []);
    assertEquals(nl.listRoutes({ index: eth7.index }), []);
    const gone = assertThrows(() => nl.deleteLink(eth7.index), NetlinkError);
    assertEquals(gone.errno, ENODEV);
    assertEquals(gone.code, ErrorCode.KernelFailure);
  });

  // Deleting one end of the veth pair removes both.
  inNs(a, (nl) => {
    nl.deleteLink(nl.getLink("va")!.index);
    assertEquals(nl.getLink("vb"), null);
  });
  assertEquals(threadNetns(), hostNs);
});

Deno.test("link settings: raw IFLA_INFO_DATA reads a macvlan's mode (bridge 4, private 1)", opts, () => {
  using a = TestNetns.createSync("nli");
  inNs(a, (nl) => {
    vethPair("va", "vb", a.name);
    const va = nl.getLink("va")!;
    nl.createLink(macvlanLinkRequest("mvb", va.index, "bridge"));
    nl.createLink(macvlanLinkRequest("mvp", va.index, "private"));
    const mode = (name: string) => {
      const info = nl.getLinkInfoData(nl.getLink(name)!.index)!;
      assertEquals(info.kind, "macvlan");
      return attrU32(info.data, IFLA_MACVLAN_MODE);
    };
    assertEquals(mode("mvb"), 4);
    assertEquals(mode("mvp"), 1);
    // iproute2, reading the same attribute independently, agrees.
    const ipMode = (name: string) =>
      JSON.parse(run("ip", "-n", a.name, "-j", "-d", "link", "show", name))[0].linkinfo.info_data.mode;
    assertEquals([ipMode("mvb"), ipMode("mvp")], ["bridge", "private"]);
    // A change made behind our back is seen on the next read.
    run("ip", "-n", a.name, "link", "set", "mvp", "type", "macvlan", "mode", "vepa");
    assertEquals(mode("mvp"), 2);

    // A kind without settings, a device without a kind, a missing link.
    assertEquals(nl.getLinkInfoData(va.index), { kind: "veth", data: new Map() });
    assertEquals(nl.getLinkInfoData(nl.getLink("lo")!.index), { kind: null, data: new Map() });
    assertEquals(nl.getLinkInfoData(999999), null);

    // Reads leave the socket in step: later requests get their own answers, failures included.
    for (let i = 0; i < 50; i++) assertEquals(mode("mvb"), 4);
    const missing = assertThrows(() => nl.setLink(999998, { mtu: 1400 }), NetlinkError);
    assertEquals(missing.errno, ENODEV);
    nl.setLink(va.index, { mtu: 1400 });
    assertEquals(nl.getLink("va")!.mtu, 1400);
    assertEquals(mode("mvb"), 4);
    nl.deleteLink(va.index);
    assertEquals(nl.getLink("mvb"), null);
  });
});

Deno.test("errors: EEXIST, IPoIB refused with the kernel's text, bad input", opts, () => {
  using a = TestNetns.createSync("nle");
  inNs(a, (nl) => {
    vethPair("v0", "v1", a.name);
    const v0 = nl.getLink("v0")!;

    const exists = assertThrows(
      () => nl.createLink(macvlanLinkRequest("v0", v0.index, "bridge")),
      NetlinkError,
    );
    assertEquals(exists.errno, EEXIST);
    assertEquals(exists.code, ErrorCode.KernelFailure);
    assertEquals(exists.message, 'create link "v0": File exists');
    assertInstanceOf(exists, CniError);
    const macExists = assertThrows(
      () => nl.createLink(macvlanLinkRequest("v1", v0.index, "private")),
      NetlinkError,
    );
    assertEquals(macExists.errno, EEXIST);

    // No InfiniBand here: the kernel refuses the kind and says so in its extended ack.
    const ib = assertThrows(
      () => nl.createLink(ipoibLinkRequest("ib0.8001", v0.index, { pkey: 0x8001, mode: 1, umcast: true })),
      NetlinkError,
    );
    assertEquals(ib.errno, EOPNOTSUPP);
    assertEquals(ib.message, 'create link "ib0.8001": Operation not supported');
    assertEquals(ib.kernelMessage, "Unknown device type");
    assert(ib.details.includes("Unknown device type"), ib.details);
    assertEquals(nl.getLink("ib0.8001"), null);
    // Minimal request (parent's pkey, no INFO_DATA values) is refused the same way.
    const ib2 = assertThrows(() => nl.createLink(ipoibLinkRequest("ib1", v0.index, {})), NetlinkError);
    assertEquals(ib2.kernelMessage, "Unknown device type");
    // A value wider than its attribute is the caller's bug (lib/ refuses such a pkey as config, code 7),
    // refused before anything is sent.
    const wide = assertThrows(
      () => nl.createLink(ipoibLinkRequest("ib2", v0.index, { pkey: 0x10000 })),
      CniError,
      "value 65536 is not a u16",
    );
    assertEquals(wide.code, ErrorCode.Internal);
    assertEquals(nl.getLink("ib2"), null);

    // A failure does not leak into the next operation's report.
    const missing = assertThrows(() => nl.setLink(999999, { mtu: 1400 }), NetlinkError);
    assertEquals(missing.errno, ENODEV);
    assertEquals(nl.getLink(999999), null);
    assertEquals(nl.getLink("nosuchlink"), null);

    // Bad input is refused in lib/, before netlink: code 7, not a kernel failure.
    const family = assertThrows(
      () =>
        planIpConfig({
          ips: [{ address: "10.0.0.1/8" }],
          routes: [{ dst: "10.0.0.0/8", gw: "fd00::1" }],
          interfaces: [],
          dns: {},
        }),
      CniError,
      "family",
    );
    assertEquals(family.code, ErrorCode.InvalidNetworkConfig);
    nl.deleteLink(v0.index);
  });

  const nl = Netlink.open();
  nl.close();
  nl.close();
  assertThrows(() => nl.listLinks(), CniError, "after close");
});

Deno.test("netns: Netns.open refuses what is not a network namespace (code 8)", opts, () => {
  const file = Deno.makeTempFileSync({ dir: "/tmp" });
  try {
    const notNs = assertThrows(() => Netns.open(file), NetnsError);
    assertEquals(notNs.code, ErrorCode.InvalidNetns);
    assert(notNs.message.includes(file), notNs.message);
  } finally {
    Deno.removeSync(file);
  }
  const missing = assertThrows(() => Netns.open("/run/netns/does-not-exist-x"), NetnsError);
  assertEquals(missing.code, ErrorCode.InvalidNetns);
  assertEquals(missing.errno, ENOENT);
  assert(missing.message.includes("/run/netns/does-not-exist-x"), missing.message);
  // Another kind of namespace is refused too.
  const uts = assertThrows(() => Netns.open("/proc/self/ns/uts"), NetnsError);
  assertMatch(uts.details, /type 0x4000000/);
  // A bad path fails before switching.
  const before = threadNetns();
  assertThrows(() => inPath(file, () => 1), NetnsError);
  assertEquals(threadNetns(), before);
  // The process's own namespace is a network namespace.
  Netns.open("/proc/self/ns/net")[Symbol.dispose]();
});

Deno.test("netns: Netns.run switches, nests, and always switches back", opts, () => {
  using a = TestNetns.createSync("nlw");
  using b = TestNetns.createSync("nlw");
  const host = threadNetns();
  using nsA = Netns.open(a.path);
  const inA = nsA.run(() => threadNetns());
  assertNotEquals(inA, host);
  assertEquals(threadNetns(), host);

  assertThrows(
    () =>
      nsA.run(() => {
        assertEquals(threadNetns(), inA);
        throw new Error("boom");
      }),
    Error,
    "boom",
  );
  assertEquals(threadNetns(), host);

  // Nested: the inner call returns to A, the outer to the host.
  {
    using nsB = Netns.open(b.path);
    nsA.run(() => {
      const inB = nsB.run(() => threadNetns());
      assertNotEquals(inB, inA);
      assertEquals(threadNetns(), inA);
    });
  }
  assertEquals(threadNetns(), host);

  // Child processes started while switched run in the target namespace.
  nsA.run(() => assertEquals(run("readlink", "/proc/self/ns/net").trim(), inA));

  // A Promise-returning fn is refused (after switching back).
  assertThrows(() => nsA.run(() => Promise.resolve(1)), CniError, "synchronous");
  assertEquals(threadNetns(), host);
});

Deno.test("sysfs and sysctl helpers", opts, () => {
  assertEquals(readSysfsNet("lo", "mtu"), "65536");
  assertEquals(readSysfsNet("lo", "type"), "772");
  assertEquals(readSysfsNet("nosuchlink0", "mtu"), null);
  assertThrows(() => readSysfsNet("../etc", "x"), CniError);
  // A key that would leave /proc/sys is a caller's bug (Internal), refused before any file is opened.
  for (const key of ["net/../nosuchkey0", "/net/ipv4/ip_forward", "net//ipv4"]) {
    const bad = assertThrows(() => writeSysctl(key, "1"), CniError);
    assertEquals(bad.code, ErrorCode.Internal, key);
  }
  assertEquals(readSysctl("net/ipv4/conf/nosuchlink0/proxy_arp"), null);
  assertMatch(readSysctl("net/ipv4/ip_forward") ?? "", /^[01]$/);
  // Writing a sysctl that does not exist is an I/O failure naming it.
  const e = assertThrows(() => writeSysctl("net/ipv4/conf/nosuchlink0/proxy_arp", "1"), CniError);
  assertEquals(e.code, ErrorCode.IoFailure);
  assert(e.message.includes("nosuchlink0"));
  // uniqueName keeps within IFNAMSIZ.
  assert(uniqueName("averyveryverylongprefix").length <= 15);
});

Deno.test("libraries: a missing one is code 103 with the package to install", opts, () => {
  const e = assertThrows(
    () =>
      lazyLibrary(
        "libnosuch-ipoib.so.9",
        { f: { parameters: [], result: "void" } },
        "install the nosuch package",
      ).f(),
    CniError,
  );
  assertEquals(e.code, ErrorCode.LibraryMissing);
  assertEquals(e.message, "cannot load libnosuch-ipoib.so.9");
  assertEquals(e.details, "install the nosuch package");
  // Both candidates were tried and their dlopen errors kept.
  assertMatch(
    String((e.cause as Error).message),
    /ipoib\.d\/libnosuch-ipoib\.so\.9: .*; libnosuch-ipoib\.so\.9: /,
  );
});

Deno.test("libraries: ipoib.d beside the executable wins over the system copy", opts, () => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "ipoib-libs-" });
  try {
    // The executable's own directory decides, so run a Deno placed in `dir` (a hard link is
    // enough: /proc/self/exe names the link it was started through).
    const exe = `${dir}/deno`;
    try {
      Deno.linkSync(Deno.execPath(), exe);
    } catch {
      Deno.copyFileSync(Deno.execPath(), exe);
    }
    const fixture = new URL("./fixtures/libnl_maps.ts", import.meta.url).pathname;
    const mapped = () => run(exe, "run", "--allow-ffi", "--allow-read", fixture).trim().split("\n");
    const libs = ["libnl-3.so.200", "libnl-route-3.so.200"];

    // No ipoib.d: the system's (whatever directory the dynamic linker found them in).
    const systemPaths = mapped();
    assertEquals(systemPaths.length, 2, systemPaths.join(", "));
    assert(systemPaths.every((p) => !p.startsWith(dir)));
    const system = (lib: string) => systemPaths.find((p) => p.includes(lib.replace(".so.200", ".so")))!;

    // ipoib.d with both: those, and the system's never get mapped.
    Deno.mkdirSync(`${dir}/ipoib.d`);
    for (const lib of libs) Deno.copyFileSync(system(lib), `${dir}/ipoib.d/${lib}`);
    assertEquals(mapped(), libs.map((l) => `${dir}/ipoib.d/${l}`).sort());

    // A broken private copy falls back to the system's.
    Deno.writeTextFileSync(`${dir}/ipoib.d/libnl-route-3.so.200`, "not an ELF file");
    assertEquals(mapped(), [`${dir}/ipoib.d/libnl-3.so.200`, system("libnl-route-3.so.200")].sort());
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test(
  "links: alias (IFLA_IFALIAS) set after create, survives a move out and back; IFF_RUNNING follows carrier",
  opts,
  () => {
    using a = TestNetns.createSync("nlal");
    using b = TestNetns.createSync("nlal");
    using nsB = Netns.open(b.path);
    using nsA = Netns.open(a.path);
    inNs(a, (nl) => {
      vethPair("va", "vb", a.name);
      const va = nl.getLink("va")!;
      const vb = nl.getLink("vb")!;
      // A fresh link has no alias; down, it is not running and iproute2 sees it operationally down.
      assertEquals(va.alias, null);
      assertEquals(va.flags & IFF_RUNNING, 0);
      assertEquals(operstate(a, "va"), "DOWN");
      nl.setLink(va.index, { up: true });
      nl.setLink(vb.index, { up: true });
      pollUntil("veth running", () => (nl.getLink("va")!.flags & IFF_RUNNING) !== 0);
      assertEquals(operstate(a, "va"), "UP");

      nl.createLink(macvlanLinkRequest("mv", va.index, "bridge"));
      const mv = nl.getLink("mv")!;
      assertEquals(mv.alias, null);
      nl.setLink(mv.index, { alias: "ipoib-cni test/1 é" });
      assertEquals(nl.getLink("mv")!.alias, "ipoib-cni test/1 é");
      // iproute2 reads the same attribute.
      assertEquals(
        JSON.parse(run("ip", "-n", a.name, "-j", "link", "show", "mv"))[0].ifalias,
        "ipoib-cni test/1 é",
      );
      nl.moveToNetns(mv.index, nsB.fd);
    });
    const back = inNs(b, (nl) => {
      const mv = nl.getLink("mv")!;
      assertEquals(mv.alias, "ipoib-cni test/1 é");
      nl.setLink(mv.index, { name: "eth0", up: true });
      nl.moveToNetns(mv.index, nsA.fd);
      return mv;
    });
    inNs(a, (nl) => {
      const mv = nl.getLink("eth0")!;
      assertEquals(mv.hwaddr, back.hwaddr);
      assertEquals(mv.alias, "ipoib-cni test/1 é");
      // "" removes the alias.
      nl.setLink(mv.index, { alias: "" });
      assertEquals(nl.getLink(mv.index)!.alias, null);
    });
  },
);

Deno.test(
  "routes: existing 'exclusive' (default) refuses a second route to a destination; 'create' and 'append' add it",
  opts,
  () => {
    using a = TestNetns.createSync("nlrt");
    inNs(a, (nl) => {
      vethPair("v0", "v1", a.name);
      const v0 = nl.getLink("v0")!;
      nl.setLink(v0.index, { up: true });
      nl.addAddress(v0.index, cidr("10.81.0.5/24"));
      const route = (gw: string) => ({ dst: cidr("10.82.0.0/16"), gw: ip(gw), index: v0.index, metric: 10 });
      // Read through iproute2, an observer independent of the code under test.
      const gws = () =>
        (JSON.parse(run("ip", "-n", a.name, "-j", "route", "show", "10.82.0.0/16")) as { gateway: string }[])
          .map((r) => r.gateway).sort();
      nl.addRoute(route("10.81.0.1"));
      const excl = assertThrows(() => nl.addRoute(route("10.81.0.2")), NetlinkError);
      assertEquals(excl.errno, EEXIST);
      assertEquals(gws(), ["10.81.0.1"]);
      nl.addRoute({ ...route("10.81.0.2"), existing: "create" });
      assertEquals(gws(), ["10.81.0.1", "10.81.0.2"]);
      nl.addRoute({ ...route("10.81.0.3"), existing: "append" });
      assertEquals(gws(), ["10.81.0.1", "10.81.0.2", "10.81.0.3"]);
      // An identical route is EEXIST in every mode.
      for (const existing of ["create", "append"] as const) {
        assertEquals(
          assertThrows(() => nl.addRoute({ ...route("10.81.0.1"), existing }), NetlinkError).errno,
          EEXIST,
        );
      }
    });
  },
);

/** One route of `ip -j -N -d route show table all`, with numeric type, table and scope. */
interface IpRouteJson {
  type: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table: string;
  scope: string;
  metric?: number;
  metrics?: { mtu?: number; advmss?: number }[];
  nexthops?: { gateway?: string; dev?: string }[];
}

/** iproute2's view of every route of one family in namespace `ns`, as {@link routeText} prints ours. */
function ipRoutes(ns: string, family: 4 | 6, indexOf: (dev: string) => number) {
  const routes = JSON.parse(
    run("ip", "-n", ns, `-${family}`, "-j", "-N", "-d", "route", "show", "table", "all"),
  );
  return (routes as IpRouteJson[]).flatMap((r) => {
    const all = family === 4 ? "0.0.0.0/0" : "::/0";
    const dst = r.dst === "default"
      ? all
      : r.dst.includes("/")
      ? r.dst
      : `${r.dst}/${family === 4 ? 32 : 128}`;
    const metrics = Object.assign({}, ...(r.metrics ?? []));
    const route = {
      family,
      dst,
      metric: r.metric ?? 0,
      table: Number(r.table),
      scope: Number(r.scope),
      type: Number(r.type),
      ...(metrics.mtu !== undefined ? { mtu: metrics.mtu } : {}),
      ...(metrics.advmss !== undefined ? { advmss: metrics.advmss } : {}),
    };
    return (r.nexthops ?? [{ gateway: r.gateway, dev: r.dev }]).map((nh) => ({
      ...route,
      ...(nh.dev !== undefined ? { index: indexOf(nh.dev) } : {}),
      ...(nh.gateway !== undefined ? { gw: nh.gateway } : {}),
    }));
  });
}

/** A list of routes as sorted canonical text, to compare as multisets whatever the order of keys and entries. */
function routeSet(routes: object[]): string[] {
  return routes.map((r) => JSON.stringify(Object.fromEntries(Object.entries(r).sort()))).sort();
}

Deno.test(
  "routes: listRoutes sees every route the kernel holds, as iproute2 does (routes libnl's cache merged)",
  opts,
  () => {
    using a = TestNetns.createSync("nlls");
    const ns = (...args: string[]) => run("ip", "-n", a.name, ...args);
    vethPair("v0", "v1", a.name);
    vethPair("v2", "v3", a.name);
    for (const l of ["v0", "v1", "v2", "v3"]) ns("link", "set", l, "up");
    ns("addr", "add", "10.99.0.5/24", "dev", "v0");
    ns("addr", "add", "10.98.0.5/24", "dev", "v2");
    ns("addr", "add", "fd00:99::5/64", "dev", "v0", "nodad");
    ns("addr", "add", "fd00:98::5/64", "dev", "v2", "nodad");
    // The kernel's connected route 10.99.0.0/24 and a gatewayed one appended to the same prefix (as ADD does).
    ns("route", "append", "10.99.0.0/24", "via", "10.99.0.1", "dev", "v0");
    // Two default routes via different gateways: a primary network's and a secondary's, appended.
    ns("route", "add", "default", "via", "10.99.0.1", "dev", "v0");
    ns("route", "append", "default", "via", "10.98.0.1", "dev", "v2");
    // Multipath in both families, one nexthop through each link.
    ns(
      "-6",
      "route",
      "add",
      "2001:db8:77::/64",
      "nexthop",
      "via",
      "fd00:99::1",
      "dev",
      "v0",
      "nexthop",
      "via",
      "fd00:98::1",
      "dev",
      "v2",
    );
    ns(
      "route",
      "add",
      "10.95.0.0/16",
      "nexthop",
      "via",
      "10.99.0.1",
      "dev",
      "v0",
      "nexthop",
      "via",
      "10.98.0.1",
      "dev",
      "v2",
    );
    // Other tables (1000 only fits RTA_TABLE, not rtm_table), a metric, route metrics.
    ns("route", "add", "10.97.0.0/16", "via", "10.99.0.1", "dev", "v0", "table", "100");
    ns("route", "add", "10.94.0.0/16", "dev", "v2", "table", "1000");
    ns(
      "route",
      "add",
      "10.96.0.0/16",
      "via",
      "10.99.0.1",
      "dev",
      "v0",
      "metric",
      "50",
      "mtu",
      "1300",
      "advmss",
      "1200",
    );

    inNs(a, (nl) => {
      const links = new Map(nl.listLinks().map((l) => [l.name, l.index]));
      const indexOf = (dev: string) => links.get(dev) ?? -1;
      const v0 = indexOf("v0");
      const v2 = indexOf("v2");
      const kernel4 = ipRoutes(a.name, 4, indexOf);
      const kernel6 = ipRoutes(a.name, 6, indexOf);
      const ours = nl.listRoutes().map(routeText);
      assertEquals(routeSet(ours), routeSet([...kernel4, ...kernel6]));

      // The routes libnl's cache kept only one of, each seen by both readers.
      const to = (dst: string) =>
        ours.filter((r) => r.dst === dst).map((r) => [r.gw ?? "", r.index, r.scope]);
      assertEquals(to("10.99.0.0/24").sort(), [["", v0, RT_SCOPE_LINK], [
        "10.99.0.1",
        v0,
        RT_SCOPE_UNIVERSE,
      ]]);
      assertEquals(to("0.0.0.0/0").sort(), [["10.98.0.1", v2, 0], ["10.99.0.1", v0, 0]]);
      assertEquals(to("10.95.0.0/16").sort(), [["10.98.0.1", v2, 0], ["10.99.0.1", v0, 0]]);
      assertEquals(to("2001:db8:77::/64").sort(), [["fd00:98::1", v2, 0], ["fd00:99::1", v0, 0]]);
      assertEquals(ours.find((r) => r.dst === "10.94.0.0/16")?.table, 1000);
      assertEquals(ours.find((r) => r.dst === "10.96.0.0/16"), {
        family: 4,
        dst: "10.96.0.0/16",
        gw: "10.99.0.1",
        index: v0,
        metric: 50,
        table: RT_TABLE_MAIN,
        scope: RT_SCOPE_UNIVERSE,
        type: RTN_UNICAST,
        mtu: 1300,
        advmss: 1200,
      });

      // The filters select what the full list holds, per nexthop for the interface.
      const same = (
        filter: Parameters<Netlink["listRoutes"]>[0],
        keep: (r: (typeof ours)[number]) => boolean,
      ) => assertEquals(routeSet(nl.listRoutes(filter).map(routeText)), routeSet(ours.filter(keep)));
      same({ family: 4 }, (r) => r.family === 4);
      same({ family: 6 }, (r) => r.family === 6);
      same({ table: 100 }, (r) => r.table === 100);
      same({ table: 1000 }, (r) => r.table === 1000);
      same({ index: v2 }, (r) => r.index === v2);
      same(
        { index: v0, family: 4, table: RT_TABLE_MAIN },
        (r) => r.index === v0 && r.family === 4 && r.table === RT_TABLE_MAIN,
      );
      assert(ours.filter((r) => r.index === v2).length >= 5, "v2 carries a nexthop of each multipath route");
    });
  },
);

Deno.test(
  "netns: identity by (st_dev, st_ino), whatever the path's text; Netns handle; openErrno",
  opts,
  () => {
    using a = TestNetns.createSync("nlid");
    using b = TestNetns.createSync("nlid");
    /** The identity of the namespace at `path`, through a Netns handle. */
    const idOf = (path: string) => {
      using ns = Netns.open(path);
      return ns.id();
    };
    const host = idOf("/proc/thread-self/ns/net");
    // The process's own namespace is the host's; init's is the same here (the tests share the host's PID namespace).
    assert(sameNetns(idOf("/proc/self/ns/net"), host));
    assert(sameNetns(hostNetnsId(), host));
    // Two spellings of one namespace are one identity; two namespaces are two.
    assert(sameNetns(idOf(a.path), idOf(`/run/netns/../netns/${a.name}`)));
    assert(!sameNetns(idOf(a.path), idOf(b.path)));
    assert(!sameNetns(idOf(a.path), host));
    {
      using ns = Netns.open(a.path);
      assert(sameNetns(ns.id(), idOf(a.path)));
      // Inside, the thread's namespace is A's; the host's is still known.
      ns.run(() => {
        assert(sameNetns(idOf("/proc/thread-self/ns/net"), ns.id()));
        assert(sameNetns(hostNetnsId(), host));
      });
      assert(sameNetns(idOf("/proc/thread-self/ns/net"), host));
    }
    // A path that is gone: ENOENT from open(2), through libc (Deno refuses /proc here).
    const gone = assertThrows(() => idOf("/run/netns/does-not-exist-y"), NetnsError);
    assertEquals(gone.errno, ENOENT);
    assertEquals(openErrno("/run/netns/does-not-exist-y"), Errno.ENOENT);
    assertEquals(openErrno(a.path), 0);
    // /proc/<pid>/ns/net of a process that has exited and been reaped.
    const exited = Number(run("sh", "-c", "echo $$").trim());
    assert([Errno.ENOENT, Errno.ESRCH].includes(openErrno(`/proc/${exited}/ns/net`) as 2 | 3));
    assertEquals(openErrno("/proc/self/ns/net"), 0);
    // A handle used after close is refused, not a stale fd.
    const closed = Netns.open(b.path);
    closed[Symbol.dispose]();
    closed[Symbol.dispose]();
    assertThrows(() => closed.fd, CniError, "after close");
  },
);
