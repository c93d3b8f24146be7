/**
 * The whole plugin as a process (tests/standin/main.ts: the real verbs with a macvlan-on-veth child in
 * place of IPoIB), driven like a runtime drives it, against the real kernel and Debian's Go IPAM
 * plugins, in namespaces each test creates and removes. Checks are made with iproute2, not our own code.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { pluginCommand, runPlugin } from "../../support/run.ts";
import {
  assertNothingLeft,
  cniEnv,
  hostLocal,
  type Json,
  STANDIN,
  type StandinFixture,
  withStandinFixture,
} from "../../support/fixture.ts";
import { addresses, links, routes, sh, TestNetns } from "../../support/net.ts";

const real = pluginCommand("main.ts");
const VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

type Fixture = StandinFixture;

/** Runs `body` with a fresh master of MTU `mtu`, pod namespace and host-local data dir (support/fixture.ts). */
function withFixture(body: (f: Fixture) => Promise<void>, mtu = 1500): Promise<void> {
  return withStandinFixture({ mtu, prefix: "tplg", scratch: "ipoib-plugin-" }, body);
}

function conf(f: Fixture, version: string, ipam: Json, extra: Json = {}): Json {
  return { cniVersion: version, name: "ibnet", type: "ipoib", master: f.master.name, ipam, ...extra };
}

async function add(f: Fixture, c: Json, extraEnv: Record<string, string> = {}): Promise<Json> {
  const r = await runPlugin(STANDIN, cniEnv(f, "ADD", extraEnv), JSON.stringify(c));
  assertEquals(r.code, 0, `ADD failed: ${r.stdout} ${r.stderr}`);
  return r.json as Json;
}

async function del(f: Fixture, c: Json, extraEnv: Record<string, string> = {}): Promise<void> {
  const r = await runPlugin(STANDIN, cniEnv(f, "DEL", extraEnv), JSON.stringify(c));
  assertEquals(r.code, 0, `DEL failed: ${r.stdout} ${r.stderr}`);
  assertEquals(r.stdout, "");
}

async function check(f: Fixture, c: Json, prevResult: Json): Promise<{ code: number; json: unknown }> {
  const r = await runPlugin(STANDIN, cniEnv(f, "CHECK"), JSON.stringify({ ...c, prevResult }));
  return { code: r.code, json: r.json };
}

/** The interface as iproute2 sees it inside the pod. */
async function podInterface(f: Fixture, name = "ib1") {
  const l = (await f.pod.links()).find((x) => x.ifname === name);
  if (l === undefined) throw new Error(`no ${name} in ${f.pod.name}`);
  return l;
}

/** The addresses a result of any version holds, as CIDR strings. */
function resultAddresses(result: Json): string[] {
  if (Array.isArray(result.ips)) return (result.ips as Json[]).map((ip) => ip.address as string);
  return [result.ip4, result.ip6].filter(Boolean).map((b) => (b as Json).ip as string);
}

