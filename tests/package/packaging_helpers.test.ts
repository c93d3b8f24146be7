/** The build helpers' pure parts: ELF classification, the denort verdict, the build-info stamp, staging. */

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { elfArchOf } from "../../packaging/elf.ts";
import {
  denortCachePath,
  type DenortFacts,
  denortUrl,
  innermostMessage,
  judge,
} from "../../packaging/denort_check.ts";
import { localModules, parseStageArgs, stampBuildInfo } from "../../packaging/stage.ts";
import { REPO_ROOT, tempDir, TMP_ROOT } from "./helpers.ts";

function elfHeader(machine: number, cls = 2, data = 1): Uint8Array {
  const h = new Uint8Array(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1]);
  new DataView(h.buffer).setUint16(18, machine, true);
  return h;
}

Deno.test("elfArchOf names amd64 and arm64 and explains anything else", () => {
  assertEquals(elfArchOf(elfHeader(62)), { ok: true, arch: "amd64" });
  assertEquals(elfArchOf(elfHeader(183)), { ok: true, arch: "arm64" });
  assertEquals(elfArchOf(elfHeader(21)), { ok: false, reason: "ELF machine 21 is neither amd64 nor arm64" });
  assertEquals(elfArchOf(elfHeader(62, 1)), { ok: false, reason: "not a 64-bit little-endian ELF file" });
  assertEquals(elfArchOf(new TextEncoder().encode("#!/bin/sh\necho not an executable\n")), {
    ok: false,
    reason: "not an ELF executable",
  });
  assertEquals(elfArchOf(new Uint8Array(4)), { ok: false, reason: "too short to be an ELF executable" });
});

const BASE: DenortFacts = {
  target: "x86_64-unknown-linux-gnu",
  denoVersion: "2.9.6",
  cachePath: "/c/dl/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip",
  cached: false,
};

Deno.test("judge: DENORT_BIN of the target's architecture wins over cache and network", () => {
  const v = judge({ ...BASE, denortBin: "/d/denort", denortBinKind: { ok: true, arch: "amd64" } });
  assertEquals(v.ok, true);
  assertStringIncludes(v.message, "from DENORT_BIN=/d/denort");
});

Deno.test("judge: DENORT_BIN of another architecture, missing, or the deno CLI is refused", () => {
  const wrong = judge({
    ...BASE,
    target: "aarch64-unknown-linux-gnu",
    denortBin: "/d/denort",
    denortBinKind: { ok: true, arch: "amd64" },
  });
  assertEquals(wrong.ok, false);
  assertStringIncludes(wrong.message, "is a linux amd64 executable, but ARCH=arm64 needs denort");
  assertEquals(judge({ ...BASE, denortBin: "/x", denortBinKind: "missing" }).ok, false);
  assertStringIncludes(
    judge({ ...BASE, denortBin: "/x", denortBinKind: "deno-cli" }).message,
    "deno CLI itself",
  );
});

Deno.test("judge: a cached download or a reachable URL is enough without DENORT_BIN", () => {
  assertEquals(judge({ ...BASE, cached: true }).ok, true);
  assertEquals(judge({ ...BASE, probe: { reachable: true } }).ok, true);
});

Deno.test("judge: with nothing available the message names all three sources and the fix", () => {
  const v = judge({ ...BASE, probe: { reachable: false, error: "dns error" } });
  assertEquals(v.ok, false);
  for (
    const part of [
      "no denort runtime for x86_64-unknown-linux-gnu",
      "DENORT_BIN is not set",
      `no downloaded copy is cached at ${BASE.cachePath}`,
      `${denortUrl("2.9.6", BASE.target)}\n  is unreachable: dns error.`,
      "Either set DENORT_BIN=/path/to/denort",
    ]
  ) assertStringIncludes(v.message, part);
});

Deno.test("denort URL and cache path follow deno compile's layout", () => {
  assertEquals(
    denortUrl("2.9.6", "aarch64-unknown-linux-gnu"),
    "https://dl.deno.land/release/v2.9.6/denort-aarch64-unknown-linux-gnu.zip",
  );
  assertEquals(
    denortCachePath("/root/.cache/deno", "2.9.6", "x86_64-unknown-linux-gnu"),
    "/root/.cache/deno/dl/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip",
  );
});

Deno.test("innermostMessage reports the root cause without the repeated URL", () => {
  const e = new TypeError("fetch failed", {
    cause: new Error("error sending request for url (https://x/y.zip): client error (Connect): dns error"),
  });
  assertEquals(innermostMessage(e), "client error (Connect): dns error");
});

const SOURCE = '{ "version": "0.1.0-dev", "commit": "unknown", "date": "unknown" }\n';

Deno.test("stampBuildInfo replaces the given values, JSON-escaped, and keeps defaults for empty ones", () => {
  const out = stampBuildInfo(SOURCE, { version: "1.2.3", commit: 'ab"c\\d', date: "" });
  assertEquals(JSON.parse(out), { version: "1.2.3", commit: 'ab"c\\d', date: "unknown" });
  assertStringIncludes(out, '"commit": "ab\\"c\\\\d"');
  assertEquals(JSON.parse(stampBuildInfo(SOURCE, {})), JSON.parse(SOURCE));
});

Deno.test("stampBuildInfo fails loudly when the file's shape changed, instead of shipping defaults", () => {
  assertThrows(
    () => stampBuildInfo(SOURCE.replace('"version"', '"release"'), { version: "1" }),
    Error,
    'expected a string "version"',
  );
  assertThrows(() => stampBuildInfo('{ "version": 1, "commit": "", "date": "" }', {}), Error, '"version"');
  assertThrows(() => stampBuildInfo("not json", { version: "1" }), SyntaxError);
});

Deno.test("parseStageArgs takes --name=value pairs and requires --out and --entry", () => {
  assertEquals(parseStageArgs(["--out=/o", "--entry=main.ts", "--version="]), {
    out: "/o",
    entry: "main.ts",
    version: "",
  });
  assertThrows(() => parseStageArgs(["--out=/o"]), Error, "required");
  assertThrows(() => parseStageArgs(["--out=/o", "--entry=m.ts", "--bogus=1"]), Error, "unexpected argument");
});

Deno.test({
  name: "localModules lists the plugin's local graph: no tests, and the build info it stamps",
  permissions: { read: true, run: true, env: true },
}, async () => {
  const files = await localModules(REPO_ROOT, "main.ts");
  assert(files.includes("main.ts") && files.includes("lib/build_info.json"), files.join(" "));
  for (const f of files) assertMatch(f, /^(main\.ts|lib\/|ffi\/)/);
});

Deno.test({
  name: "localModules refuses an entry that imports test code or files outside the root",
  permissions: { read: true, write: [TMP_ROOT], run: true, env: true },
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/root/tests`, { recursive: true });
  await Deno.writeTextFile(`${tmp.path}/root/tests/helper.ts`, "export const x = 1;\n");
  await Deno.writeTextFile(`${tmp.path}/outside.ts`, "export const y = 2;\n");
  await Deno.writeTextFile(
    `${tmp.path}/root/a.ts`,
    'import { x } from "./tests/helper.ts";\nconsole.log(x);\n',
  );
  await Deno.writeTextFile(`${tmp.path}/root/b.ts`, 'import { y } from "../outside.ts";\nconsole.log(y);\n');
  await assertRejects(() => localModules(`${tmp.path}/root`, "a.ts"), Error, "must not be compiled");
  await assertRejects(() => localModules(`${tmp.path}/root`, "b.ts"), Error, "outside");
});
