/**
 * `make build` as a developer or CI runs it. Without denort it must stop at once and say why; with a stand-in
 * it must stage, stamp and compile exactly the entry points' module graphs.
 */

import { assert, assertEquals, assertFalse, assertMatch, assertStringIncludes } from "@std/assert";
import { readElfArch } from "../../packaging/elf.ts";
import { archs, makeEnv, REPO_ROOT, runMake, tempDir, TMP_ROOT } from "./helpers.ts";

const MAKE = { read: true, write: [TMP_ROOT], run: true, env: true };
const TARGET = { amd64: "x86_64-unknown-linux-gnu", arm64: "aarch64-unknown-linux-gnu" } as const;

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

for (const arch of ["amd64", "arm64"] as const) {
  Deno.test({
    name: `make build ARCH=${arch} without DENORT_BIN, cache or network stops at once and says so`,
    permissions: MAKE,
  }, async () => {
    await using tmp = await tempDir();
    // An empty DENO_DIR: no cached denort. A network namespace of its own: no network, whatever the machine has.
    const env = makeEnv({ DENO_DIR: `${tmp.path}/deno-dir` });
    const r = await runMake(["build", `ARCH=${arch}`, `BUILD_DIR=${tmp.path}/build`], env, { offline: true });
    assert(r.code !== 0, "make build succeeded without denort");
    assert(r.ms < 60_000, `took ${Math.round(r.ms)} ms`);
    assertStringIncludes(
      r.stderr,
      `make build: no denort runtime for ${TARGET[arch]}, so deno compile cannot build an executable.`,
    );
    assertStringIncludes(r.stderr, "DENORT_BIN is not set");
    assertStringIncludes(r.stderr, `no downloaded copy is cached at ${tmp.path}/deno-dir/dl/release/v`);
    assertMatch(
      r.stderr,
      new RegExp(`download https://dl\\.deno\\.land/release/v[0-9.]+/denort-${TARGET[arch]}\\.zip`),
    );
    assertStringIncludes(r.stderr, "is unreachable: ");
    assertStringIncludes(r.stderr, "Either set DENORT_BIN=/path/to/denort");
    // Stopped before staging or compiling anything.
    assertFalse(await exists(`${tmp.path}/build`));
  });
}

Deno.test({
  name:
    "make build refuses a DENORT_BIN that is missing, not ELF, of the other architecture, or the deno CLI",
  permissions: MAKE,
}, async () => {
  await using tmp = await tempDir();
  const { other } = await archs();
  const deno = Deno.execPath();
  await Deno.writeTextFile(`${tmp.path}/text`, "#!/bin/sh\necho this is a shell script, not denort\n");
  const cases: [Record<string, string>, string[], string][] = [
    [{ DENORT_BIN: `${tmp.path}/absent` }, [], `DENORT_BIN=${tmp.path}/absent does not exist.`],
    [{ DENORT_BIN: tmp.path }, [], `DENORT_BIN=${tmp.path} is not a regular file.`],
    [{ DENORT_BIN: `${tmp.path}/text` }, [], `DENORT_BIN=${tmp.path}/text is not an ELF executable.`],
    [{ DENORT_BIN: "/bin/true" }, [`ARCH=${other}`], `but ARCH=${other} needs denort for ${TARGET[other]}.`],
    [{ DENORT_BIN: deno }, [], `DENORT_BIN=${deno} is the deno CLI itself, not denort.`],
  ];
  for (const [vars, args, message] of cases) {
    const r = await runMake(["build", `BUILD_DIR=${tmp.path}/build`, ...args], makeEnv(vars));
    assert(r.code !== 0, `${JSON.stringify(vars)} ${args}: succeeded`);
    assertStringIncludes(r.stderr, message);
    assertFalse(await exists(`${tmp.path}/build`));
  }
});

