/**
 * The in-process fuzz loop: cases [from, to) of a seed, each run through lib/cli.ts `runPlugin` with the
 * stand-in driver exactly as tests/standin/main.ts runs it, but with the case's stdin bytes and captured
 * stdout and stderr, so thousands of cases cost no process start each. A successful ADD is followed by
 * DEL, which must succeed. Uncaught exceptions and unhandled rejections are caught and reported; so is a
 * thread left in another network namespace. Writes the index of the case it is in to `progress`, prints
 * one JSON line per problem and a summary line last.
 *
 *   deno run <plugin flags> tests/fuzz/runner.ts '<fixture json>' <seed> <from> <to> <progress file>
 * @module
 */

import { runPlugin } from "../../lib/cli.ts";
import { type FuzzFixture, generateCase } from "./gen.ts";
import { errorCode, type Outcome, outcomeProblems } from "./check.ts";
import { threadNetns } from "../../support/net.ts";

/** A case taking longer than this is reported: no input may make the plugin hang. */
const CASE_LIMIT_MS = 30_000;

class Capture {
  #chunks: Uint8Array[] = [];
  writeSync(p: Uint8Array): number {
    this.#chunks.push(p.slice());
    return p.length;
  }
  text(): string {
    const all = new Uint8Array(this.#chunks.reduce((n, c) => n + c.length, 0));
    let off = 0;
    for (const c of this.#chunks) {
      all.set(c, off);
      off += c.length;
    }
    return new TextDecoder().decode(all);
  }
}

function reader(bytes: Uint8Array) {
  let off = 0;
  return {
    readSync(p: Uint8Array): number | null {
      if (off >= bytes.length) return null;
      const n = Math.min(p.length, bytes.length - off);
      p.set(bytes.subarray(off, off + n));
      off += n;
      return n;
    },
  };
}

/**
 * Descriptors this process holds: a code path that leaks one per run shows here, over thousands of runs.
 * Deno's own cache databases are left out: it opens their SQLite -wal and -shm files lazily, whenever it
 * first writes a code cache entry, which may be after the warm-up sample.
 */
async function openFds(): Promise<number> {
  const out = await new Deno.Command("ls", { args: ["-l", `/proc/${Deno.pid}/fd`], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .filter((l) => l.includes(" -> ") && !/ -> \S*\/deno\/[^/]+_v\d+(-wal|-shm)?$/.test(l)).length;
}

const wiring = { loadDriver: async () => (await import("../standin/driver.ts")).standinDriver };

async function run(env: Record<string, string>, stdin: Uint8Array): Promise<Outcome> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runPlugin([], env, wiring, { stdin: reader(stdin), stdout, stderr });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

// What a case lets escape is recorded against it; outside a case (a bug of the runner) it ends the run.
const uncaught: string[] = [];
let inCase = false;
globalThis.addEventListener("unhandledrejection", (e) => {
  if (!inCase) return;
  e.preventDefault();
  uncaught.push(`unhandled rejection: ${e.reason}`);
});
globalThis.addEventListener("error", (e) => {
  if (!inCase) return;
  e.preventDefault();
  uncaught.push(`uncaught exception: ${e.error}`);
});

const [fixtureJson, seedArg, fromArg, toArg, progress] = Deno.args;
const fx = JSON.parse(fixtureJson!) as FuzzFixture;
const seed = Number(seedArg);
const from = Number(fromArg);
const to = Number(toArg);
const hostNetns = threadNetns();
/** FUZZ_SHOW="error 100": also print every case with that outcome (for investigating, not in CI). */
const show = Deno.env.get("FUZZ_SHOW");
const byKind: Record<string, number> = {};
const byCode: Record<string, number> = {};
const msByOutcome: Record<string, number> = {};
let problems = 0;
let adds = 0;
let slowest = { index: -1, ms: 0 };
/** Counted once the lazily loaded libraries and modules are in (after the first cases), and at the end. */
let fdsWarm = -1;
const WARM_UP = 200;

for (let i = from; i < to; i++) {
  if (i === from + WARM_UP) fdsWarm = await openFds();
  Deno.writeTextFileSync(progress!, String(i));
  const c = generateCase(seed, i, fx);
  byKind[c.kind] = (byKind[c.kind] ?? 0) + 1;
  const start = performance.now();
  let found: string[];
  let o: Outcome | null = null;
  inCase = true;
  try {
    o = await run(c.env, c.stdin);
    found = outcomeProblems(c.env, o);
    const code = errorCode(o);
    const key = o.code === 0 ? `ok ${c.env.CNI_COMMAND ?? "-"}` : `error ${code}`;
    byCode[key] = (byCode[key] ?? 0) + 1;
    if (key === show) console.error(JSON.stringify({ index: i, env: c.env, stdout: o.stdout.slice(0, 300) }));
    if (o.code === 0 && c.env.CNI_COMMAND === "ADD") {
      adds++;
      const del = await run({ ...c.env, CNI_COMMAND: "DEL" }, c.stdin);
      if (del.code !== 0 || del.stdout !== "") found.push(`DEL after ADD failed: ${del.stdout}`);
    }
  } catch (e) {
    found = [`runPlugin threw: ${e instanceof Error ? e.stack : e}`];
  }
  const ms = performance.now() - start;
  const outcomeKey = o === null ? "threw" : `${o.code} ${c.env.CNI_COMMAND ?? "-"} ${errorCode(o) ?? ""}`;
  msByOutcome[outcomeKey] = Math.round((msByOutcome[outcomeKey] ?? 0) + ms);
  if (ms > slowest.ms) slowest = { index: i, ms };
  if (ms > CASE_LIMIT_MS) found.push(`took ${ms.toFixed(0)} ms`);
  // Timers and promises of the case have settled by now; give stragglers one turn.
  await new Promise((r) => setTimeout(r, 0));
  found.push(...uncaught.splice(0));
  inCase = false;
  if (threadNetns() !== hostNetns) found.push("the thread was left in another network namespace");
  if (found.length > 0) {
    problems++;
    const env = Object.fromEntries(Object.entries(c.env).map(([k, v]) => [k, v.slice(0, 200)]));
    const stdin = new TextDecoder().decode(c.stdin.subarray(0, 300));
    console.log(
      JSON.stringify({
        index: i,
        kind: c.kind,
        problems: found,
        env,
        stdin,
        stdout: o?.stdout.slice(0, 300),
      }),
    );
  }
}
const fdsEnd = await openFds();
console.log(
  JSON.stringify({
    summary: true,
    fdsWarm,
    fdsEnd,
    cases: to - from,
    problems,
    adds,
    byKind,
    byCode,
    msByOutcome,
    slowest,
  }),
);
