/**
 * The upstream project's own example configuration (Mellanox/ipoib-cni README, "Example configuration"), read
 * from this project's README exactly as it is shown there and run as written through the stand-in plugin
 * (tests/standin/main.ts: the real verbs with a macvlan-on-veth child), next to Debian's Go macvlan on the
 * same configuration. Only `master` is replaced: no IPoIB link exists on these machines.
 *
 * The example has no `cniVersion` and no host-local `dataDir`, so its leases live in host-local's default store
 * (/var/lib/cni/networks/mynet), which other runs on this machine may share: lease checks look only at the
 * leases that name this test's container ids.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { ROOT, runPlugin } from "../../support/run.ts";
import { cniEnv, GO_CNI, type Json, STANDIN } from "../../support/fixture.ts";
import { addresses, routes, TestMaster, TestNetns } from "../../support/net.ts";

/** host-local's default lease directory for a network without `dataDir` (plugins/ipam/host-local/backend/disk). */
const LEASES = "/var/lib/cni/networks";
const HEADING = "## The upstream project's example";

/** The first ```json block after `heading` in README.md, parsed. Throws when the heading or block is missing. */
function readmeExample(heading: string): Json {
  const readme = Deno.readTextFileSync(`${ROOT}/README.md`);
  const at = readme.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`README.md has no section "${heading}"`);
  const block = readme.slice(at).match(/\n```json\n([\s\S]*?)\n```\n/);
  if (block === null) throw new Error(`README.md section "${heading}" has no json block`);
  return JSON.parse(block[1]!);
}

/** The example with the test's master in place of `ib0`, and `cniVersion` set when `version` is a string. */
function exampleOn(master: string, version: string | undefined): Json {
  const c: Json = { ...readmeExample(HEADING), master };
  if (version !== undefined) c.cniVersion = version;
  return c;
}

/** Lease files of network `name` in host-local's default store whose content names `containerId`. */
function leasesOf(name: string, containerId: string): string[] {
  const dir = `${LEASES}/${name}`;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return entries
    .filter((f) => f.isFile && f.name !== "lock" && !f.name.startsWith("last_reserved_ip"))
    .filter((f) => Deno.readTextFileSync(`${dir}/${f.name}`).split(/\s+/).includes(containerId))
    .map((f) => f.name);
}