for (const version of VERSIONS) {
  Deno.test(`ADD, CHECK, DEL, DEL with cniVersion ${version}: IPv4 with a default route`, async () => {
    await withFixture(async (f) => {
      const c = conf(
        f,
        version,
        hostLocal(f, [[{ subnet: "10.77.0.0/24", gateway: "10.77.0.1" }]], {
          routes: [{ dst: "0.0.0.0/0" }, { dst: "10.99.0.0/16", gw: "10.77.0.254" }],
        }),
      );
      const result = await add(f, c);
      assertEquals(result.cniVersion, version);

      const iface = await podInterface(f);
      assertEquals(iface.mtu, 1500);
      assert(iface.flags.includes("UP"));
      assertEquals(iface.linkinfo?.info_kind, "macvlan");
      const addrs = await addresses(f.pod.name, "ib1");
      assertEquals(addrs.map((a) => `${a.local}/${a.prefixlen}`), resultAddresses(result));
      assertMatch(addrs[0]!.local, /^10\.77\.0\.\d+$/);
      const r4 = await routes(f.pod.name, 4);
      assert(
        r4.some((r) => r.dst === "default" && r.gateway === "10.77.0.1" && r.dev === "ib1"),
        JSON.stringify(r4),
      );
      assert(r4.some((r) => r.dst === "10.99.0.0/16" && r.gateway === "10.77.0.254"), JSON.stringify(r4));
      assertEquals(f.leases.leases().length, 1);

      if (version >= "0.3.0") {
        const ifaces = result.interfaces as Json[];
        assertEquals(ifaces.length, 1);
        assertEquals(ifaces[0]!.name, "ib1");
        assertEquals(ifaces[0]!.mac, iface.address);
        assertEquals(ifaces[0]!.sandbox, f.pod.path);
        assertEquals(ifaces[0]!.mtu, version === "1.1.0" ? 1500 : undefined);
        assertEquals((result.ips as Json[])[0]!.interface, 0);
        assertEquals((result.ips as Json[])[0]!.version, version < "1.0.0" ? "4" : undefined);
        assertEquals((result.ips as Json[])[0]!.gateway, "10.77.0.1");
      } else {
        assertEquals(Object.keys(result).sort(), ["cniVersion", "dns", "ip4"]);
        assertEquals((result.ip4 as Json).gateway, "10.77.0.1");
      }
      if (version >= "0.4.0") {
        const ok = await check(f, c, result);
        assertEquals(ok.code, 0, JSON.stringify(ok.json));
      }
      await del(f, c);
      await del(f, c);
    });
  });
}

Deno.test("IPv6 only: DAD settles, the address and route are in place", async () => {
  await withFixture(async (f) => {
    const c = conf(
      f,
      "1.0.0",
      hostLocal(f, [[{ subnet: "fd77::/64", gateway: "fd77::1" }]], { routes: [{ dst: "::/0" }] }),
    );
    const result = await add(f, c);
    const addrs = await addresses(f.pod.name, "ib1");
    assertEquals(addrs.map((a) => `${a.local}/${a.prefixlen}`), resultAddresses(result));
    assert(!JSON.stringify(addrs).includes("tentative"));
    const r6 = await routes(f.pod.name, 6);
    assert(r6.some((r) => r.dst === "default" && r.gateway === "fd77::1"), JSON.stringify(r6));
    assertEquals((await check(f, c, result)).code, 0);
    await del(f, c);
  });
});

Deno.test("dual stack with cniVersion 1.1.0 (host-local predates it: the config is re-sent at 1.0.0)", async () => {
  await withFixture(async (f) => {
    const c = conf(
      f,
      "1.1.0",
      hostLocal(f, [[{ subnet: "10.78.0.0/24", gateway: "10.78.0.1" }], [{
        subnet: "fd78::/64",
        gateway: "fd78::1",
      }]], {
        routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
      }),
    );
    const result = await add(f, c);
    assertEquals(result.cniVersion, "1.1.0");
    const ips = result.ips as Json[];
    assertEquals(ips.length, 2);
    const addrs = (await addresses(f.pod.name, "ib1")).map((a) => `${a.local}/${a.prefixlen}`).sort();
    assertEquals(addrs, resultAddresses(result).sort());
    assertEquals(f.leases.leases().length, 2);
    assertEquals((await check(f, c, result)).code, 0);
    await del(f, c);
  });
});

