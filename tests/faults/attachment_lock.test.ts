/**
 * A killed ADD must not leave a lease, and ADD and DEL of one attachment must not interleave (issue 11,
 * item 4). The IPAM plugin is slow, as a remote one (whereabouts) is: a script that waits 0.4 s on ADD and
 * then runs the real host-local. A runtime SIGKILLs ADD at 100 points spread over 0 to 0.6 s and then
 * runs DEL as kubelet does; and ADD and DEL of one attachment are started together 30 times. Real kernel,
 * stand-in driver, several trials at once (each its own attachment) to keep the run short.
 */
import { assert, assertEquals } from "@std/assert";
import { type PluginRun, runPlugin, startPlugin } from "../../support/run.ts";
import { addresses } from "../../support/net.ts";
import { exists } from "../../support/fs.ts";
import { LOCK_DIR, lockFileName } from "../../support/locks.ts";
import {
  assertDelSucceeds,
  assertIpamGroupGone,
  FAULTY,
  type Fixture,
  netConf,
  waitForFile,
  withFixture,
} from "./harness.ts";
import { cniEnv, hostLocal, type Json, podLinks } from "../../support/fixture.ts";

const KILL_POINTS = 100;
const KILL_SPREAD_MS = 600;
const PAIRS = 30;
/** Trials running at once: enough to finish in well under a minute on two cores. */
const PARALLEL = 8;

/** The slow IPAM plugin; every process of it appends its pid to $FAULT_DIR/pids. */
const SLOW_IPAM = `echo $$ >> "$FAULT_DIR/pids"
[ "$CNI_COMMAND" = ADD ] && sleep 0.4
exec $GO_CNI/host-local`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One attachment of a trial: its own container id and interface name in the fixture's pod. */
function attachmentEnv(f: Fixture, command: string, n: number): Record<string, string> {
  return cniEnv(f, command, {
    CNI_CONTAINERID: `lock-${n}-${f.pod.name}`,
    CNI_IFNAME: `k${n}`,
    FAULT_DIR: f.scratch,
  });
}

/** Lease files of host-local's data dir that name container `id` (host-local writes "id\r\nifname"). */
function leasesOf(f: Fixture, id: string): string[] {
  const found: string[] = [];
  for (const net of Deno.readDirSync(f.leases.dir)) {
    if (!net.isDirectory) continue;
    for (const file of Deno.readDirSync(`${f.leases.dir}/${net.name}`)) {
      let text: string;
      try {
        text = Deno.readTextFileSync(`${f.leases.dir}/${net.name}/${file.name}`);
      } catch (e) {
        // Released by another trial's DEL between the listing and the read: not a lease any more.
        if (e instanceof Deno.errors.NotFound) continue;
        throw e;
      }
      if (text.split(/\r?\n/)[0] === id) found.push(file.name);
    }
  }
  return found;
}

/** Runs `trial(0..count-1)` with at most PARALLEL at once. */
async function inParallel(count: number, trial: (n: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await trial(next++);
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
}

/** Every process the slow IPAM plugin ran (pids file) has ended; bounded wait for ones still exiting. */
async function assertIpamProcessesGone(f: Fixture): Promise<void> {
  const pids = (await Deno.readTextFile(`${f.scratch}/pids`).catch(() => "")).split("\n").filter((l) => l);
  assert(pids.length > 0, "the IPAM plugin never ran");
  const deadline = performance.now() + 10_000;
  let alive: string[] = pids;
  while (alive.length > 0) {
    const out = await new Deno.Command("ps", {
      args: ["-o", "pid=,stat=", "-p", alive.join(",")],
      stdout: "piped",
    })
      .output();
    alive = new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim().split(/\s+/))
      .filter(([pid, stat]) => pid && stat && !stat.startsWith("Z")).map(([pid]) => pid!);
    if (alive.length === 0 || performance.now() > deadline) break;
    await sleep(20);
  }
  assertEquals(alive, [], "processes of the IPAM plugin still running");
}

function expectSuccess(r: PluginRun, what: string): void {
  assertEquals(r.code, 0, `${what}: ${r.stdout} ${r.stderr}`);
}

