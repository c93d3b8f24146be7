/**
 * Soak: SOAK_CYCLES (default 1,000) pod lifecycles as kubelet drives them: a new network namespace, ADD,
 * DEL, namespace removed. Afterwards every count must be back at its start value: links, leases,
 * namespaces (/run/netns and `lsns -t net`) and host-wide file handles (/proc/sys/fs/file-nr; the plugin
 * is a short-lived process, so what could leak is kernel state outliving it, not its own descriptors).
 * Peak RSS of every plugin run is taken with /usr/bin/time: the last 100 runs may not grow over the first.
 */
import { assert, assertEquals } from "@std/assert";
import { runPlugin } from "../../support/run.ts";
import { links, sh, TestLeases, TestMaster, TestNetns } from "../../support/net.ts";
import { temporaryName } from "../../lib/temporary_name.ts";
import { STANDIN } from "../../support/fixture.ts";

const CYCLES = Number(Deno.env.get("SOAK_CYCLES") ?? "1000");
/**
 * Host-wide counts are exact on an idle machine such as CI's (the figures are printed); other work on a
 * shared machine moves them by tens to a few hundred (a test process holds ~100 file handles). A leak of
 * one per cycle would show CYCLES; one per four cycles still exceeds this bound.
 */
const HOST_NOISE = Math.max(200, Math.floor(CYCLES / 4));
const TIMED = ["/usr/bin/time", "-f", "%M", "-o"];

interface Counts {
  hostLinks: number;
  masterChildren: number;
  leases: number;
  runNetns: number;
  ourNetns: number;
  lsnsNet: number;
  fileHandles: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function fileHandles(): Promise<number> {
  // Deno refuses /proc without --allow-all; cat reads it as any observer would.
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) samples.push(Number((await sh("cat", "/proc/sys/fs/file-nr")).split(/\s+/)[0]));
  return median(samples);
}

async function counts(master: TestMaster, leases: TestLeases): Promise<Counts> {
  const netns = [...Deno.readDirSync("/run/netns")].map((e) => e.name);
  return {
    hostLinks: (await links()).length,
    masterChildren: (await master.children()).length,
    leases: leases.leases().length,
    runNetns: netns.length,
    ourNetns: netns.filter((n) => n.startsWith("tsoak")).length,
    lsnsNet:
      (await sh("lsns", "-n", "-t", "net", "-o", "NS")).split("\n").filter((l) => l.trim() !== "").length,
    fileHandles: await fileHandles(),
  };
}

/** Runs the plugin under /usr/bin/time; returns its outcome and peak RSS in KiB. */
async function timedRun(env: Record<string, string>, stdin: string, rssFile: string) {
  const r = await runPlugin([...TIMED, rssFile, ...STANDIN], env, stdin);
  const rss = Number((await Deno.readTextFile(rssFile)).trim().split("\n").at(-1));
  return { r, rss };
}

Deno.test(`soak: ${CYCLES} ADD/DEL cycles, each in a new namespace; every count returns to its start value`, async () => {
  await using master = await TestMaster.create();
  await using leases = await TestLeases.create();
  const rssFile = await Deno.makeTempFile({ prefix: "ipoib-soak-rss-" });
  try {
    const c = JSON.stringify({
      cniVersion: "1.1.0",
      name: "soak",
      type: "ipoib",
      master: master.name,
      ipam: {
        type: "host-local",
        dataDir: leases.dir,
        ranges: [[{ subnet: "10.124.0.0/24", gateway: "10.124.0.1" }]],
      },
    });
    const start = await counts(master, leases);
    const addRss: number[] = [];
    const delRss: number[] = [];
    const ids: string[] = [];
    const began = performance.now();
    for (let i = 0; i < CYCLES; i++) {
      await using pod = await TestNetns.create("tsoak");
      const env = {
        CNI_CONTAINERID: `soak-${i}-${pod.name}`,
        CNI_NETNS: pod.path,
        CNI_IFNAME: "ib1",
        CNI_PATH: "/usr/lib/cni",
      };
      ids.push(env.CNI_CONTAINERID);
      const a = await timedRun({ ...env, CNI_COMMAND: "ADD" }, c, rssFile);
      assertEquals(a.r.code, 0, `cycle ${i} ADD: ${a.r.stdout} ${a.r.stderr}`);
      const d = await timedRun({ ...env, CNI_COMMAND: "DEL" }, c, rssFile);
      assertEquals(d.r.code, 0, `cycle ${i} DEL: ${d.r.stdout} ${d.r.stderr}`);
      addRss.push(a.rss);
      delRss.push(d.rss);
    }
    const seconds = (performance.now() - began) / 1000;

    // Namespace teardown finishes asynchronously in the kernel: give the counts a moment to settle.
    let end = await counts(master, leases);
    for (let wait = 0; wait < 20 && end.lsnsNet !== start.lsnsNet; wait++) {
      await new Promise((r) => setTimeout(r, 250));
      end = await counts(master, leases);
    }
    const leaked = { ...start };
    for (const k of Object.keys(start) as (keyof Counts)[]) leaked[k] = end[k] - start[k];
    const hostTemp = new Set(await Promise.all(ids.map((id) => temporaryName(id, "ib1"))));
    const tempLeft = (await links()).filter((l) => hostTemp.has(l.ifname)).length;
    const firstAdd = median(addRss.slice(0, 100));
    const lastAdd = median(addRss.slice(-100));
    const firstDel = median(delRss.slice(0, 100));
    const lastDel = median(delRss.slice(-100));
    console.log(
      `soak: ${CYCLES} cycles in ${seconds.toFixed(0)} s (${
        (seconds * 1000 / CYCLES).toFixed(0)
      } ms per cycle)\n` +
        `  start ${JSON.stringify(start)}\n  end   ${JSON.stringify(end)}\n  delta ${
          JSON.stringify(leaked)
        }` +
        `; temporary links of the soak's attachments left: ${tempLeft}\n` +
        `  peak RSS KiB, median of first/last 100: ADD ${firstAdd}/${lastAdd}, DEL ${firstDel}/${lastDel}` +
        `; max ADD ${Math.max(...addRss)}, max DEL ${Math.max(...delRss)}`,
    );

    // What only this test creates must be back exactly.
    assertEquals(leaked.masterChildren, 0, "child links leaked");
    assertEquals(leaked.leases, 0, "leases leaked");
    assertEquals(leaked.ourNetns, 0, "namespaces leaked");
    assertEquals(tempLeft, 0, "temporary links leaked");
    // Host-wide counts: anything leaking per cycle would show CYCLES; other processes move them a little.
    for (const k of ["hostLinks", "runNetns", "lsnsNet", "fileHandles"] as const) {
      assert(leaked[k] < HOST_NOISE, `${k} grew by ${leaked[k]} over ${CYCLES} cycles`);
    }
    assert(lastAdd <= firstAdd * 1.1, `ADD peak RSS grew from ${firstAdd} to ${lastAdd} KiB`);
    assert(lastDel <= firstDel * 1.1, `DEL peak RSS grew from ${firstDel} to ${lastDel} KiB`);
  } finally {
    await Deno.remove(rssFile).catch(() => {});
  }
});