Deno.test("static IPAM: extra routes with gateways and DNS from IPAM", async () => {
  await withFixture(async (f) => {
    const ipam = {
      type: "static",
      addresses: [{ address: "10.79.0.5/24", gateway: "10.79.0.1" }],
      routes: [{ dst: "10.80.0.0/16" }, { dst: "10.81.0.0/16", gw: "10.79.0.9" }],
      dns: { nameservers: ["10.79.0.53"], domain: "ib.example", search: ["ib.example"] },
    };
    const c = conf(f, "1.0.0", ipam);
    const result = await add(f, c);
    assertEquals(result.dns, { nameservers: ["10.79.0.53"], domain: "ib.example", search: ["ib.example"] });
    const r4 = await routes(f.pod.name, 4);
    assert(r4.some((r) => r.dst === "10.80.0.0/16" && r.gateway === "10.79.0.1"), JSON.stringify(r4));
    assert(r4.some((r) => r.dst === "10.81.0.0/16" && r.gateway === "10.79.0.9"), JSON.stringify(r4));
    assertEquals((await check(f, c, result)).code, 0);
    await del(f, c);
  });
});

Deno.test("DNS from the config replaces the IPAM plugin's", async () => {
  await withFixture(async (f) => {
    const ipam = {
      type: "static",
      addresses: [{ address: "10.79.1.5/24" }],
      dns: { nameservers: ["10.79.1.53"] },
    };
    const c = conf(f, "1.0.0", ipam, { dns: { nameservers: ["192.0.2.53"], search: ["cluster.local"] } });
    const result = await add(f, c);
    assertEquals(result.dns, { nameservers: ["192.0.2.53"], search: ["cluster.local"] });
    await del(f, c);
  });
});

Deno.test("layer 2 only (ipam {}): the interface is up with no addresses", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", {}, { mtu: 1400 });
    const result = await add(f, c);
    assertEquals(result.ips, undefined);
    const iface = await podInterface(f);
    assertEquals(iface.mtu, 1400);
    assert(iface.flags.includes("UP"));
    assertEquals(await addresses(f.pod.name, "ib1"), []);
    assertEquals((await check(f, c, result)).code, 0);
    await del(f, c);
  });
});

Deno.test("CHECK reports a missing address; an MTU changed from the configured one passes (chaining may)", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.82.0.0/24" }]]), { mtu: 1500 });
    const result = await add(f, c);
    const addr = resultAddresses(result)[0]!;
    await new Deno.Command("ip", { args: ["-n", f.pod.name, "addr", "del", addr, "dev", "ib1"] }).output();
    const missing = await check(f, c, result);
    assertEquals(missing.code, 1);
    assertEquals((missing.json as Json).code, 102);
    assertMatch((missing.json as Json).msg as string, /address .* is missing/);
    // Issue 10 item 4: a plugin chained after this one (tuning) may change the MTU; CHECK allows it.
    await new Deno.Command("ip", { args: ["-n", f.pod.name, "addr", "add", addr, "dev", "ib1"] }).output();
    await new Deno.Command("ip", { args: ["-n", f.pod.name, "link", "set", "ib1", "mtu", "1300"] }).output();
    const changed = await check(f, c, result);
    assertEquals(changed.code, 0, JSON.stringify(changed.json));
    await del(f, c);
  });
});

Deno.test("CHECK accepts an MTU changed after ADD when the config sets none (a chained plugin may)", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.82.1.0/24" }]]));
    const result = await add(f, c);
    await new Deno.Command("ip", { args: ["-n", f.pod.name, "link", "set", "ib1", "mtu", "1300"] }).output();
    const r = await check(f, c, result);
    assertEquals(r.code, 0, JSON.stringify(r.json));
    await del(f, c);
  });
});

Deno.test("CHECK reads the child's kind settings from the kernel: a wrong macvlan mode is reported", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.82.1.0/24" }]]));
    const result = await add(f, c);
    assertEquals((await check(f, c, result)).code, 0);
    // Same link, same parent, addresses, routes and MTU: only IFLA_INFO_DATA differs.
    const set = await new Deno.Command("ip", {
      args: ["-n", f.pod.name, "link", "set", "ib1", "type", "macvlan", "mode", "private"],
    }).output();
    assert(set.success, new TextDecoder().decode(set.stderr));
    assertEquals((await podInterface(f)).linkinfo?.info_data?.mode, "private");
    const wrong = await check(f, c, result);
    assertEquals(wrong.code, 1);
    assertEquals((wrong.json as Json).code, 102);
    assertEquals(
      (wrong.json as Json).msg,
      'CHECK: interface "ib1" is in macvlan mode private, expected bridge',
    );
    await del(f, c);
  });
});