Deno.test({
  name: "make build ARCH=ppc64le explains that Deno has no ppc64le runtime; unknown ARCH values are refused",
  permissions: MAKE,
}, async () => {
  await using tmp = await tempDir();
  const ppc = await runMake(["build", "ARCH=ppc64le", `BUILD_DIR=${tmp.path}/build`], makeEnv());
  assert(ppc.code !== 0);
  assertStringIncludes(ppc.stderr, "ppc64le is not supported");
  assertStringIncludes(ppc.stderr, "denoland/rusty_v8 issue 1445");
  const mips = await runMake(["build", "ARCH=mips64", `BUILD_DIR=${tmp.path}/build`], makeEnv());
  assert(mips.code !== 0);
  assertStringIncludes(mips.stderr, "ARCH=mips64 is not supported: use ARCH=amd64 or ARCH=arm64");
  assertFalse(await exists(`${tmp.path}/build`));
});

Deno.test({
  name:
    "make build stages stamped sources and embeds only each entry's module graph (deno CLI copy as stand-in)",
  permissions: MAKE,
}, async () => {
  await using tmp = await tempDir();
  const { host } = await archs();
  // A copy of the deno CLI passes for denort (same architecture, another inode): compile then runs to the end,
  // which shows staging, stamping and embedding. Its output cannot run the plugin (NOTES.md); the compiled
  // tests use a real denort.
  const standIn = Deno.env.get("DENORT_BIN") || `${tmp.path}/denort-stand-in`;
  if (!Deno.env.get("DENORT_BIN")) await Deno.copyFile(Deno.execPath(), standIn);
  const buildInfoBefore = await Deno.readTextFile(`${REPO_ROOT}/lib/build_info.json`);
  const build = `${tmp.path}/build`;
  const r = await runMake(
    ["build", `BUILD_DIR=${build}`, "VERSION=9.8.7-test", "COMMIT=c0ffee", "DATE=2026-01-02T03:04:05Z"],
    makeEnv({ DENORT_BIN: standIn }),
  );
  assertEquals(r.code, 0, r.stderr + r.stdout);

  // The tracked file is untouched; each staged copy carries the stamp.
  assertEquals(await Deno.readTextFile(`${REPO_ROOT}/lib/build_info.json`), buildInfoBefore);
  for (const name of ["ipoib", "ipoib-installer"]) {
    const staged = JSON.parse(await Deno.readTextFile(`${build}/stage/${name}/lib/build_info.json`));
    assertEquals(staged, { version: "9.8.7-test", commit: "c0ffee", date: "2026-01-02T03:04:05Z" });
  }

  // Nothing from tests/, .tools/ or other build output is staged, so nothing of it can be embedded.
  const staged: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(`${dir}/${e.name}`, `${rel}${e.name}/`);
      else staged.push(`${rel}${e.name}`);
    }
  };
  await walk(`${build}/stage`, "");
  assert(
    staged.includes("ipoib/main.ts") && staged.includes("ipoib-installer/installer/main.ts"),
    `${staged}`,
  );
  for (const f of staged) assertFalse(/(^|\/)(tests|\.tools|build|bench)\//.test(f), f);
  assertFalse(
    staged.some((f) => f.startsWith("ipoib-installer/ffi/")),
    "the installer does not need FFI code",
  );

  // deno compile's own list of embedded files: the installer carries no zod, neither carries tests.
  const plugin = await Deno.readTextFile(`${build}/ipoib.compile.txt`);
  const installer = await Deno.readTextFile(`${build}/ipoib-installer.compile.txt`);
  assertStringIncludes(plugin, "Embedded Files");
  assertStringIncludes(plugin, "main.ts");
  assertStringIncludes(installer, "installer/");
  assertFalse(installer.includes("zod"), installer);
  for (const listing of [plugin, installer]) assertFalse(/tests|\.tools/.test(listing), listing);

  for (const name of ["ipoib", "ipoib-installer"]) {
    assertEquals(await readElfArch(`${build}/${name}`), { ok: true, arch: host });
    assertEquals((await Deno.stat(`${build}/${name}`)).mode! & 0o111, 0o111);
  }
  for (const so of ["libnl-3.so.200", "libnl-route-3.so.200"]) {
    assertEquals(await readElfArch(`${build}/ipoib.d/${so}`), { ok: true, arch: host });
  }
});
