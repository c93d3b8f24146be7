/**
 * What the benchmark measured, the derived figures (ratios, our own overhead), the issue's targets, the
 * table printed on stdout, and building the compiled stand-in when a denort is at hand.
 * @module
 */

import { PLUGIN_FLAGS, ROOT } from "../support/run.ts";
import { round } from "./stats.ts";

/** One measured plugin: how it is run and the `type` its config names. */
export interface Plugin {
  label: string;
  type: string;
  argv: string[];
}

/** Medians of one burst size for one plugin. */
export interface BurstSummary {
  totalMs: number;
  p95AddMs: number;
  medianAddMs: number;
  errors: number;
  delErrors: number;
  runs: number;
  errorSamples: string[];
}

/** The whole result, as written to bench/results/*.json. */
export interface Report {
  date: string;
  machine: { kernel: string; cpus: number; deno: string };
  settings: { pairs: number; growthPairs: number; burstReps: number; stepRuns: number; entry: string };
  plugins: { label: string; argv: string[] }[];
  compiled: { skipped: string } | { path: string };
  /** Medians in ms: add.<label>, del.<label>, version.<label>, version.floor, ipam.*, move. */
  wall: Record<string, number>;
  /** Medians in ms of user + system CPU (with the children each run waited for): keys as in `wall`. */
  cpuMs: Record<string, number>;
  /** Medians in KiB: add.<label>, del.<label>, version.<label>, version.floor. */
  rssKb: Record<string, number>;
  steps: Record<string, number>;
  growth: { links: number; add: Record<string, number>; del: Record<string, number> }[];
  bursts: { size: number; results: Record<string, BurstSummary> }[];
  leftLeases: string[];
  durationS: number;
  samples: {
    wall: Record<string, number[]>;
    cpuMs: Record<string, number[]>;
    rssKb: Record<string, number[]>;
  };
  derived?: Derived;
}

/** Figures computed from the medians. */
export interface Derived {
  /** ours ADD - floor - go ADD - move. */
  overheadMs: number;
  ratios: Record<string, number>;
  targets: { name: string; value: string; limit: string; met: boolean }[];
}

/** The derived figures and the issue's targets for `r`. */
export function derive(r: Report): Derived {
  const w = r.wall;
  const floor = w["version.floor"]!;
  const overheadMs = round(w["add.ours"]! - floor - w["add.go"]! - w.move!, 1);
  const ratios: Record<string, number> = {
    "add ours/go": round(w["add.ours"]! / w["add.go"]!, 2),
    "del ours/go": round(w["del.ours"]! / w["del.go"]!, 2),
    "version ours/go": round(w["version.ours"]! / w["version.go"]!, 2),
    "version ours/floor": round(w["version.ours"]! / floor, 2),
    "rss add ours/floor": round(r.rssKb["add.ours"]! / r.rssKb["version.floor"]!, 2),
    "rss add ours/go": round(r.rssKb["add.ours"]! / r.rssKb["add.go"]!, 2),
  };
  if (w["add.compiled"] !== undefined) ratios["add compiled/go"] = round(w["add.compiled"] / w["add.go"]!, 2);
  const b64 = r.bursts.find((b) => b.size === 64);
  const ours64 = b64?.results.ours;
  const go64 = b64?.results.go;
  const burstRatio = ours64 && go64 ? round(ours64.totalMs / go64.totalMs, 2) : NaN;
  if (Number.isFinite(burstRatio)) ratios["burst64 ours/go"] = burstRatio;
  const targets = [
    {
      name: "our own overhead on ADD",
      value: `${overheadMs} ms`,
      limit: "<= 5 ms",
      met: overheadMs <= 5,
    },
    {
      name: "VERSION vs empty-script floor",
      value: `${ratios["version ours/floor"]}x (${w["version.ours"]} vs ${floor} ms)`,
      limit: "<= 1.2x",
      met: ratios["version ours/floor"]! <= 1.2,
    },
    {
      name: "peak RSS of ADD vs floor's",
      value: `${ratios["rss add ours/floor"]}x (${mb(r.rssKb["add.ours"]!)} vs ${
        mb(r.rssKb["version.floor"]!)
      } MB)`,
      limit: "<= 1.25x",
      met: ratios["rss add ours/floor"]! <= 1.25,
    },
    {
      name: "burst of 64: total wall vs Go's, errors",
      value: ours64 && go64
        ? `${burstRatio}x (${ours64.totalMs} vs ${go64.totalMs} ms), ${ours64.errors} errors`
        : "not measured",
      limit: "<= 3x, 0 errors",
      met: burstRatio <= 3 && ours64?.errors === 0,
    },
  ];
  return { overheadMs, ratios, targets };
}

function mb(kb: number): number {
  return round(kb / 1024, 1);
}

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

