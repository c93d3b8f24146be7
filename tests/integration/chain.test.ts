/**
 * What real callers send beyond a lone ADD (issue 10): routes the kernel already holds, chains with
 * prevResult before and Go's `tuning` after us, CHECK against another sandbox, IPAM results of another
 * version than the config, and IPv6 on a master without carrier. Driven through the stand-in plugin process
 * (tests/standin/main.ts) against the real kernel and Debian's Go plugins, in namespaces each test creates
 * and removes; observed with iproute2.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { runPlugin } from "../../support/run.ts";
import {
  cniEnv,
  GO_CNI,
  hostLocal,
  type Json,
  STANDIN,
  type StandinFixture,
  withStandinFixture,
} from "../../support/fixture.ts";
import { addresses, routes, sh, shQuiet, suffix, TestNetns } from "../../support/net.ts";

type Fixture = StandinFixture;

/** The world of a chain test: the pod's "eth0" is a primary network some tests add, removed with the pod. */
function withFixture(body: (f: Fixture) => Promise<void>): Promise<void> {
  return withStandinFixture({ prefix: "tchn", scratch: "ipoib-chain-", ignoreLinks: ["eth0"] }, body);
}

function conf(f: Fixture, version: string, ipam: Json, extra: Json = {}): Json {
  return {
    cniVersion: version,
    name: `chain${f.pod.name}`,
    type: "ipoib",
    master: f.master.name,
    ipam,
    ...extra,
  };
}

async function run(f: Fixture, command: string, c: Json, extraEnv: Record<string, string> = {}) {
  return await runPlugin(STANDIN, cniEnv(f, command, extraEnv), JSON.stringify(c));
}

async function add(f: Fixture, c: Json, extraEnv: Record<string, string> = {}): Promise<Json> {
  const r = await run(f, "ADD", c, extraEnv);
  assertEquals(r.code, 0, `ADD failed: ${r.stdout} ${r.stderr}`);
  return r.json as Json;
}

async function del(f: Fixture, c: Json, extraEnv: Record<string, string> = {}): Promise<void> {
  const r = await run(f, "DEL", c, extraEnv);
  assertEquals(r.code, 0, `DEL failed: ${r.stdout} ${r.stderr}`);
}

async function check(f: Fixture, c: Json, prevResult: Json) {
  const r = await run(f, "CHECK", { ...c, prevResult });
  return { code: r.code, json: r.json as Json | undefined, stderr: r.stderr };
}

async function assertCheckPasses(f: Fixture, c: Json, prevResult: Json): Promise<void> {
  const r = await check(f, c, prevResult);
  assertEquals(r.code, 0, `CHECK failed: ${JSON.stringify(r.json)} ${r.stderr}`);
}

/**
 * A primary network in the pod, as a pod's first plugin leaves it: `eth0` (a veth end) with 10.244.0.5/24,
 * fd00:244::5/64 and default routes for both families. Its peer stays on the host and goes with the pod.
 */
async function addPrimaryNetwork(f: Fixture): Promise<void> {
  const peer = `tph${suffix(5)}`;
  await sh("ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", f.pod.name);
  await sh("ip", "link", "set", peer, "up");
  await sh("ip", "-n", f.pod.name, "addr", "add", "10.244.0.5/24", "dev", "eth0");
  await sh("ip", "-n", f.pod.name, "addr", "add", "fd00:244::5/64", "dev", "eth0", "nodad");
  await sh("ip", "-n", f.pod.name, "link", "set", "eth0", "up");
  await sh("ip", "-n", f.pod.name, "route", "add", "default", "via", "10.244.0.1");
  await sh("ip", "-n", f.pod.name, "-6", "route", "add", "default", "via", "fd00:244::1");
}

