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
import { IFLA_MACVLAN_MODE, Netlink, NetlinkError, type RouteInfo } from "../../ffi/netlink.ts";
import { attrU32 } from "../../ffi/nlattr.ts";
import {
  closeNetns,
  currentNetns,
  NetnsError,
  openNetns,
  readSysctl,
  readSysfsNet,
  withNetns,
  writeSysctl,
} from "../../ffi/netns.ts";
import { openLibrary } from "../../ffi/load.ts";
import { run, TestNetns, uniqueName } from "./helpers_netns.ts";

const EEXIST = 17;
const ENODEV = 19;
const ENOENT = 2;
const EOPNOTSUPP = 95;
const RT_TABLE_MAIN = 254;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;

/** Opens a socket in namespace `ns`, runs `fn`, closes the socket. */
function inNs<T>(ns: TestNetns, fn: (nl: Netlink) => T): T {
  return withNetns(ns.path, () => {
    using nl = Netlink.open();
    return fn(nl);
  });
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
  using a = new TestNetns("nla");
  using b = new TestNetns("nlb");
  const hostNs = currentNetns();

  // Namespace A: the master veth pair and a macvlan child, then the child moves to B.
  const moved = inNs(a, (nl) => {
    assertNotEquals(currentNetns(), hostNs);
    nl.createVeth("va", "vb");
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

    nl.createMacvlan({ name: "mv", parentIndex: va.index, mode: "private" });
    const mv = nl.getLink("mv")!;
    assertEquals(mv.kind, "macvlan");
    assertEquals(mv.parentIndex, va.index);
    assertEquals(mv.mtu, 1500);
    assertEquals(
      nl.listLinks().map((l) => l.name).sort(),
      ["lo", "mv", "va", "vb"],
    );

    const fd = openNetns(b.path);
    try {
      nl.moveToNetns(mv.index, fd);
    } finally {
      closeNetns(fd);
    }
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
    nl.addAddress(eth7.index, "10.77.0.5/24");
    nl.addAddress(eth7.index, "fd00:77::5/64", { noDad: true });
    nl.addAddress(eth7.index, "fd00:77:0:0::6/64");
    const find = (cidr: string) => nl.listAddresses(eth7.index).find((x) => x.address === cidr);
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
    assert(nl.listAddresses().some((x) => x.index === eth7.index && x.address === "10.77.0.5/24"));
    const dup = assertThrows(() => nl.addAddress(eth7.index, "10.77.0.5/24"), NetlinkError);
    assertEquals(dup.errno, EEXIST);

    // Routes: gateway + metric + mtu + advmss, a default in another table, IPv6 default, link scope.
    nl.addRoute({
      dst: "10.78.0.0/16",
      gw: "10.77.0.1",
      index: eth7.index,
      metric: 50,
      mtu: 1300,
      advmss: 1200,
    });
    nl.addRoute({ dst: "0.0.0.0/0", gw: "10.77.0.1", index: eth7.index, table: 100 });
    nl.addRoute({ dst: "::/0", gw: "fd00:77::1", index: eth7.index, metric: 300 });
    nl.addRoute({ dst: "10.79.1.7/24", index: eth7.index, scope: RT_SCOPE_LINK }); // host bits are masked
    const v4main = nl.listRoutes({ index: eth7.index, family: 4, table: RT_TABLE_MAIN });
    const byDst = (rs: RouteInfo[], dst: string) => rs.find((r) => r.dst === dst);
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
    assertEquals(nl.listRoutes({ table: 100 }), [{
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
    // Added without NLM_F_EXCL (as Go's RouteAddEcmp): only an identical route is EEXIST; one that differs
    // (here: without the metrics) is appended beside it, as the kernel's connected route lets ADD do.
    const dupRoute = assertThrows(
      () =>
        nl.addRoute({
          dst: "10.78.0.0/16",
          gw: "10.77.0.1",
          index: eth7.index,
          metric: 50,
          mtu: 1300,
          advmss: 1200,
        }),
      NetlinkError,
    );
    assertEquals(dupRoute.errno, EEXIST);
    nl.addRoute({ dst: "10.78.0.0/16", gw: "10.77.0.1", index: eth7.index, metric: 50 });
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
  assertEquals(currentNetns(), hostNs);
});

Deno.test("link settings: raw IFLA_INFO_DATA reads a macvlan's mode (bridge 4, private 1)", opts, () => {
  using a = new TestNetns("nli");
  inNs(a, (nl) => {
    nl.createVeth("va", "vb");
    const va = nl.getLink("va")!;
    nl.createMacvlan({ name: "mvb", parentIndex: va.index, mode: "bridge" });
    nl.createMacvlan({ name: "mvp", parentIndex: va.index, mode: "private" });
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
  using a = new TestNetns("nle");
  inNs(a, (nl) => {
    nl.createVeth("v0", "v1");
    const v0 = nl.getLink("v0")!;

    const exists = assertThrows(() => nl.createVeth("v0", "v2"), NetlinkError);
    assertEquals(exists.errno, EEXIST);
    assertEquals(exists.code, ErrorCode.KernelFailure);
    assertEquals(exists.message, 'create link "v0": File exists');
    assertInstanceOf(exists, CniError);
    const macExists = assertThrows(
      () => nl.createMacvlan({ name: "v1", parentIndex: v0.index }),
      NetlinkError,
    );
    assertEquals(macExists.errno, EEXIST);

    // No InfiniBand here: the kernel refuses the kind and says so in its extended ack.
    const ib = assertThrows(
      () =>
        nl.createIpoibChild({ name: "ib0.8001", parentIndex: v0.index, pkey: 0x8001, mode: 1, umcast: true }),
      NetlinkError,
    );
    assertEquals(ib.errno, EOPNOTSUPP);
    assertEquals(ib.message, 'create link "ib0.8001": Operation not supported');
    assertEquals(ib.kernelMessage, "Unknown device type");
    assert(ib.details.includes("Unknown device type"), ib.details);
    assertEquals(nl.getLink("ib0.8001"), null);
    // Minimal request (parent's pkey, no INFO_DATA values) is refused the same way.
    const ib2 = assertThrows(() => nl.createIpoibChild({ name: "ib1", parentIndex: v0.index }), NetlinkError);
    assertEquals(ib2.kernelMessage, "Unknown device type");
    assertThrows(
      () => nl.createIpoibChild({ name: "ib2", parentIndex: v0.index, pkey: 0x10000 }),
      CniError,
      "16-bit",
    );

    // A failure does not leak into the next operation's report.
    const missing = assertThrows(() => nl.setLink(999999, { mtu: 1400 }), NetlinkError);
    assertEquals(missing.errno, ENODEV);
    assertEquals(nl.getLink(999999), null);
    assertEquals(nl.getLink("nosuchlink"), null);

    assertThrows(() => nl.addAddress(v0.index, "10.0.0.1"), CniError, "invalid CIDR");
    assertThrows(
      () => nl.addRoute({ dst: "10.0.0.0/8", gw: "fd00::1", index: v0.index }),
      CniError,
      "family",
    );
    nl.deleteLink(v0.index);
  });

  const nl = Netlink.open();
  nl.close();
  nl.close();
  assertThrows(() => nl.listLinks(), CniError, "after close");
});

Deno.test("netns: openNetns refuses what is not a network namespace (code 8)", opts, () => {
  const file = Deno.makeTempFileSync({ dir: "/tmp" });
  try {
    const notNs = assertThrows(() => openNetns(file), NetnsError);
    assertEquals(notNs.code, ErrorCode.InvalidNetns);
    assert(notNs.message.includes(file), notNs.message);
  } finally {
    Deno.removeSync(file);
  }
  const missing = assertThrows(() => openNetns("/run/netns/does-not-exist-x"), NetnsError);
  assertEquals(missing.code, ErrorCode.InvalidNetns);
  assertEquals(missing.errno, ENOENT);
  assert(missing.message.includes("/run/netns/does-not-exist-x"), missing.message);
  // Another kind of namespace is refused too.
  const uts = assertThrows(() => openNetns("/proc/self/ns/uts"), NetnsError);
  assertMatch(uts.details, /type 0x4000000/);
  // withNetns on a bad path fails before switching.
  const before = currentNetns();
  assertThrows(() => withNetns(file, () => 1), NetnsError);
  assertEquals(currentNetns(), before);
  // The process's own namespace is a network namespace.
  closeNetns(openNetns("/proc/self/ns/net"));
});

Deno.test("netns: withNetns switches, nests, and always switches back", opts, () => {
  using a = new TestNetns("nlw");
  using b = new TestNetns("nlw");
  const host = currentNetns();
  const inA = withNetns(a.path, () => currentNetns());
  assertNotEquals(inA, host);
  assertEquals(currentNetns(), host);

  assertThrows(
    () =>
      withNetns(a.path, () => {
        assertEquals(currentNetns(), inA);
        throw new Error("boom");
      }),
    Error,
    "boom",
  );
  assertEquals(currentNetns(), host);

  // By fd, and nested: the inner call returns to A, the outer to the host.
  const fd = openNetns(b.path);
  try {
    withNetns(a.path, () => {
      const inB = withNetns(fd, () => currentNetns());
      assertNotEquals(inB, inA);
      assertEquals(currentNetns(), inA);
    });
  } finally {
    closeNetns(fd);
  }
  assertEquals(currentNetns(), host);

  // Child processes started while switched run in the target namespace.
  withNetns(a.path, () => assertEquals(run("readlink", "/proc/self/ns/net").trim(), inA));

  // A Promise-returning fn is refused (after switching back).
  assertThrows(() => withNetns(a.path, () => Promise.resolve(1)), CniError, "synchronous");
  assertEquals(currentNetns(), host);
});

Deno.test("sysfs and sysctl helpers", opts, () => {
  assertEquals(readSysfsNet("lo", "mtu"), "65536");
  assertEquals(readSysfsNet("lo", "type"), "772");
  assertEquals(readSysfsNet("nosuchlink0", "mtu"), null);
  assertThrows(() => readSysfsNet("../etc", "x"), CniError);
  assertThrows(() => readSysctl("net/../../etc/passwd"), CniError);
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
      openLibrary(
        "libnosuch-ipoib.so.9",
        { f: { parameters: [], result: "void" } },
        "install the nosuch package",
      ),
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