Deno.test("CHECK without prevResult is refused", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", {});
    const r = await runPlugin(STANDIN, cniEnv(f, "CHECK"), JSON.stringify(c));
    assertEquals(r.code, 1);
    assertEquals((r.json as Json).code, 7);
  });
});

Deno.test("DEL succeeds when the namespace is gone or not given", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.83.0.0/24" }]]));
    await add(f, c);
    await del(f, c, { CNI_NETNS: "" });
    await del(f, c, { CNI_NETNS: "/run/netns/does-not-exist" });
    await del(f, c);
  });
});

Deno.test("an mtu above the master's is refused and nothing is created", async () => {
  await withFixture(async (f) => {
    const r = await runPlugin(STANDIN, cniEnv(f, "ADD"), JSON.stringify(conf(f, "1.0.0", {}, { mtu: 9000 })));
    assertEquals(r.code, 1);
    assertEquals((r.json as Json).msg, `mtu 9000 exceeds the MTU 1500 of master "${f.master.name}"`);
  });
});

/** A failure case: ADD must fail with `code` and a message matching `msg`, leaving nothing; DEL then succeeds. */
async function assertAddFails(
  f: Fixture,
  c: Json,
  code: number,
  msg: RegExp,
  opts: { env?: Record<string, string>; plugin?: string[] } = {},
): Promise<void> {
  const r = await runPlugin(opts.plugin ?? STANDIN, cniEnv(f, "ADD", opts.env), JSON.stringify(c));
  assertEquals(r.code, 1, r.stdout);
  assertEquals((r.json as Json).code, code, r.stdout);
  assertMatch((r.json as Json).msg as string, msg);
  assert(!/^\s+at /m.test(r.stdout + r.stderr), "stack trace printed");
  await assertNothingLeft(f);
  const d = await runPlugin(opts.plugin ?? STANDIN, cniEnv(f, "DEL", opts.env), JSON.stringify(c));
  assertEquals(d.code, 0, d.stdout);
}