Deno.test(`ADD killed at ${KILL_POINTS} points during a slow IPAM run, then DEL: no lease, no process left`, async () => {
  await withFixture(async (f) => {
    await f.ipams.addScript("slow-ipam", SLOW_IPAM);
    const c = JSON.stringify(netConf(f, hostLocal(f, "10.124.16.0/24", { type: "slow-ipam" })));
    const killedDuringIpam: number[] = [];
    await inParallel(KILL_POINTS, async (n) => {
      const id = `lock-${n}-${f.pod.name}`;
      const add = startPlugin(FAULTY, attachmentEnv(f, "ADD", n), c);
      await sleep((n * KILL_SPREAD_MS) / KILL_POINTS);
      try {
        add.kill();
      } catch { /* ADD had already finished: the DEL below undoes it */ }
      const r = await add.done;
      if (r.code === 137 && leasesOf(f, id).length === 0) killedDuringIpam.push(n);
      const del = await runPlugin(FAULTY, attachmentEnv(f, "DEL", n), c);
      expectSuccess(del, `DEL after ADD killed at ${n}`);
      // DEL has returned: nothing started for this attachment may hold or take a lease any more.
      assertEquals(leasesOf(f, id), [], `lease of ${id} after DEL (ADD killed at point ${n})`);
      assert(
        !exists(`${LOCK_DIR}/${await lockFileName(id, `k${n}`)}`),
        `lock file of ${id} left`,
      );
    });
    await assertIpamProcessesGone(f);
    assertEquals(f.leases.leases(), [], "a lease taken after its DEL returned");
    assertEquals(await podLinks(f), [], "links left in the pod");
    // The kill points must really have hit ADD while the IPAM plugin had not yet allocated.
    assert(killedDuringIpam.length >= 10, `only ${killedDuringIpam.length} kills before allocation`);
  });
});

Deno.test(`ADD and DEL of one attachment started together, ${PAIRS} times: all or nothing, then nothing`, async () => {
  await withFixture(async (f) => {
    await f.ipams.addScript("slow-ipam", SLOW_IPAM);
    const c = JSON.stringify(netConf(f, hostLocal(f, "10.124.17.0/24", { type: "slow-ipam" })));
    await inParallel(PAIRS, async (n) => {
      const id = `lock-${n}-${f.pod.name}`;
      const add = startPlugin(FAULTY, attachmentEnv(f, "ADD", n), c);
      await sleep((n * KILL_SPREAD_MS) / PAIRS); // DEL arrives at a different moment of ADD each time
      const del = await runPlugin(FAULTY, attachmentEnv(f, "DEL", n), c);
      expectSuccess(del, `DEL of pair ${n}`);
      const a = await add.done;
      expectSuccess(a, `ADD of pair ${n}`);
      // Whichever ran last decides: the attachment is whole (link with its address, one lease) or gone.
      const link = (await podLinks(f)).includes(`k${n}`);
      const leases = leasesOf(f, id);
      if (link) {
        const address = (((a.json as Json).ips as Json[])[0]!.address as string).split("/")[0]!;
        const seen = (await addresses(f.pod.name, `k${n}`)).map((x) => x.local);
        assertEquals(seen, [address], `pair ${n}: link without its address`);
        assertEquals(leases, [address], `pair ${n}: link present, lease missing`);
      } else {
        assertEquals(leases, [], `pair ${n}: lease without a link`);
      }
      expectSuccess(await runPlugin(FAULTY, attachmentEnv(f, "DEL", n), c), `final DEL of pair ${n}`);
      assertEquals(leasesOf(f, id), [], `pair ${n}: lease after the final DEL`);
    });
    await assertIpamProcessesGone(f);
    assertEquals(f.leases.leases(), []);
    assertEquals(await podLinks(f), []);
  });
});

Deno.test("DEL after an ADD killed while its IPAM plugin hangs: the orphan is killed after ipamTimeout, the lease released", async () => {
  await withFixture(async (f) => {
    await f.ipams.add("paused-ipam", "pause-after-alloc"); // allocates, then waits a minute
    const c = netConf(f, hostLocal(f, "10.124.18.0/24", { type: "paused-ipam" }), { ipamTimeout: 1 });
    const add = startPlugin(FAULTY, cniEnv(f, "ADD", { FAULT_DIR: f.scratch }), JSON.stringify(c));
    await waitForFile(`${f.scratch}/paused`);
    add.kill();
    assertEquals((await add.done).code, 137);
    assertEquals(f.leases.leases().length, 1, "the orphaned IPAM plugin holds a lease");
    const del = await runPlugin(FAULTY, cniEnv(f, "DEL", { FAULT_DIR: f.scratch }), JSON.stringify(c));
    expectSuccess(del, "DEL");
    await assertIpamGroupGone(`${f.scratch}/paused`); // the orphan wrote its pid there
    assertEquals(f.leases.leases(), []);
  });
});