/** The IPv4 address as a number, for range checks. */
function ipv4(text: string): number {
  return text.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

Deno.test("the README's upstream example is the upstream configuration: no cniVersion, host-local range", () => {
  // Field values of Mellanox/ipoib-cni's README (with "mtu" since its commit d330e64); the test below runs
  // whatever the README shows.
  assertEquals(readmeExample(HEADING), {
    name: "mynet",
    type: "ipoib",
    master: "ib0",
    mtu: 1496,
    ipam: {
      type: "host-local",
      subnet: "192.168.2.0/24",
      rangeStart: "192.168.2.10",
      rangeEnd: "192.168.2.216",
      routes: [{ dst: "0.0.0.0/0" }],
      gateway: "192.168.2.1",
    },
  });
});

// Absent as in the upstream README; "" as libcni sends a .conf file without one (libcni's ConfListFromConf
// and buildOneConfig inject the empty CNIVersion). Both mean 0.1.0, as for Debian's Go plugins.
for (const [label, version] of [["absent", undefined], ['""', ""]] as const) {
  Deno.test(`upstream example with cniVersion ${label}: ADD, CHECK refused as for Go, DEL, DEL`, async () => {
    await using master = await TestMaster.create();
    await using pod = await TestNetns.create("tupx");
    await using goPod = await TestNetns.create("tupg");
    const c = exampleOn(master.name, version);
    const ctr = `ctr-${pod.name}`;
    const goCtr = `ctr-${goPod.name}`;
    const name = c.name as string;
    const goConf = { ...c, type: "macvlan" };
    const goPlugin = [`${GO_CNI}/macvlan`];

    // Debian's Go macvlan + host-local on the same configuration, in a namespace of its own.
    const goAdd = await runPlugin(
      goPlugin,
      cniEnv({ pod: goPod, containerId: goCtr }, "ADD"),
      JSON.stringify(goConf),
    );
    try {
      assertEquals(goAdd.code, 0, `Go macvlan ADD failed: ${goAdd.stdout}`);
      const go = goAdd.json as Json;

      const add = await runPlugin(STANDIN, cniEnv({ pod: pod, containerId: ctr }, "ADD"), JSON.stringify(c));
      assertEquals(add.code, 0, `ADD failed: ${add.stdout} ${add.stderr}`);
      const result = add.json as Json;

      // A 0.1.0-era result, shaped as Go's: ip4 with address, gateway and routes; no interfaces or ips.
      assertEquals(result.cniVersion, "0.1.0");
      assertEquals(Object.keys(result).sort(), ["cniVersion", "dns", "ip4"]);
      assertEquals(Object.keys(result).sort(), Object.keys(go).sort());
      const ip4 = result.ip4 as Json;
      const goIp4 = go.ip4 as Json;
      assertEquals(Object.keys(ip4).sort(), Object.keys(goIp4).sort());
      assertEquals(ip4.gateway, "192.168.2.1");
      assertEquals(ip4.gateway, goIp4.gateway);
      assertEquals(ip4.routes, [{ dst: "0.0.0.0/0" }]);
      assertEquals(ip4.routes, goIp4.routes);
      assertEquals(result.dns, go.dns);
      const [ip, prefix] = (ip4.ip as string).split("/");
      assertEquals(prefix, "24");
      assert(
        ipv4(ip!) >= ipv4("192.168.2.10") && ipv4(ip!) <= ipv4("192.168.2.216"),
        `${ip} outside the range`,
      );

      // The pod as iproute2 sees it: the address, the default route via the gateway, the link up.
      const addrs = await addresses(pod.name, "ib1");
      assertEquals(addrs.map((a) => `${a.local}/${a.prefixlen}`), [ip4.ip]);
      const r4 = await routes(pod.name, 4);
      assert(
        r4.some((r) => r.dst === "default" && r.gateway === "192.168.2.1" && r.dev === "ib1"),
        JSON.stringify(r4),
      );
      const link = (await pod.links()).find((l) => l.ifname === "ib1");
      assert(link?.flags.includes("UP"), JSON.stringify(link));
      assertEquals(link?.mtu, 1496, "the example's mtu");
      assertEquals(leasesOf(name, ctr), [ip]);

      // CHECK needs 0.4.0: both plugins refuse it with error 1 and change nothing.
      const check = await runPlugin(
        STANDIN,
        cniEnv({ pod: pod, containerId: ctr }, "CHECK"),
        JSON.stringify({ ...c, prevResult: result }),
      );
      const goCheck = await runPlugin(
        goPlugin,
        cniEnv({ pod: goPod, containerId: goCtr }, "CHECK"),
        JSON.stringify({ ...goConf, prevResult: go }),
      );
      assertEquals(goCheck.code, 1, goCheck.stdout);
      assertEquals((goCheck.json as Json).code, 1);
      assertEquals(check.code, goCheck.code, check.stdout);
      assertEquals((check.json as Json).code, 1);
      assertMatch((check.json as Json).msg as string, /CHECK requires cniVersion 0\.4\.0/);
      assert(!/^\s+at /m.test(check.stdout + check.stderr), "stack trace printed");
      assertEquals((await addresses(pod.name, "ib1")).map((a) => `${a.local}/${a.prefixlen}`), [ip4.ip]);
      assertEquals(leasesOf(name, ctr), [ip]);

      // DEL removes the interface and the lease; a second DEL finds nothing and succeeds.
      for (let i = 0; i < 2; i++) {
        const del = await runPlugin(
          STANDIN,
          cniEnv({ pod: pod, containerId: ctr }, "DEL"),
          JSON.stringify(c),
        );
        assertEquals(del.code, 0, `DEL failed: ${del.stdout} ${del.stderr}`);
        assertEquals(del.stdout, "");
      }
      assertEquals((await pod.links()).map((l) => l.ifname), [], "link left in the pod namespace");
      assertEquals((await master.children()).map((l) => l.ifname), [], "child link left on the host");
      assertEquals(leasesOf(name, ctr), [], "host-local lease left");

      const goDel = await runPlugin(
        goPlugin,
        cniEnv({ pod: goPod, containerId: goCtr }, "DEL"),
        JSON.stringify(goConf),
      );
      assertEquals(goDel.code, 0, `Go macvlan DEL failed: ${goDel.stdout}`);
      assertEquals(leasesOf(name, goCtr), [], "Go's host-local lease left");
    } finally {
      // After a failed assertion: the leases live outside the namespaces, and both DELs may be repeated.
      await runPlugin(STANDIN, cniEnv({ pod: pod, containerId: ctr }, "DEL"), JSON.stringify(c));
      await runPlugin(goPlugin, cniEnv({ pod: goPod, containerId: goCtr }, "DEL"), JSON.stringify(goConf));
    }
  });
}
