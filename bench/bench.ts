/**
 * `make bench`: the plugin (through the stand-in entry, with the production flags) against Debian's Go
 * `macvlan` plugin, same IPAM config and master, interleaved A/B so that machine drift cancels, medians.
 * Prints a table, writes bench/results/<stamp>.json (and latest.json) and bench/results/burst.png.
 * See bench/README.md for what each figure means and what was found. Not a test: nothing here asserts.
 *
 * Knobs (environment): QUICK=1 for fewer iterations; BENCH_PAIRS, BENCH_GROWTH_PAIRS, BENCH_BURST_REPS,
 * BENCH_STEP_RUNS to set them; BENCH_ENTRY=<path> to measure another stand-in entry as "ours";
 * BENCH_COMPARE=<label>=<path>,... to measure more entries beside it (e.g. copies of older commits, for
 * before/after figures); BENCH_PHASES=main,rss,steps,growth,bursts to run only some phases;
 * DENORT_BIN=<denort> to also measure the compiled stand-in.
 * @module
 */

import { TestLeases, TestMaster } from "../support/net.ts";
import { PLUGIN_FLAGS, ROOT } from "../support/run.ts";
import { Cleanup, makePods, makeUnrelatedLinks, measureMove } from "./fixtures.ts";
import { type Series, svgChart, writePng } from "./plot.ts";
import { haveGnuTime, type Invocation, run, runRss, runWithCpu } from "./proc.ts";
import { median, p95, round } from "./stats.ts";
import { compileStandin, derive, type Plugin, printReport, type Report } from "./report.ts";

const GO_CNI = "/usr/lib/cni";
const IFNAME = "net1";
const BURSTS = [1, 8, 32, 64];
const LINK_COUNTS = [0, 100, 1000];

function knob(name: string, quick: number, full: number): number {
  const v = Deno.env.get(name);
  if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  return Deno.env.get("QUICK") === "1" ? quick : full;
}

const PAIRS = knob("BENCH_PAIRS", 10, 30);
const GROWTH_PAIRS = knob("BENCH_GROWTH_PAIRS", 6, 20);
const BURST_REPS = knob("BENCH_BURST_REPS", 2, 5);
const STEP_RUNS = knob("BENCH_STEP_RUNS", 5, 15);
const PHASES = new Set((Deno.env.get("BENCH_PHASES") ?? "main,rss,steps,growth,bursts").split(","));

const encoder = new TextEncoder();

/** A progress line, redrawn in place on a terminal and left out of logs. */
function progress(text: string): void {
  if (Deno.stdout.isTerminal()) Deno.stdout.writeSync(encoder.encode(`\r  ${text}`));
}

/** `deno run` with the production flags, as the tests run the stand-in. */
function denoRun(entry: string): string[] {
  return [Deno.execPath(), "run", "--quiet", ...PLUGIN_FLAGS, entry];
}

interface Setup {
  master: TestMaster;
  leases: TestLeases;
  scratch: string;
}

function config(s: Setup, type: string, extra: Record<string, unknown> = {}): Uint8Array {
  return encoder.encode(JSON.stringify({
    cniVersion: "1.0.0",
    name: "benchnet",
    type,
    master: s.master.name,
    ipam: { type: "host-local", dataDir: s.leases.dir, ranges: [[{ subnet: "10.201.0.0/16" }]] },
    ...extra,
  }));
}

function cniEnv(command: string, containerId: string, netns: string): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: IFNAME,
    CNI_PATH: GO_CNI,
  };
}

