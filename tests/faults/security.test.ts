/**
 * Hostile input that must be refused before anything is executed or created. A canary IPAM plugin that
 * writes a marker file when run stands where a path trick would lead; after each case the marker must
 * be absent and no link or lease exist. A trace of execve shows no shell is ever involved.
 */
import { assert, assertEquals } from "@std/assert";
import { pluginCommand, runPlugin } from "../../support/run.ts";
import { sh } from "../../support/net.ts";
import { MAX_STDIN_BYTES } from "../../lib/stdin.ts";
import { assertCniError, assertDelSucceeds, FAULTY, type Fixture, netConf, withFixture } from "./harness.ts";
import { assertNothingLeft, cniEnv, hostLocal, type Json } from "../../support/fixture.ts";
import { exists } from "../../support/fs.ts";
import { GO_CNI } from "../../support/fixture.ts";

/** A canary plugin named `name` in `dir`: if anything ever runs it, `marker` appears. */
async function plantCanary(dir: string, name: string, marker: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${name}`, `#!/bin/sh\necho "$0 $CNI_COMMAND" >> '${marker}'\nexit 1\n`, {
    mode: 0o755,
  });
}

/** Runs ADD and asserts it is refused with `code`, nothing ran and nothing was created. */
async function assertRefusedUntouched(
  f: Fixture,
  stdin: string | Uint8Array,
  code: number,
  msg: RegExp,
  extraEnv: Record<string, string> = {},
): Promise<void> {
  const marker = `${f.scratch}/canary-ran`;
  const r = await runPlugin(FAULTY, cniEnv(f, "ADD", extraEnv), stdin);
  assertCniError(r, code, msg);
  assert(!exists(marker), `a canary was executed: ${exists(marker) ? Deno.readTextFileSync(marker) : ""}`);
  await assertNothingLeft(f);
}

/** A config whose IPAM plugin is the canary `type`, found through CNI_PATH in `f.scratch/bin`. */
function canaryConf(f: Fixture, type: string): Json {
  return netConf(f, hostLocal(f, "10.121.0.0/24", { type }));
}

Deno.test("an IPAM type that is a path, or holds '..' or shell syntax, is refused: nothing executed", async () => {
  await withFixture(async (f) => {
    const marker = `${f.scratch}/canary-ran`;
    // Canaries where each trick would lead: the parent of CNI_PATH, an absolute path, a name with a suffix.
    await plantCanary(f.scratch, "canary", marker);
    await plantCanary(`${f.scratch}/bin`, "canary", marker);
    const env = { CNI_PATH: `${f.scratch}/bin/sub:${GO_CNI}` };
    await Deno.mkdir(`${f.scratch}/bin/sub`);
    for (
      const type of [
        "../canary",
        "../../canary",
        `${f.scratch}/canary`,
        "sub/../../canary",
        "..",
        ".",
        "canary;touch x",
        "$(canary)",
        "`canary`",
        "canary\u0000",
        " canary",
        "-canary",
      ]
    ) {
      await assertRefusedUntouched(
        f,
        JSON.stringify(canaryConf(f, type)),
        7,
        /^invalid network configuration: field "ipam\.type" .* must be a bare plugin name, not a path$/,
        env,
      );
    }
    // The same canary by its bare name from CNI_PATH runs: the marker check above can fail.
    const ran = await runPlugin(
      FAULTY,
      cniEnv(f, "ADD", { CNI_PATH: `${f.scratch}/bin` }),
      JSON.stringify(canaryConf(f, "canary")),
    );
    assertEquals(ran.code, 1);
    assert(exists(marker), "the canary itself must work");
    await assertDelSucceeds(f, canaryConf(f, "canary"), { CNI_PATH: GO_CNI });
    await Deno.remove(marker);
  });
});

Deno.test("CNI_PATH entries that are files or relative are skipped, never searched, never a failure (as Go)", async () => {
  await withFixture(async (f) => {
    const marker = `${f.scratch}/canary-ran`;
    await plantCanary(`${f.scratch}/bin`, "host-local", marker);
    const file = `${f.scratch}/bin/host-local`;
    await sh("ln", "-s", file, `${f.scratch}/link-to-file`);
    // The plugin runs from the checkout: a relative "tests/.." entry would lead to the canary's directory.
    const relative = `${f.scratch.replace(/^\/+/, "../".repeat(Deno.cwd().split("/").length))}/bin`;
    const c = netConf(f, hostLocal(f, "10.121.0.0/24"));
    const env = { CNI_PATH: `${file}:${relative}:${f.scratch}/link-to-file:${GO_CNI}` };
    const add = await runPlugin(FAULTY, cniEnv(f, "ADD", env), JSON.stringify(c));
    assertEquals(add.code, 0, add.stdout + add.stderr);
    assert(!exists(marker), "the canary in a skipped entry ran");
    await assertDelSucceeds(f, c, env);
    assert(!exists(marker), "the canary in a skipped entry ran on DEL");
    await assertNothingLeft(f);
  });
});

