/**
 * The real plugin (main.ts) against a real IPoIB master, when IPOIB_TEST_MASTER names one (e.g. ib0).
 * Without it every test here is reported as ignored, never as passed: this machine has no InfiniBand.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { pluginCommand, runPlugin } from "../../support/run.ts";
import { addresses, links, sh, TestLeases, TestNetns } from "../../support/net.ts";
import { cniEnv } from "../../support/fixture.ts";

const MASTER = Deno.env.get("IPOIB_TEST_MASTER") ?? "";
const ignore = MASTER === "";
const why = ignore ? " [skipped: set IPOIB_TEST_MASTER=<IPoIB interface> to run]" : "";
const plugin = pluginCommand("main.ts");

type Json = Record<string, unknown>;

interface IpoibDetails {
  pkey?: string;
  mode?: string;
  umcast?: string;
}

/** The ipoib info_data iproute2 reports for `ifname` (pkey, mode, umcast). */
async function ipoibDetails(
  ifname: string,
  ns?: string,
): Promise<{ mtu: number; address: string } & IpoibDetails> {
  const info =
    JSON.parse(await sh("ip", ...(ns ? ["-n", ns] : []), "-d", "-j", "link", "show", "dev", ifname))[0];
  return { mtu: info.mtu, address: info.address, ...(info.linkinfo?.info_data ?? {}) };
}

async function withPod(body: (pod: TestNetns, leases: TestLeases) => Promise<void>): Promise<void> {
  await using pod = await TestNetns.create("hwpod");
  await using leases = await TestLeases.create();
  const before = (await links()).length;
  await body(pod, leases);
  assertEquals((await pod.links()).length, 0, "link left in the pod");
  assertEquals((await links()).length, before, "link left on the host");
  assertEquals(leases.leases(), [], "lease left");
}

function conf(leases: TestLeases, version: string, extra: Json = {}): Json {
  return {
    cniVersion: version,
    name: "hwnet",
    type: "ipoib",
    master: MASTER,
    ipam: { type: "host-local", dataDir: leases.dir, ranges: [[{ subnet: "10.250.0.0/24" }]] },
    ...extra,
  };
}

function env(pod: TestNetns, command: string): Record<string, string> {
  return cniEnv({ pod, containerId: `hw-${pod.name}` }, command);
}

for (const version of ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
  Deno.test({
    name: `hardware: ADD/CHECK/DEL on ${MASTER || "an IPoIB master"} with cniVersion ${version}${why}`,
    ignore,
    async fn() {
      await withPod(async (pod, leases) => {
        const parent = await ipoibDetails(MASTER);
        const c = conf(leases, version);
        const add = await runPlugin(plugin, env(pod, "ADD"), JSON.stringify(c));
        assertEquals(add.code, 0, add.stdout + add.stderr);
        const result = add.json as Json;
        const child = await ipoibDetails("ib1", pod.name);
        assertEquals(child.address.split(":").length, 20, "IPoIB hardware address has 20 octets");
        assertEquals((result.interfaces as Json[])[0]!.mac, child.address);
        assertEquals(child.pkey, parent.pkey);
        assertEquals(child.mode, parent.mode);
        assertEquals(child.umcast, "1");
        assertEquals(child.mtu, parent.mtu);
        const addrs = await addresses(pod.name, "ib1");
        assertMatch(`${addrs[0]!.local}`, /^10\.250\.0\./);
        if (version >= "0.4.0") {
          const check = await runPlugin(
            plugin,
            env(pod, "CHECK"),
            JSON.stringify({ ...c, prevResult: result }),
          );
          assertEquals(check.code, 0, check.stdout);
        }
        for (let i = 0; i < 2; i++) {
          const del = await runPlugin(plugin, env(pod, "DEL"), JSON.stringify(c));
          assertEquals(del.code, 0, del.stdout);
        }
      });
    },
  });
}

Deno.test({
  name: `hardware: a configured pkey and MTU are applied${why}`,
  ignore,
  async fn() {
    await withPod(async (pod, leases) => {
      const c = conf(leases, "1.0.0", { pkey: "0x7ffe", mtu: 1500, ipam: {} });
      const add = await runPlugin(plugin, env(pod, "ADD"), JSON.stringify(c));
      assertEquals(add.code, 0, add.stdout + add.stderr);
      const child = await ipoibDetails("ib1", pod.name);
      assertEquals(child.pkey, "0xfffe");
      assertEquals(child.mtu, 1500);
      const del = await runPlugin(plugin, env(pod, "DEL"), JSON.stringify(c));
      assertEquals(del.code, 0);
    });
  },
});

Deno.test({
  name: `hardware: STATUS reports the master available${why}`,
  ignore,
  async fn() {
    const r = await runPlugin(
      plugin,
      { CNI_COMMAND: "STATUS", CNI_PATH: "/usr/lib/cni" },
      JSON.stringify({ cniVersion: "1.1.0", name: "hwnet", type: "ipoib", master: MASTER, ipam: {} }),
    );
    assert(r.code === 0, r.stdout);
  },
});