/** The primary network's result, as the plugin before ours in a chain reports it. */
function primaryResult(f: Fixture): Json {
  return {
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0", sandbox: f.pod.path }],
    ips: [{ address: "10.244.0.5/24", gateway: "10.244.0.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.244.0.1" }],
    dns: { nameservers: ["10.96.0.10"], search: ["default.svc.cluster.local"] },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Item 1: a route the kernel already holds

Deno.test("ADD with a route to its own subnet (the kernel's connected route) succeeds; CHECK passes", async () => {
  // Go macvlan + host-local 1.1.1 on this input: ADD succeeds; the kernel holds
  // "10.99.0.0/24 via 10.99.0.1 dev net1" beside "10.99.0.0/24 dev net1 proto kernel scope link".
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, "10.99.0.0/24", { routes: [{ dst: "10.99.0.0/24" }] }));
    const result = await add(f, c);
    const r4 = await routes(f.pod.name, 4);
    assert(r4.some((r) => r.dst === "10.99.0.0/24" && r.gateway === "10.99.0.1" && r.dev === "ib1"));
    assert(r4.some((r) => r.dst === "10.99.0.0/24" && r.protocol === "kernel" && r.dev === "ib1"));
    assertEquals(result.routes, [{ dst: "10.99.0.0/24" }]);
    await assertCheckPasses(f, c, result);
    await del(f, c);
  });
});

Deno.test("ADD of a secondary network's default routes beside the primary network's succeeds; CHECK passes", async () => {
  // Go macvlan + host-local 1.1.1 on this input: ADD succeeds; IPv4 holds both default routes (the new one
  // first), IPv6 makes the two an ECMP route.
  await withFixture(async (f) => {
    await addPrimaryNetwork(f);
    for (
      const [subnet, dflt, family] of [["10.98.0.0/24", "0.0.0.0/0", 4], ["fd00:98::/64", "::/0", 6]] as const
    ) {
      const c = conf(f, "1.0.0", hostLocal(f, subnet, { routes: [{ dst: dflt }] }));
      const result = await add(f, c);
      const defaults = (await routes(f.pod.name, family)).filter((r) => r.dst === "default");
      const devs = defaults.flatMap((r) => r.dev ? [r.dev] : ((r.nexthops ?? []) as Json[]).map((n) => n.dev))
        .sort();
      assertEquals(devs, ["eth0", "ib1"], JSON.stringify(defaults));
      await assertCheckPasses(f, c, result);
      await del(f, c);
    }
  });
});