Deno.test("DELs each killed before ipamTimeout while a killed ADD's IPAM plugin hangs: a later one kills it and succeeds", async () => {
  await withFixture(async (f) => {
    const pidFile = await f.ipams.add("hang-ipam", "hang"); // ADD never answers, allocates nothing
    // Scaled down: ipamTimeout 3 s, the runtime kills ADD after 1 s and each DEL after 2 s.
    const c = JSON.stringify(
      netConf(f, hostLocal(f, "10.124.19.0/24", { type: "hang-ipam" }), { ipamTimeout: 3 }),
    );
    const env = (command: string) => cniEnv(f, command, { FAULT_DIR: f.scratch });
    const add = startPlugin(FAULTY, env("ADD"), c);
    await waitForFile(pidFile);
    const orphan = (await Deno.readTextFile(pidFile)).trim();
    await sleep(1000); // the runtime's deadline for ADD
    add.kill();
    assertEquals((await add.done).code, 137);
    // Each DEL waited ipamTimeout from its own start before: killed at 2 s, none ever reached it.
    let succeeded: PluginRun | null = null;
    for (let attempt = 0; attempt < 4 && succeeded === null; attempt++) {
      const del = startPlugin(FAULTY, env("DEL"), c);
      const timer = setTimeout(() => {
        try {
          del.kill();
        } catch { /* ended already */ }
      }, 2000);
      const r = await del.done;
      clearTimeout(timer);
      if (r.code === 0) succeeded = r;
    }
    assert(succeeded !== null, "no DEL succeeded: each waited for the orphan from its own start");
    assertEquals(succeeded!.stdout, "");
    await Deno.writeTextFile(`${f.scratch}/orphan`, orphan);
    await assertIpamGroupGone(`${f.scratch}/orphan`);
    assert(!exists(`${LOCK_DIR}/${await lockFileName(`ctr-${f.pod.name}`, "ib1")}`), "lock file left");
  });
});

Deno.test("a DEL waiting on a lock that changes hands gives the new holder its full ipamTimeout", async () => {
  await withFixture(async (f) => {
    // The first ADD's IPAM plugin answers "try again" after 2.5 s; the second ADD's allocates after 2.5 s.
    await f.ipams.addScript(
      "turn-ipam",
      [
        '[ "$CNI_COMMAND" = ADD ] || exec "$GO_CNI/host-local"',
        "sleep 2.5",
        'if [ ! -e "$FAULT_DIR/first" ]; then : > "$FAULT_DIR/first"',
        `  echo '{"cniVersion":"1.0.0","code":11,"msg":"busy, try again"}'; exit 1; fi`,
        'exec "$GO_CNI/host-local"',
      ].join("\n"),
    );
    const conf = netConf(f, hostLocal(f, "10.124.21.0/24", { type: "turn-ipam" }), { ipamTimeout: 3 });
    const c = JSON.stringify(conf);
    const env = (command: string) => cniEnv(f, command, { FAULT_DIR: f.scratch });
    const first = startPlugin(FAULTY, env("ADD"), c);
    await sleep(300);
    const del = startPlugin(FAULTY, env("DEL"), c);
    await sleep(500);
    // Whichever of the two waiters takes the lock when the first ADD ends, the other must wait for it.
    const second = startPlugin(FAULTY, env("ADD"), c);
    const [r1, r2, rd] = [await first.done, await second.done, await del.done];
    assertEquals(r1.code, 1, r1.stdout);
    // Before, DEL counted ipamTimeout from its own start and killed whichever ADD held the lock by then.
    assertEquals(r2.code, 0, `the second ADD was killed or failed: ${r2.code} ${r2.stdout} ${r2.stderr}`);
    assertEquals(rd.code, 0, rd.stdout + rd.stderr);
    await assertDelSucceeds(f, conf, { FAULT_DIR: f.scratch });
  });
});
