/**
 * Concurrency: many plugin processes at once on one master, as a node starting many pods does. 32 ADDs at
 * once into 32 namespaces, then 32 DELs at once; then ADDs and DELs of different containers interleaved
 * while other attachments stay in place and are checked. Real kernel, stand-in driver, real host-local.
 */
import { assert, assertEquals } from "@std/assert";
import { runPlugin } from "../../support/run.ts";
import { addresses, TestLeases, TestMaster, TestNetns } from "../../support/net.ts";
import { cniEnv, STANDIN } from "../../support/fixture.ts";

const PARALLEL = 32;

type Json = Record<string, unknown>;

interface Pod {
  ns: TestNetns;
  id: string;
}

function env(pod: Pod, command: string): Record<string, string> {
  return cniEnv({ pod: pod.ns, containerId: pod.id }, command);
}

function conf(master: TestMaster, leases: TestLeases): Json {
  return {
    cniVersion: "1.0.0",
    name: "concurrent",
    type: "ipoib",
    master: master.name,
    ipam: { type: "host-local", dataDir: leases.dir, ranges: [[{ subnet: "10.123.0.0/24" }]] },
  };
}

async function add(pod: Pod, c: Json): Promise<Json> {
  const r = await runPlugin(STANDIN, env(pod, "ADD"), JSON.stringify(c));
  assertEquals(r.code, 0, `ADD ${pod.id}: ${r.stdout} ${r.stderr}`);
  return r.json as Json;
}

async function del(pod: Pod, c: Json): Promise<void> {
  const r = await runPlugin(STANDIN, env(pod, "DEL"), JSON.stringify(c));
  assertEquals(r.code, 0, `DEL ${pod.id}: ${r.stdout} ${r.stderr}`);
}

async function check(pod: Pod, c: Json, prevResult: Json): Promise<void> {
  const r = await runPlugin(STANDIN, env(pod, "CHECK"), JSON.stringify({ ...c, prevResult }));
  assertEquals(r.code, 0, `CHECK ${pod.id}: ${r.stdout}`);
}

/** The address a 1.0.0 result gives ib1. */
function addressOf(result: Json): string {
  return ((result.ips as Json[])[0]!.address as string);
}

async function withPods(
  n: number,
  body: (pods: Pod[], master: TestMaster, leases: TestLeases) => Promise<void>,
) {
  await using master = await TestMaster.create();
  await using leases = await TestLeases.create();
  const pods: Pod[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const ns = await TestNetns.create("tcon");
      pods.push({ ns, id: `con-${ns.name}` });
    }
    await body(pods, master, leases);
    assertEquals((await master.children()).map((l) => l.ifname), [], "child link left on the host");
    for (const p of pods) {
      assertEquals((await p.ns.links()).map((l) => l.ifname), [], `link left in ${p.ns.name}`);
    }
    assertEquals(leases.leases(), [], "host-local lease left");
  } finally {
    for (const p of pods) await p.ns[Symbol.asyncDispose]();
  }
}

Deno.test(`${PARALLEL} ADDs at once on one master, then ${PARALLEL} DELs at once: unique addresses, nothing left`, async () => {
  await withPods(PARALLEL, async (pods, master, leases) => {
    const c = conf(master, leases);
    const results = await Promise.all(pods.map((p) => add(p, c)));
    const addrs = results.map(addressOf);
    assertEquals(new Set(addrs).size, PARALLEL, `duplicate addresses: ${addrs.join(" ")}`);
    assertEquals(leases.leases().length, PARALLEL);
    for (const [i, p] of pods.entries()) {
      const seen = (await addresses(p.ns.name, "ib1")).map((a) => `${a.local}/${a.prefixlen}`);
      assertEquals(seen, [addrs[i]], `pod ${p.ns.name}`);
    }
    assertEquals((await master.children()).length, 0, "every child left the host");
    await Promise.all(pods.map((p) => del(p, c)));
  });
});

Deno.test("ADDs and DELs of different containers interleaved while other attachments stay and are checked", async () => {
  await withPods(32, async (pods, master, leases) => {
    const c = conf(master, leases);
    const residents = pods.slice(0, 12);
    const leaving = pods.slice(12, 20);
    const arriving = pods.slice(20, 28);
    const churning = pods.slice(28);
    const before = await Promise.all([...residents, ...leaving].map((p) => add(p, c)));
    const resident = new Map(residents.map((p, i) => [p, before[i]!]));

    // At once: some leave, some arrive, some come and go three times, and the residents are checked.
    const churn = async (p: Pod) => {
      for (let round = 0; round < 3; round++) {
        await add(p, c);
        await del(p, c);
      }
    };
    const arrived = await Promise.all([
      ...leaving.map((p) => del(p, c).then(() => null)),
      ...arriving.map((p) => add(p, c)),
      ...churning.map((p) => churn(p).then(() => null)),
      ...residents.map((p) => check(p, c, resident.get(p)!).then(() => null)),
    ]);
    const arrivedResults = arrived.filter((r): r is Json => r !== null);
    assertEquals(arrivedResults.length, arriving.length);

    // Every attachment that should be there is, with its own address; the others are gone.
    const live = [...resident.values(), ...arrivedResults].map(addressOf);
    assertEquals(new Set(live).size, live.length, `duplicate addresses: ${live.join(" ")}`);
    assertEquals(leases.leases().length, live.length);
    for (const p of residents) await check(p, c, resident.get(p)!);
    for (const p of [...leaving, ...churning]) assertEquals(await p.ns.links(), [], `${p.ns.name} not empty`);
    for (const p of arriving) assert((await p.ns.links()).some((l) => l.ifname === "ib1"));

    await Promise.all([...residents, ...arriving].map((p) => del(p, c)));
  });
});