/** Prints the report's tables and target verdicts on stdout (deriving the figures when not yet done). */
export function printReport(r: Report): void {
  const d = (r.derived ??= derive(r));
  const labels = r.plugins.map((p) => p.label);
  const w = r.wall;
  console.log(
    `\nMedians over ${r.settings.pairs} interleaved runs each (${r.machine.cpus} CPUs, ` +
      `kernel ${r.machine.kernel}, Deno ${r.machine.deno}); ${r.durationS} s in all.\n`,
  );
  console.log(table(["", ...labels, "ours/go"], [
    ...["add", "del", "version"].map((v) => [
      `${v.toUpperCase()} wall (ms)`,
      ...labels.map((l) => cell(w[`${v}.${l}`])),
      ratio(w[`${v}.ours`], w[`${v}.go`]),
    ]),
    ...["add", "del", "version"].map((v) => [
      `${v.toUpperCase()} CPU, user+sys (ms)`,
      ...labels.map((l) => cell(r.cpuMs[`${v}.${l}`])),
      ratio(r.cpuMs[`${v}.ours`], r.cpuMs[`${v}.go`]),
    ]),
    ...["add", "del", "version"].map((v) => [
      `${v.toUpperCase()} peak RSS (MB)`,
      ...labels.map((l) => cell(r.rssKb[`${v}.${l}`] === undefined ? undefined : mb(r.rssKb[`${v}.${l}`]!))),
      ratio(r.rssKb[`${v}.ours`], r.rssKb[`${v}.go`]),
    ]),
  ]));
  console.log();
  console.log(table(["reference", "value"], [
    ["runtime floor: empty Deno script, same flags (ms)", w["version.floor"]!],
    ["runtime floor: CPU (ms)", r.cpuMs["version.floor"]!],
    ["runtime floor: peak RSS (MB)", mb(r.rssKb["version.floor"]!)],
    ["IPAM alone: host-local ADD + DEL (ms)", `${w["ipam.total"]} (${w["ipam.add"]} + ${w["ipam.del"]})`],
    ["kernel move of a child into the pod, one request (ms)", w.move!],
    ["  the same for 64 ADDs, serialised by the RTNL lock (ms)", round(64 * w.move!)],
    ["our own overhead on ADD = ours - floor - go - move (ms)", d.overheadMs],
  ]));
  if (r.growth.length > 0) printGrowth(r, labels);
  if (r.bursts.length > 0) printBursts(r, labels);
  if (Object.keys(r.steps).length > 0) {
    console.log();
    console.log(table(["ours: step (from its log, median)", "ms"], Object.entries(r.steps)));
  }
  console.log();
  console.log(table(
    ["target", "measured", "limit", ""],
    d.targets.map((t) => [t.name, t.value, t.limit, t.met ? "met" : "NOT MET"]),
  ));
  if (r.leftLeases.length > 0) console.log(`\nWARNING: host-local leases left: ${r.leftLeases.join(", ")}`);
  if ("skipped" in r.compiled) console.log(`\ncompiled form not measured: ${r.compiled.skipped}`);
}

function cell(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? "-" : String(v);
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined ? "-" : `${round(a / b, 2)}x`;
}

function printGrowth(r: Report, labels: string[]): void {
  console.log();
  console.log(table(
    ["unrelated host links", ...labels.map((l) => `ADD ${l}`), ...labels.map((l) => `DEL ${l}`)],
    r.growth.map((
      g,
    ) => [g.links, ...labels.map((l) => cell(g.add[l])), ...labels.map((l) => cell(g.del[l]))]),
  ));
}

function printBursts(r: Report, pluginLabels: string[]): void {
  // The floor's burst: as many empty Deno scripts started at once, what Deno alone costs at that load.
  const labels = r.bursts[0]?.results.floor ? [...pluginLabels, "floor"] : pluginLabels;
  console.log();
  console.log(table(
    [
      "burst",
      ...labels.map((l) => `total ${l}`),
      "ours/go",
      ...labels.map((l) => `p95/ADD ${l}`),
      ...labels.map((l) => `errors ${l}`),
    ],
    r.bursts.map((b) => [
      b.size,
      ...labels.map((l) => cell(b.results[l]?.totalMs)),
      ratio(b.results.ours?.totalMs, b.results.go?.totalMs),
      ...labels.map((l) => cell(b.results[l]?.p95AddMs)),
      ...labels.map((l) => `${b.results[l]?.errors ?? "-"}/${b.results[l]?.runs ?? "-"}`),
    ]),
  ));
  for (const b of r.bursts) {
    for (const [l, s] of Object.entries(b.results)) {
      for (const e of s.errorSamples) console.log(`  burst ${b.size} ${l} error: ${e.slice(0, 200)}`);
    }
  }
}

/**
 * Compiles the stand-in entry with the production flags into `dir` when DENORT_BIN names a denort
 * (deno compile cannot fetch one here). Returns its path, or why it was not built.
 */
export async function compileStandin(entry: string, dir: string): Promise<{ path: string } | string> {
  const denort = Deno.env.get("DENORT_BIN");
  if (!denort) return "DENORT_BIN is not set (deno compile needs denort, which no reachable registry has)";
  const path = `${dir}/ipoib-standin`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--quiet",
      "--frozen",
      "--exclude-unused-npm",
      ...PLUGIN_FLAGS,
      "--output",
      path,
      entry,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    return `deno compile failed: ${new TextDecoder().decode(out.stderr).trim().slice(0, 300)}`;
  }
  // A full deno binary given as DENORT_BIN compiles without complaint into an executable that ignores
  // its payload (it starts a REPL): only an answer to VERSION shows that the plugin is inside.
  const child = new Deno.Command(path, {
    env: { CNI_COMMAND: "VERSION" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(15_000),
  });
  const answer = new TextDecoder().decode(
    (await child.output().catch(() => null))?.stdout ?? new Uint8Array(),
  );
  if (!answer.includes('"supportedVersions"')) {
    return `the executable compiled with DENORT_BIN=${denort} does not answer VERSION as the plugin ` +
      `(is DENORT_BIN a full deno rather than denort?): ${JSON.stringify(answer.slice(0, 80))}`;
  }
  return { path };
}