Deno.test("failure: master missing", async () => {
  await withFixture(async (f) => {
    const c = { ...conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.84.0.0/24" }]])), master: "nosuchib9" };
    await assertAddFails(f, c, 7, /^master "nosuchib9" not found$/);
  });
});

Deno.test("failure: master is not IPoIB (the real plugin refuses a veth)", async () => {
  await withFixture(async (f) => {
    const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.84.1.0/24" }]]));
    await assertAddFails(f, c, 7, new RegExp(`^master "${f.master.name}" is not an IPoIB interface$`), {
      plugin: real,
    });
  });
});

Deno.test("failure: IPAM plugin missing from CNI_PATH", async () => {
  await withFixture(async (f) => {
    const empty = await Deno.makeTempDir();
    try {
      const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.84.2.0/24" }]]));
      await assertAddFails(f, c, 101, /^IPAM plugin "host-local" not found in CNI_PATH$/, {
        env: { CNI_PATH: empty },
      });
    } finally {
      await Deno.remove(empty, { recursive: true });
    }
  });
});

Deno.test("failure: IPAM plugin reports an error (range exhausted by another pod)", async () => {
  await withFixture(async (f) => {
    const c = conf(
      f,
      "1.0.0",
      hostLocal(f, [[{ subnet: "10.84.9.0/24", rangeStart: "10.84.9.7", rangeEnd: "10.84.9.7" }]]),
    );
    await using other = await TestNetns.create();
    const otherEnv = { CNI_NETNS: other.path, CNI_CONTAINERID: `ctr-${other.name}` };
    await add(f, c, otherEnv);
    const held = f.leases.leases();
    assertEquals(held, ["ibnet/10.84.9.7"]);
    // host-local reports its own failures as code 999; the plugin passes the IPAM plugin's code on.
    const r = await runPlugin(STANDIN, cniEnv(f, "ADD"), JSON.stringify(c));
    assertEquals(r.code, 1, r.stdout);
    assertEquals((r.json as Json).code, 999);
    assertMatch(
      (r.json as Json).msg as string,
      /^IPAM plugin "host-local" ADD failed: .*no IP addresses available/,
    );
    assertEquals((await f.master.children()).length, 0);
    assertEquals(await f.pod.links(), []);
    assertEquals(f.leases.leases(), held);
    await del(f, c);
    await del(f, c, otherEnv);
  });
});

Deno.test("failure: CNI_IFNAME already taken in the pod", async () => {
  await withFixture(async (f) => {
    await new Deno.Command("ip", {
      args: ["-n", f.pod.name, "link", "add", "ib1", "type", "veth", "peer", "name", "ibx"],
    })
      .output();
    const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.84.3.0/24" }]]));
    const r = await runPlugin(STANDIN, cniEnv(f, "ADD"), JSON.stringify(c));
    assertEquals(r.code, 1);
    assertEquals((r.json as Json).code, 4);
    assertMatch((r.json as Json).msg as string, /interface "ib1" already exists/);
    assertEquals((await f.master.children()).length, 0);
    assertEquals((await f.pod.links()).map((l) => l.ifname).sort(), ["ib1", "ibx"]);
    assertEquals(f.leases.leases(), []);
    await new Deno.Command("ip", { args: ["-n", f.pod.name, "link", "del", "ib1"] }).output();
  });
});

Deno.test("failure: CNI_NETNS is not a namespace (code 8), nothing created", async () => {
  await withFixture(async (f) => {
    const file = await Deno.makeTempFile();
    try {
      const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.84.4.0/24" }]]));
      const r = await runPlugin(STANDIN, cniEnv(f, "ADD", { CNI_NETNS: file }), JSON.stringify(c));
      assertEquals(r.code, 1);
      assertEquals((r.json as Json).code, 8);
      assertMatch((r.json as Json).msg as string, new RegExp(file));
      await assertNothingLeft(f);
    } finally {
      await Deno.remove(file);
    }
  });
});

Deno.test("ADD and DEL leave no link of theirs in the host", async () => {
  await withFixture(async (f) => {
    // Only what this plugin could have made is compared: other test runs may add host links meanwhile.
    const ours = async () => (await links()).map((l) => l.ifname).filter((name) => name.startsWith("ipo"));
    const before = await ours();
    const c = conf(f, "1.0.0", hostLocal(f, [[{ subnet: "10.85.0.0/24" }]]));
    await add(f, c);
    assertEquals(await ours(), before);
    assertEquals(await f.master.children(), []);
    await del(f, c);
    assertEquals(await ours(), before);
  });
});

Deno.test("failure: IPv6 duplicate address detection fails the ADD and nothing is left", async () => {
  await withFixture(async (f) => {
    // The master's veth peer already holds the address, on the same segment the child sends its probe to.
    await sh("ip", "addr", "add", "fd7a::5/64", "dev", f.master.peer, "nodad");
    const c = conf(f, "1.0.0", { type: "static", addresses: [{ address: "fd7a::5/64" }] });
    const r = await runPlugin(STANDIN, cniEnv(f, "ADD"), JSON.stringify(c));
    assertEquals(r.code, 1, r.stdout);
    assertEquals((r.json as Json).code, 100);
    assertEquals(
      (r.json as Json).msg,
      'duplicate address detection failed for fd7a::5/64 on "ib1"',
    );
    await assertNothingLeft(f);
  });
});