Deno.test("explicit-gateway default routes beside the primary network's (static IPAM): ADD and CHECK pass", async () => {
  await withFixture(async (f) => {
    await addPrimaryNetwork(f);
    const c = conf(f, "1.0.0", {
      type: "static",
      addresses: [{ address: "10.98.1.5/24" }, { address: "fd00:98:1::5/64" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.98.1.1" }, { dst: "::/0", gw: "fd00:98:1::1" }],
    });
    const result = await add(f, c);
    await assertCheckPasses(f, c, result);
    // The primary network's default routes are still there beside ours.
    assert((await routes(f.pod.name, 4)).some((r) => r.dst === "default" && r.gateway === "10.244.0.1"));
    await del(f, c);
  });
});

Deno.test("chained CHECK finds an earlier plugin's IPv4 default route via a gateway beside ours", async () => {
  // Both default routes share destination, table, tos and priority and differ only in their nexthop: libnl's
  // route cache kept one of them, so CHECK reported the other (from prevResult) missing.
  await withFixture(async (f) => {
    await addPrimaryNetwork(f);
    const c = conf(f, "1.0.0", {
      type: "static",
      addresses: [{ address: "10.98.2.5/24" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.98.2.1" }],
    });
    const result = await add(f, { ...c, prevResult: primaryResult(f) });
    assertEquals(result.routes, [{ dst: "0.0.0.0/0", gw: "10.244.0.1" }, {
      dst: "0.0.0.0/0",
      gw: "10.98.2.1",
    }]);
    const defaults = (await routes(f.pod.name, 4)).filter((r) => r.dst === "default");
    assertEquals(
      defaults.map((r) => [r.gateway, r.dev, r.metric ?? 0]).sort(),
      [["10.244.0.1", "eth0", 0], ["10.98.2.1", "ib1", 0]],
    );
    await assertCheckPasses(f, c, result);
    // A gateway the kernel does not hold is still reported missing.
    const stray = {
      ...result,
      routes: [...(result.routes as Json[]), { dst: "0.0.0.0/0", gw: "10.98.2.9" }],
    };
    const missing = await check(f, c, stray);
    assertEquals(missing.code, 1);
    assertMatch(missing.json?.msg as string, /route to 0\.0\.0\.0\/0 via 10\.98\.2\.9 is missing/);
    await del(f, { ...c, prevResult: result });
  });
});

Deno.test("ADD with the same route listed twice succeeds (the second is already there) and CHECK passes", async () => {
  // Go macvlan 1.1.1 fails this one (code 999 "file exists"); not failing is allowed, and nothing is lost.
  await withFixture(async (f) => {
    const c = conf(
      f,
      "1.0.0",
      hostLocal(f, "10.97.0.0/24", { routes: [{ dst: "10.5.0.0/16" }, { dst: "10.5.0.0/16" }] }),
    );
    const result = await add(f, c);
    const r4 = await routes(f.pod.name, 4);
    assertEquals(r4.filter((r) => r.dst === "10.5.0.0/16").length, 1);
    await assertCheckPasses(f, c, result);
    await del(f, c);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Item 3: prevResult on ADD

for (const version of ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
  Deno.test(`chained ADD (cniVersion ${version}) outputs prevResult with its own additions; CHECK passes`, async () => {
    await withFixture(async (f) => {
      await addPrimaryNetwork(f);
      const c = conf(f, version, hostLocal(f, "10.96.5.0/24", { routes: [{ dst: "10.95.0.0/16" }] }));
      const prevResult = { ...primaryResult(f), cniVersion: version };
      const result = await add(f, { ...c, prevResult });
      assertEquals(result.cniVersion, version);
      const ifaces = result.interfaces as Json[];
      assertEquals(ifaces.map((i) => i.name), ["eth0", "ib1"]);
      const ips = result.ips as Json[];
      assertEquals(ips[0]!.address, "10.244.0.5/24");
      assertEquals(ips[0]!.interface, 0);
      assertEquals(ips.length, 2);
      assertEquals(ips[1]!.interface, 1);
      assertMatch(ips[1]!.address as string, /^10\.96\.5\.\d+\/24$/);
      assertEquals(result.routes, [{ dst: "0.0.0.0/0", gw: "10.244.0.1" }, { dst: "10.95.0.0/16" }]);
      assertEquals(result.dns, primaryResult(f).dns);
      const ours = await addresses(f.pod.name, "ib1");
      assertEquals(ours.map((a) => `${a.local}/${a.prefixlen}`), [ips[1]!.address]);
      if (version >= "0.4.0") await assertCheckPasses(f, c, result);
      await del(f, { ...c, prevResult: result });
    });
  });
}

Deno.test("chained ADD in cniVersion 0.2.0 keeps prevResult's address first, as libcni's conversion does", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "0.2.0", hostLocal(f, "fd00:96::/64"));
    const prevResult = { cniVersion: "0.2.0", ip4: { ip: "10.244.0.5/24", gateway: "10.244.0.1" }, dns: {} };
    const result = await add(f, { ...c, prevResult });
    assertEquals(result.ip4, { ip: "10.244.0.5/24", gateway: "10.244.0.1" });
    assertMatch((result.ip6 as Json).ip as string, /^fd00:96::[0-9a-f]+\/64$/);
    await del(f, c);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Item 4: CHECK allows later plugins' changes and refuses another sandbox

Deno.test("CHECK passes after Go tuning, chained after us, changed the MTU from the configured one", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, "10.96.6.0/24"), { mtu: 1400 });
    const ours = await add(f, c);
    assertEquals((await f.pod.links()).find((l) => l.ifname === "ib1")?.mtu, 1400);
    const tuningConf = { cniVersion: "1.0.0", name: c.name, type: "tuning", mtu: 1300 };
    const tuned = await runPlugin(
      [`${GO_CNI}/tuning`],
      cniEnv(f, "ADD"),
      JSON.stringify({ ...tuningConf, prevResult: ours }),
    );
    assertEquals(tuned.code, 0, `tuning ADD failed: ${tuned.stdout} ${tuned.stderr}`);
    assertEquals((await f.pod.links()).find((l) => l.ifname === "ib1")?.mtu, 1300);
    // The runtime CHECKs every plugin of the chain with the chain's final result.
    await assertCheckPasses(f, c, tuned.json as Json);
    const tuningCheck = await runPlugin(
      [`${GO_CNI}/tuning`],
      cniEnv(f, "CHECK"),
      JSON.stringify({ ...tuningConf, prevResult: tuned.json }),
    );
    assertEquals(tuningCheck.code, 0, `tuning CHECK failed: ${tuningCheck.stdout} ${tuningCheck.stderr}`);
    await del(f, c);
  });
});

Deno.test("CHECK refuses a prevResult that puts our interface in another sandbox, by identity not path", async () => {
  await withFixture(async (f) => {
    await using other = await TestNetns.create("tchx");
    const c = conf(f, "1.0.0", hostLocal(f, "10.96.7.0/24"));
    const result = await add(f, c);
    const withSandbox = (sandbox: string) => ({
      ...result,
      interfaces: (result.interfaces as Json[]).map((i) => ({ ...i, sandbox })),
    });
    const wrong = await check(f, c, withSandbox(other.path));
    assertEquals(wrong.code, 1);
    assertEquals(wrong.json?.code, 102);
    assertMatch(wrong.json?.msg as string, /in sandbox .*tchx.*, not in/);
    assertEquals((await check(f, c, withSandbox("/run/netns/nonexistent-sandbox"))).json?.code, 102);

    // The same namespace by another name: a process's /proc/<pid>/ns/net.
    const sleeper = new Deno.Command("ip", { args: ["netns", "exec", f.pod.name, "sleep", "60"] }).spawn();
    try {
      let procPath = "";
      for (let i = 0; i < 500 && procPath === ""; i++) {
        const ns = await sh("ip", "netns", "identify", String(sleeper.pid)).catch(() => "");
        if (ns.trim() === f.pod.name) procPath = `/proc/${sleeper.pid}/ns/net`;
        else await new Promise((r) => setTimeout(r, 10));
      }
      assert(procPath !== "", "sleeper never entered the pod namespace");
      await assertCheckPasses(f, c, withSandbox(procPath));
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
    }
    await del(f, c);
  });
});

Deno.test("CHECK picks, among interfaces of our name, the one in our sandbox; Go macvlan does the same", async () => {
  await withFixture(async (f) => {
    await using other = await TestNetns.create("tchy");
    const c = conf(f, "1.0.0", hostLocal(f, "10.96.8.0/24"));
    const result = await add(f, c);
    // Another network's interface of the same name in another pod, listed before ours (its IP points at it).
    const withOtherFirst = (r: Json, ifname: string, otherIps: Json[]) => ({
      ...r,
      interfaces: [{ name: ifname, sandbox: other.path }, ...(r.interfaces as Json[])],
      ips: [
        ...otherIps,
        ...(r.ips as Json[]).map((ip) => ({ ...ip, interface: (ip.interface as number) + 1 })),
      ],
    });
    await assertCheckPasses(f, c, withOtherFirst(result, "ib1", []));
    await assertCheckPasses(f, c, withOtherFirst(result, "ib1", [{ address: "10.96.9.9/24", interface: 0 }]));
    // Only the other one: fails, naming its sandbox.
    const onlyOther = await check(f, c, { ...result, interfaces: [{ name: "ib1", sandbox: other.path }] });
    assertEquals(onlyOther.json?.code, 102, JSON.stringify(onlyOther.json));
    assertMatch(onlyOther.json?.msg as string, /in sandbox .*tchy.*, not in/);

    // Go macvlan 1.1.1 on the same shape of prevResult: CHECK passes (it matches the sandbox by path text).
    // With an address of the other interface it fails ("Failed to match addr"): it looks for every
    // address of the result on its own interface.
    const goEnv = (verb: string) =>
      cniEnv(f, verb, { CNI_IFNAME: "go1", CNI_CONTAINERID: `go-${f.pod.name}` });
    const goConf = { ...c, type: "macvlan" };
    const goAdd = await runPlugin([`${GO_CNI}/macvlan`], goEnv("ADD"), JSON.stringify(goConf));
    assertEquals(goAdd.code, 0, goAdd.stdout);
    const goCheck = await runPlugin(
      [`${GO_CNI}/macvlan`],
      goEnv("CHECK"),
      JSON.stringify({ ...goConf, prevResult: withOtherFirst(goAdd.json as Json, "go1", []) }),
    );
    assertEquals(goCheck.code, 0, `Go macvlan CHECK: ${goCheck.stdout}`);
    assertEquals((await runPlugin([`${GO_CNI}/macvlan`], goEnv("DEL"), JSON.stringify(goConf))).code, 0);
    await del(f, c);
  });
});

Deno.test("CHECK resolves a prevResult sandbox of /proc/self/ns/net in the plugin's namespace: not the pod", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, "10.96.10.0/24"));
    const result = await add(f, c);
    for (const path of ["/proc/self/ns/net", "/proc/thread-self/ns/net"]) {
      const r = await check(f, c, {
        ...result,
        interfaces: (result.interfaces as Json[]).map((i) => ({ ...i, sandbox: path })),
      });
      assertEquals(r.json?.code, 102, `${path}: ${JSON.stringify(r.json)} ${r.stderr}`);
      assertMatch(r.json?.msg as string, /in sandbox \/proc\/.*, not in/);
    }
    await assertCheckPasses(f, c, result);
    await del(f, c);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Item 8: IPAM results of every version under every config version

/** A fake IPAM plugin printing `result` on ADD and nothing on other verbs: no lease is held. */
async function withFakeIpam(result: Json, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ipoib-chain-ipam-" });
  try {
    await Deno.writeTextFile(`${dir}/result.json`, JSON.stringify(result));
    await Deno.writeTextFile(
      `${dir}/fixed-ipam`,
      `#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] && cat '${dir}/result.json'\nexit 0\n`,
      { mode: 0o755 },
    );
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What an IPAM plugin of `version` returns: an address, and a route in table 100 where 1.1.0 can say so. */
function ipamResult(version: string): Json {
  if (version < "0.3.0") {
    return {
      cniVersion: version,
      ip4: { ip: "10.93.0.7/24", gateway: "10.93.0.1", routes: [{ dst: "10.92.0.0/16" }] },
      dns: {},
    };
  }
  return {
    cniVersion: version,
    ips: [{ address: "10.93.0.7/24", gateway: "10.93.0.1", ...(version < "1.0.0" ? { version: "4" } : {}) }],
    routes: [{ dst: "10.92.0.0/16", ...(version === "1.1.0" ? { table: 100, priority: 7 } : {}) }],
    dns: {},
  };
}

for (const confVersion of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
  Deno.test(`config ${confVersion}: ADD (then CHECK of ADD's result) agree for IPAM results of every version`, async () => {
    for (const ipamVersion of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
      await withFakeIpam(ipamResult(ipamVersion), async (dir) => {
        await withFixture(async (f) => {
          const c = conf(f, confVersion, { type: "fixed-ipam" });
          const e = { CNI_PATH: dir };
          const result = await add(f, c, e);
          const where = `config ${confVersion}, IPAM ${ipamVersion}`;
          const inTable100 = confVersion === "1.1.0" && ipamVersion === "1.1.0";
          const r4 = await routes(f.pod.name, 4);
          const route = r4.find((r) => r.dst === "10.92.0.0/16");
          assertEquals(route?.table, inTable100 ? "100" : undefined, `${where}: ${JSON.stringify(r4)}`);
          assertEquals(route?.gateway, "10.93.0.1", where);
          const printedRoutes = confVersion < "0.3.0" ? (result.ip4 as Json).routes : result.routes;
          assertEquals(printedRoutes, [{
            dst: "10.92.0.0/16",
            ...(inTable100 ? { table: 100, priority: 7 } : {}),
          }]);
          if (confVersion < "0.4.0") return await del(f, c, e); // CHECK exists from 0.4.0 on
          const r = await runPlugin(
            STANDIN,
            cniEnv(f, "CHECK", e),
            JSON.stringify({ ...c, prevResult: result }),
          );
          assertEquals(r.code, 0, `${where}: CHECK failed: ${r.stdout} ${r.stderr}`);
          await del(f, c, e);
        });
      });
    }
  });
}

Deno.test("a 1.1.0 route of link scope without gw gets no gateway (ADD and CHECK pass); routes are proto boot as Go's", async () => {
  const ours = {
    cniVersion: "1.1.0",
    ips: [
      { address: "10.93.1.7/24", gateway: "10.93.1.1" },
      { address: "fd00:93:1::7/64", gateway: "fd00:93:1::1" },
    ],
    routes: [
      { dst: "10.92.1.0/24", scope: 253 },
      { dst: "fd00:92:1::/64", scope: 253 },
      { dst: "10.92.2.0/24" },
    ],
    dns: {},
  };
  // For Go macvlan 1.1.1 (CNI up to 1.0.0, no route scope): IPv4 only, so that its child and ours, bridged on
  // one master, do not see each other's IPv6 duplicate address detection.
  const goResult = {
    cniVersion: "1.0.0",
    ips: [{ address: "10.93.1.8/24", gateway: "10.93.1.1" }],
    routes: [{ dst: "10.92.1.0/24", scope: 253 }, { dst: "10.92.2.0/24" }],
    dns: {},
  };
  const dir = await Deno.makeTempDir({ prefix: "ipoib-chain-scope-" });
  try {
    await Deno.writeTextFile(`${dir}/ours.json`, JSON.stringify(ours));
    await Deno.writeTextFile(`${dir}/go.json`, JSON.stringify(goResult));
    await Deno.writeTextFile(
      `${dir}/scope-ipam`,
      `#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] || exit 0\n` +
        `if [ "$CNI_IFNAME" = go1 ]; then cat '${dir}/go.json'; else cat '${dir}/ours.json'; fi\n`,
      { mode: 0o755 },
    );
    await withFixture(async (f) => {
      const e = { CNI_PATH: dir };
      const c = conf(f, "1.1.0", { type: "scope-ipam" });
      const result = await add(f, c, e);
      assertEquals(result.routes, ours.routes);
      const r4 = await routes(f.pod.name, 4);
      const link4 = r4.find((r) => r.dst === "10.92.1.0/24");
      assertEquals(
        [link4?.dev, link4?.scope, link4?.gateway],
        ["ib1", "link", undefined],
        JSON.stringify(r4),
      );
      const via = r4.find((r) => r.dst === "10.92.2.0/24");
      assertEquals([via?.dev, via?.gateway], ["ib1", "10.93.1.1"]);
      const link6 = (await routes(f.pod.name, 6)).find((r) => r.dst === "fd00:92:1::/64");
      assertEquals([link6?.dev, link6?.gateway], ["ib1", undefined]);
      const check = await runPlugin(
        STANDIN,
        cniEnv(f, "CHECK", e),
        JSON.stringify({ ...c, prevResult: result }),
      );
      assertEquals(check.code, 0, `CHECK failed: ${check.stdout} ${check.stderr}`);

      // Debian's Go macvlan with a 1.0.0 config: it knows no scope and adds both routes via the gateway.
      const goEnv = (verb: string) =>
        cniEnv(f, verb, { ...e, CNI_IFNAME: "go1", CNI_CONTAINERID: `go-${f.pod.name}` });
      const goConf = { ...conf(f, "1.0.0", { type: "scope-ipam" }), type: "macvlan" };
      const go = await runPlugin([`${GO_CNI}/macvlan`], goEnv("ADD"), JSON.stringify(goConf));
      assertEquals(go.code, 0, go.stdout);
      // `ip route` shows ours as it shows Go's: both RTPROT_BOOT ("proto boot", hidden without -d).
      const detailed: Json[] = JSON.parse(
        await sh("ip", "-n", f.pod.name, "-4", "-d", "-j", "route", "show", "10.92.2.0/24"),
      );
      assertEquals(
        detailed.map((r) => [r.dev, r.protocol]).sort(),
        [["go1", "boot"], ["ib1", "boot"]],
        JSON.stringify(detailed),
      );
      assertEquals((await runPlugin([`${GO_CNI}/macvlan`], goEnv("DEL"), JSON.stringify(goConf))).code, 0);
      await del(f, c, e);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Item 10: IPv6 on a master without carrier

Deno.test("ADD with IPv6 on a master without carrier succeeds at once; the address stays tentative; CHECK passes", async () => {
  await withFixture(async (f) => {
    // A veth whose peer is down has no carrier (operstate LOWERLAYERDOWN), like an IPoIB port without link.
    await sh("ip", "link", "set", f.master.peer, "down");
    const c = conf(f, "1.0.0", hostLocal(f, "fd00:91::/64", { routes: [{ dst: "fd00:90::/64" }] }));
    const result = await add(f, c);
    const info = JSON.parse(await sh("ip", "-n", f.pod.name, "-j", "-6", "addr", "show", "dev", "ib1"));
    const global = (info[0]?.addr_info ?? []).filter((a: Json) => a.scope === "global");
    assertEquals(global.map((a: Json) => `${a.local}/${a.prefixlen}`), [(result.ips as Json[])[0]!.address]);
    assertEquals(global[0]?.tentative, true, JSON.stringify(global));
    const link = (await f.pod.links()).find((l) => l.ifname === "ib1");
    assertEquals(link?.operstate, "LOWERLAYERDOWN");
    assert((await routes(f.pod.name, 6)).some((r) => r.dst === "fd00:90::/64" && r.dev === "ib1"));
    await assertCheckPasses(f, c, result);
    await del(f, c);
    await shQuiet("ip", "link", "set", f.master.peer, "up");
  });
});