Deno.test("an ifname or master that is not a valid interface name is refused, nothing created", async () => {
  await withFixture(async (f) => {
    const c = JSON.stringify(netConf(f, hostLocal(f, "10.121.1.0/24")));
    for (const ifname of ["a/b", "..", ".", "eth 0", "a:b", "x".repeat(16), "tab\tx", "ü".repeat(8)]) {
      await assertRefusedUntouched(f, c, 4, /^CNI_IFNAME ".*" /, { CNI_IFNAME: ifname });
    }
    for (const master of ["../lo", "a b", "x".repeat(16), "", "m:1", "/", "\u0000", "ü".repeat(8)]) {
      const bad = JSON.stringify({ ...netConf(f, hostLocal(f, "10.121.1.0/24")), master });
      await assertRefusedUntouched(f, bad, 7, /^invalid network configuration: field "master" /);
    }
  });
});

Deno.test("a CNI_NETNS that is a regular file behind a symlink, a FIFO or a device is refused (code 8)", async () => {
  await withFixture(async (f) => {
    const marker = `${f.scratch}/canary-ran`;
    await plantCanary(`${f.scratch}/bin`, "canary", marker);
    const c = JSON.stringify(canaryConf(f, "canary"));
    const env = (netns: string) => ({ CNI_NETNS: netns, CNI_PATH: `${f.scratch}/bin` });
    await Deno.writeTextFile(`${f.scratch}/file`, "");
    await sh("ln", "-s", `${f.scratch}/file`, `${f.scratch}/symlink`);
    await sh("mkfifo", `${f.scratch}/fifo`); // opening it blocking would wait forever for a writer
    for (const netns of [`${f.scratch}/symlink`, `${f.scratch}/fifo`, "/dev/null", "/dev/zero"]) {
      await assertRefusedUntouched(f, c, 8, /is not a network namespace$/, env(netns));
      const d = await runPlugin(FAULTY, cniEnv(f, "DEL", { CNI_NETNS: netns, CNI_PATH: GO_CNI }), c);
      assertEquals(d.code, 0, d.stdout);
    }
    await sh("ln", "-s", `${f.scratch}/nothing`, `${f.scratch}/dangling`);
    await assertRefusedUntouched(f, c, 8, /does not exist$/, env(`${f.scratch}/dangling`));
  });
});

Deno.test(`stdin above ${MAX_STDIN_BYTES} bytes is refused before anything runs; exactly that size is read`, async () => {
  await withFixture(async (f) => {
    const marker = `${f.scratch}/canary-ran`;
    await plantCanary(`${f.scratch}/bin`, "canary", marker);
    const c = JSON.stringify(canaryConf(f, "canary"));
    const padded = (size: number) => c + " ".repeat(size - c.length);
    await assertRefusedUntouched(f, padded(MAX_STDIN_BYTES + 1), 7, /exceeds 1048576 bytes$/, {
      CNI_PATH: `${f.scratch}/bin`,
    });
    await assertRefusedUntouched(f, padded(10 * MAX_STDIN_BYTES), 7, /exceeds 1048576 bytes$/, {
      CNI_PATH: `${f.scratch}/bin`,
    });
    // At the limit the config is read and used: a real ADD and DEL with a 1 MiB config.
    const full = JSON.stringify(netConf(f, hostLocal(f, "10.121.2.0/24")));
    const ok = await runPlugin(FAULTY, cniEnv(f, "ADD"), full + " ".repeat(MAX_STDIN_BYTES - full.length));
    assertEquals(ok.code, 0, ok.stdout);
    await assertDelSucceeds(f, JSON.parse(full));
  });
});