/** Runs one verb of a plugin and fails loudly when it fails: the sequential phases must all succeed. */
async function verb(
  p: Plugin,
  s: Setup,
  command: string,
  id: string,
  netns: string,
  rss = false,
): Promise<{ ms: number; cpuMs: number; rssKb?: number }> {
  const inv: Invocation = { argv: p.argv, env: cniEnv(command, id, netns), stdin: config(s, p.type) };
  const { run: r, rssKb } = rss
    ? await runRss(inv, s.scratch)
    : { run: await runWithCpu(inv), rssKb: undefined };
  if (r.code !== 0) throw new Error(`${p.label} ${command} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return { ms: r.ms, cpuMs: "cpuMs" in r ? r.cpuMs as number : NaN, rssKb };
}

/** Rotates `xs` by `i`, so that no plugin always runs first (or right after another). */
function rotate<T>(xs: T[], i: number): T[] {
  const k = i % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

type Samples = Record<string, number[]>;

function push(samples: Samples, key: string, value: number): void {
  (samples[key] ??= []).push(value);
}

/** ADD, DEL and VERSION of every plugin, the floor, IPAM alone and the move: wall and CPU times, interleaved. */
async function mainPhase(s: Setup, plugins: Plugin[], floor: string[], pods: Record<string, string>) {
  const wall: Samples = {};
  const cpu: Samples = {};
  const hostLocal: Plugin = { label: "host-local", type: "host-local", argv: [`${GO_CNI}/host-local`] };
  for (let i = 0; i < PAIRS; i++) {
    for (const p of rotate(plugins, i)) {
      const id = `bench-${p.label}-${i}`;
      for (const command of ["ADD", "DEL"]) {
        const r = await verb(p, s, command, id, pods[p.label]!);
        push(wall, `${command.toLowerCase()}.${p.label}`, r.ms);
        push(cpu, `${command.toLowerCase()}.${p.label}`, r.cpuMs);
      }
    }
    for (const p of rotate([...plugins, { label: "floor", type: "", argv: floor }], i)) {
      const r = await runWithCpu({
        argv: p.argv,
        env: { CNI_COMMAND: "VERSION" },
        stdin: encoder.encode("{}"),
      });
      if (r.code !== 0) throw new Error(`${p.label} VERSION failed: ${r.stdout} ${r.stderr}`);
      push(wall, `version.${p.label}`, r.ms);
      push(cpu, `version.${p.label}`, r.cpuMs);
    }
    const ipamAdd = await verb(hostLocal, s, "ADD", `bench-ipam-${i}`, pods.go!);
    const ipamDel = await verb(hostLocal, s, "DEL", `bench-ipam-${i}`, pods.go!);
    push(wall, "ipam.add", ipamAdd.ms);
    push(wall, "ipam.del", ipamDel.ms);
    push(wall, "ipam.total", ipamAdd.ms + ipamDel.ms);
    push(wall, "move", measureMove(s.master.name, pods.ours!));
    progress(`main: ${i + 1}/${PAIRS}`);
  }
  progress("main: done\n");
  return { wall, cpu };
}

/** Peak RSS of ADD, DEL and VERSION of every plugin and of the floor, through GNU time, interleaved. */
async function rssPhase(s: Setup, plugins: Plugin[], floor: string[], pods: Record<string, string>) {
  const rss: Samples = {};
  for (let i = 0; i < PAIRS; i++) {
    for (const p of rotate(plugins, i)) {
      const id = `bench-rss-${p.label}-${i}`;
      push(rss, `add.${p.label}`, (await verb(p, s, "ADD", id, pods[p.label]!, true)).rssKb!);
      push(rss, `del.${p.label}`, (await verb(p, s, "DEL", id, pods[p.label]!, true)).rssKb!);
    }
    for (const p of rotate([...plugins, { label: "floor", type: "", argv: floor }], i)) {
      const { run: r, rssKb } = await runRss(
        { argv: p.argv, env: { CNI_COMMAND: "VERSION" }, stdin: encoder.encode("{}") },
        s.scratch,
      );
      if (r.code !== 0) throw new Error(`${p.label} VERSION failed: ${r.stdout}`);
      push(rss, `version.${p.label}`, rssKb);
    }
    progress(`rss: ${i + 1}/${PAIRS}`);
  }
  progress("rss: done\n");
  return rss;
}

/** Per-step times from the plugin's own log (logLevel info), plus the start-up before the verb began. */
async function stepsPhase(s: Setup, ours: Plugin, pod: string): Promise<Record<string, number>> {
  const log = `${s.scratch}.log`;
  const steps: Samples = {};
  for (let i = 0; i < STEP_RUNS; i++) {
    for (const command of ["ADD", "DEL"]) {
      await Deno.remove(log).catch(() => {});
      const stdin = config(s, ours.type, { logFile: log, logLevel: "info" });
      const r = await run({ argv: ours.argv, env: cniEnv(command, `bench-steps-${i}`, pod), stdin });
      if (r.code !== 0) throw new Error(`steps ${command} failed: ${r.stdout}`);
      let done = NaN;
      for (const line of (await Deno.readTextFile(log)).split("\n")) {
        const m = line.match(/ ifname=\S+ (.+?): (?:ok|done) \(([\d.]+) ms\)$/);
        if (!m) continue;
        const name = m[1]!.replace(/ipo[0-9a-f]{12}/g, "<tmp>");
        if (name === command) done = Number(m[2]);
        else push(steps, `${command} ${name}`, Number(m[2]));
      }
      push(steps, `${command} (verb total)`, done);
      push(steps, `${command} (process start to verb, and exit)`, r.ms - done);
    }
  }
  await Deno.remove(log).catch(() => {});
  return Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, round(median(v), 2)]));
}

/** ADD latency with unrelated links in the host namespace: does anything we do scale with their number? */
async function growthPhase(s: Setup, cleanup: Cleanup, plugins: Plugin[], pods: Record<string, string>) {
  const rows: { links: number; add: Record<string, number>; del: Record<string, number> }[] = [];
  for (const links of LINK_COUNTS) {
    const remove = await makeUnrelatedLinks(cleanup, links);
    const wall: Samples = {};
    try {
      for (let i = 0; i < GROWTH_PAIRS; i++) {
        for (const p of rotate(plugins, i)) {
          const id = `bench-growth-${links}-${p.label}-${i}`;
          push(wall, `add.${p.label}`, (await verb(p, s, "ADD", id, pods[p.label]!)).ms);
          push(wall, `del.${p.label}`, (await verb(p, s, "DEL", id, pods[p.label]!)).ms);
        }
      }
    } finally {
      await remove();
    }
    const med = (k: string) =>
      Object.fromEntries(plugins.map((p) => [p.label, round(median(wall[`${k}.${p.label}`]!))]));
    rows.push({ links, add: med("add"), del: med("del") });
    progress(`growth: ${links} links done\n`);
  }
  return rows;
}

interface BurstResult {
  totalMs: number[];
  perAddMs: number[];
  errors: number;
  delErrors: number;
  errorSamples: string[];
}

/** `k` concurrent ADDs (then concurrent DELs, untimed) of one plugin, one pod namespace each. */
async function burst(p: Plugin, s: Setup, k: number, rep: number, pods: string[], into: BurstResult) {
  const id = (j: number) => `bench-burst-${p.label}-${k}-${rep}-${j}`;
  const start = performance.now();
  const runs = await Promise.all(
    Array.from(
      { length: k },
      (_, j) => run({ argv: p.argv, env: cniEnv("ADD", id(j), pods[j]!), stdin: config(s, p.type) }),
    ),
  );
  into.totalMs.push(performance.now() - start);
  for (const r of runs) {
    into.perAddMs.push(r.ms);
    if (r.code !== 0) {
      into.errors++;
      if (into.errorSamples.length < 3) into.errorSamples.push(r.stdout.trim() || r.stderr.trim());
    }
  }
  if (p.type === "") return; // the floor: nothing to delete
  const dels = await Promise.all(
    Array.from(
      { length: k },
      (_, j) => run({ argv: p.argv, env: cniEnv("DEL", id(j), pods[j]!), stdin: config(s, p.type) }),
    ),
  );
  into.delErrors += dels.filter((r) => r.code !== 0).length;
}

/** Bursts of every plugin, and of the floor (the same number of empty Deno scripts started at once). */
async function burstPhase(s: Setup, plugins: Plugin[], pods: Record<string, string[]>) {
  const rows: { size: number; results: Record<string, ReturnType<typeof summariseBurst>> }[] = [];
  for (const k of BURSTS) {
    const acc: Record<string, BurstResult> = {};
    for (const p of plugins) {
      acc[p.label] = { totalMs: [], perAddMs: [], errors: 0, delErrors: 0, errorSamples: [] };
    }
    for (let rep = 0; rep < BURST_REPS; rep++) {
      for (const p of rotate(plugins, rep)) await burst(p, s, k, rep, pods[p.label]!, acc[p.label]!);
    }
    const left = await s.master.children();
    if (left.length > 0) console.error(`  burst ${k}: links left on the host: ${left.map((l) => l.ifname)}`);
    rows.push({
      size: k,
      results: Object.fromEntries(plugins.map((p) => [p.label, summariseBurst(acc[p.label]!)])),
    });
    progress(`burst: ${k} done\n`);
  }
  return rows;
}

function summariseBurst(b: BurstResult) {
  return {
    totalMs: round(median(b.totalMs)),
    p95AddMs: round(p95(b.perAddMs)),
    medianAddMs: round(median(b.perAddMs)),
    errors: b.errors,
    delErrors: b.delErrors,
    runs: b.perAddMs.length,
    errorSamples: b.errorSamples,
  };
}

function medians(samples: Samples): Record<string, number> {
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, round(median(v), 2)]));
}

async function preflight(): Promise<void> {
  if (Deno.uid() !== 0) throw new Error("make bench must run as root (it creates links and namespaces)");
  for (const f of ["macvlan", "host-local"]) {
    if (!(await Deno.stat(`${GO_CNI}/${f}`).catch(() => null))) {
      throw new Error(`${GO_CNI}/${f} missing: run make setup (Debian containernetworking-plugins)`);
    }
  }
  if (!haveGnuTime()) throw new Error("/usr/bin/time missing: install the Debian package time");
}

async function main(): Promise<void> {
  await preflight();
  const entry = Deno.env.get("BENCH_ENTRY") ?? `${ROOT}/tests/standin/main.ts`;
  const floor = denoRun(`${ROOT}/bench/empty.ts`);
  await using cleanup = new Cleanup();
  const scratchDir = await Deno.makeTempDir({ prefix: "ipoib-bench-" });
  cleanup.add(() => Deno.remove(scratchDir, { recursive: true }));

  const plugins: Plugin[] = [{ label: "ours", type: "ipoib", argv: denoRun(entry) }];
  for (const item of (Deno.env.get("BENCH_COMPARE") ?? "").split(",").filter((x) => x !== "")) {
    const [label, path] = item.split("=");
    if (!label || !path) throw new Error(`BENCH_COMPARE: "${item}" is not <label>=<path>`);
    plugins.push({ label, type: "ipoib", argv: denoRun(path) });
  }
  const compiled = await compileStandin(entry, scratchDir);
  if (typeof compiled === "string") console.log(`compiled form: skipped: ${compiled}`);
  else plugins.push({ label: "compiled", type: "ipoib", argv: [compiled.path] });
  plugins.push({ label: "go", type: "macvlan", argv: [`${GO_CNI}/macvlan`] });
  const floorPlugin: Plugin = { label: "floor", type: "", argv: floor };

  const master = await TestMaster.create();
  cleanup.add(() => master[Symbol.asyncDispose]());
  const leases = await TestLeases.create();
  cleanup.add(() => leases[Symbol.asyncDispose]());
  const s: Setup = { master, leases, scratch: `${scratchDir}/time.out` };
  const pods: Record<string, string> = {};
  const burstPods: Record<string, string[]> = {};
  for (const p of plugins) {
    const count = PHASES.has("bursts") ? Math.max(...BURSTS) : 1;
    burstPods[p.label] = await makePods(cleanup, p.label.slice(0, 1), count);
    pods[p.label] = burstPods[p.label]![0]!;
  }
  burstPods.floor = burstPods.ours!;

  console.log(
    `ipoib-cni bench: ${PAIRS} pairs, growth ${GROWTH_PAIRS} pairs at ${LINK_COUNTS.join("/")} links, ` +
      `bursts ${BURSTS.join("/")} x ${BURST_REPS}; entry ${entry}`,
  );
  for (const p of plugins) { // warm caches (code cache, page cache, host-local's store) before measuring
    for (let i = 0; i < 2; i++) {
      await verb(p, s, "ADD", `bench-warm-${i}`, pods[p.label]!);
      await verb(p, s, "DEL", `bench-warm-${i}`, pods[p.label]!);
    }
  }
  const started = performance.now();
  const { wall, cpu } = PHASES.has("main") ? await mainPhase(s, plugins, floor, pods) : { wall: {}, cpu: {} };
  const rss = PHASES.has("rss") ? await rssPhase(s, plugins, floor, pods) : {};
  const steps = PHASES.has("steps") ? await stepsPhase(s, plugins[0]!, pods.ours!) : {};
  const growth = PHASES.has("growth") ? await growthPhase(s, cleanup, plugins, pods) : [];
  const bursts = PHASES.has("bursts") ? await burstPhase(s, [...plugins, floorPlugin], burstPods) : [];
  const leftLeases = leases.leases();

  const report: Report = {
    date: new Date().toISOString(),
    machine: {
      kernel: Deno.osRelease(),
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
    },
    settings: { pairs: PAIRS, growthPairs: GROWTH_PAIRS, burstReps: BURST_REPS, stepRuns: STEP_RUNS, entry },
    plugins: plugins.map((p) => ({ label: p.label, argv: p.argv })),
    compiled: typeof compiled === "string" ? { skipped: compiled } : { path: compiled.path },
    wall: medians(wall),
    cpuMs: medians(cpu),
    rssKb: medians(rss),
    steps,
    growth,
    bursts,
    leftLeases,
    durationS: round((performance.now() - started) / 1000),
    samples: { wall, cpuMs: cpu, rssKb: rss },
  };
  report.derived = derive(report);
  const outDir = `${ROOT}/bench/results`;
  await Deno.mkdir(outDir, { recursive: true });
  const json = JSON.stringify(report, null, 2) + "\n";
  const stamp = report.date.replace(/[:.]/g, "-");
  await Deno.writeTextFile(`${outDir}/${stamp}.json`, json);
  await Deno.writeTextFile(`${outDir}/latest.json`, json);
  const pngError = await writePng(svgChart(burstChart(report)), `${outDir}/burst.png`);
  printReport(report);
  console.log(`\nresults: bench/results/${stamp}.json (also latest.json)`);
  console.log(pngError ? `plot: not written: ${pngError}` : "plot: bench/results/burst.png");
}

/** The burst plot of a report: totals and p95 per ADD by burst size, with the floor, the moves and the target. */
export function burstChart(r: Report) {
  const xs = r.bursts.map((b) => b.size);
  const ys = (label: string, key: "totalMs" | "p95AddMs") =>
    r.bursts.map((b) => b.results[label]?.[key] ?? NaN);
  const colors: Record<string, string> = { ours: "#d9480f", compiled: "#7048e8", go: "#1971c2" };
  const series: Series[] = r.plugins.flatMap((p) => [
    { label: `${p.label}: total wall`, color: colors[p.label] ?? "#333", ys: ys(p.label, "totalMs") },
    {
      label: `${p.label}: p95 per ADD`,
      color: colors[p.label] ?? "#333",
      ys: ys(p.label, "p95AddMs"),
      dash: "7 5",
    },
  ]);
  if (r.bursts[0]?.results.floor) {
    series.push({ label: "floor: empty Deno scripts", color: "#495057", ys: ys("floor", "totalMs") });
  }
  if (r.wall.move !== undefined) {
    // The RTNL lock serialises the moves: a lower bound for any create-then-move plugin.
    series.push({
      label: "k x move, serialised",
      color: "#2b8a3e",
      ys: xs.map((k) => k * r.wall.move!),
      dash: "4 3",
    });
  }
  // The target for a burst of 64: a total wall of at most three times Go's.
  series.push({
    label: "target: 3 x go total",
    color: "#868e96",
    ys: ys("go", "totalMs").map((v) => 3 * v),
    dash: "2 4",
  });
  return {
    title: "Concurrent ADDs: ipoib-cni (stand-in) vs Go macvlan",
    subtitle:
      `median of ${r.settings.burstReps} bursts each; ${r.machine.cpus} CPUs, kernel ${r.machine.kernel}, ` +
      `Deno ${r.machine.deno}; ${r.date.slice(0, 10)}`,
    xLabel: "concurrent ADDs (burst size)",
    yLabel: "milliseconds",
    xs,
    series,
  };
}

if (import.meta.main) await main();