/** Paths passed to a successful execve, from an strace log of `-f -e trace=execve`. */
function executed(trace: string): string[] {
  return [...trace.matchAll(/execve\("([^"]+)", .* = 0$/gm)].map((m) => m[1]!);
}

Deno.test("no shell is involved: a traced ADD and DEL execute only Deno and the IPAM binary", async () => {
  await withFixture(async (f) => {
    const c = JSON.stringify(netConf(f, hostLocal(f, "10.121.3.0/24")));
    for (const verb of ["ADD", "DEL"]) {
      const log = `${f.scratch}/strace-${verb}`;
      const traced = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", log, ...FAULTY];
      const r = await runPlugin(traced, cniEnv(f, verb, { CNI_PATH: GO_CNI }), c);
      assertEquals(r.code, 0, r.stdout + r.stderr);
      const paths = new Set(executed(await Deno.readTextFile(log)));
      assertEquals([...paths].sort(), [Deno.execPath(), `${GO_CNI}/host-local`].sort());
    }
  });
});

/**
 * A wrapper script named `name` in `dir` that execs this plugin (the stand-in with fault injection, production
 * flags), as an operator's wrapper would; each run appends its verb to `counter`.
 */
async function plantWrapper(dir: string, name: string, counter: string): Promise<void> {
  const argv = pluginCommand("tests/faults/plugin.ts").map((a) => `'${a}'`).join(" ");
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/${name}`,
    `#!/bin/sh\necho "$CNI_COMMAND" >> '${counter}'\nexec ${argv} "$@"\n`,
    {
      mode: 0o755,
    },
  );
}

/** The verbs the wrapper ran for, in order. */
function wrapperRuns(counter: string): string[] {
  return exists(counter) ? Deno.readTextFileSync(counter).split("\n").filter((l) => l !== "") : [];
}

for (const how of ["a wrapper script of another name", "a symlink of another name"] as const) {
  Deno.test(`ipam.type that runs this plugin through ${how}: refused at once on every verb, DEL succeeds`, async () => {
    await withFixture(async (f) => {
      const counter = `${f.scratch}/runs`;
      const bin = `${f.scratch}/bin`;
      await plantWrapper(bin, "ipam-wrap", counter);
      const type = how.startsWith("a symlink") ? "ipam-link" : "ipam-wrap";
      if (type === "ipam-link") await sh("ln", "-s", `${bin}/ipam-wrap`, `${bin}/ipam-link`);
      // A short time limit keeps a run that recursed (before the fix) bounded; the refusal needs none of it.
      const c = netConf(f, hostLocal(f, "10.121.4.0/24", { type }), { cniVersion: "1.1.0", ipamTimeout: 3 });
      const env = (verb: string) => cniEnv(f, verb, { CNI_PATH: `${bin}:${GO_CNI}` });
      const nested = new RegExp(
        `^IPAM plugin "${type}" (ADD|STATUS|GC) failed: ipam\\.type runs this plugin itself$`,
      );

      const add = await runPlugin(FAULTY, env("ADD"), JSON.stringify(c));
      assertCniError(add, 7, nested);
      assertEquals(wrapperRuns(counter), ["ADD", "DEL"], "the nested runs: ADD, and the cleanup's DEL");
      await assertNothingLeft(f);

      // The nested DEL refuses too: nothing can have been leased, so the parent's DEL succeeds.
      await assertDelSucceeds(f, c, { CNI_PATH: `${bin}:${GO_CNI}` });
      assertEquals(wrapperRuns(counter), ["ADD", "DEL", "DEL"]);

      for (const verb of ["STATUS", "GC"]) {
        const r = await runPlugin(FAULTY, {
          ...env(verb),
          CNI_CONTAINERID: "",
          CNI_NETNS: "",
          CNI_IFNAME: "",
        }, JSON.stringify(c));
        assertCniError(r, 7, nested);
        // VERSION answers (it runs nothing), then the verb is refused: two runs, no chain.
        assertEquals(wrapperRuns(counter).slice(-2), ["VERSION", verb]);
      }
      assertEquals(wrapperRuns(counter).length, 7);
    });
  });
}

Deno.test("CNI_NETNS that is a device is never opened for reading: O_PATH first, refused as no regular file", async () => {
  await withFixture(async (f) => {
    const device = `${f.scratch}/null-device`;
    await sh("mknod", device, "c", "1", "3"); // /dev/null's numbers, at a path no other process opens
    const c = JSON.stringify(netConf(f, hostLocal(f, "10.121.5.0/24")));
    for (const verb of ["ADD", "DEL"]) {
      const log = `${f.scratch}/strace-${verb}`;
      const traced = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log, ...FAULTY];
      const r = await runPlugin(traced, cniEnv(f, verb, { CNI_NETNS: device, CNI_PATH: GO_CNI }), c);
      if (verb === "ADD") assertCniError(r, 8, /is not a network namespace$/);
      else assertEquals(r.code, 0, r.stdout + r.stderr);
      const opens = (await Deno.readTextFile(log)).split("\n").filter((l) => l.includes(device));
      assert(opens.length > 0, "the path was never looked at");
      for (const line of opens) assert(line.includes("O_PATH"), `opened without O_PATH: ${line}`);
    }
    await assertNothingLeft(f);
  });
});
