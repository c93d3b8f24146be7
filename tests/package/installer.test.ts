import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "@std/assert";
import {
  checkCniBinDir,
  DEFAULT_CNI_BIN_DIR,
  defaultBinFile,
  parseInstallerArgs,
  UsageError,
} from "../../installer/flags.ts";
import { InstallError, installFileAtomic, installPlugin, LIB_DIR_NAME } from "../../installer/install.ts";
import { makeFile, tempDir, TMP_ROOT } from "./helpers.ts";

const FS = { read: true, write: [TMP_ROOT] };

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test({
  name: "installFileAtomic copies content and permission bits and leaves no temporary file",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  const src = `${tmp.path}/plugin`;
  await Deno.mkdir(`${tmp.path}/bin`);
  for (const mode of [0o755, 0o750, 0o700, 0o644]) {
    const data = await makeFile(src, mode, mode);
    const installed = await installFileAtomic(src, `${tmp.path}/bin`, "ipoib");
    assertEquals(installed, { path: `${tmp.path}/bin/ipoib`, mode, size: data.length });
    assertEquals(await Deno.readFile(`${tmp.path}/bin/ipoib`), data);
    assertEquals((await Deno.stat(`${tmp.path}/bin/ipoib`)).mode! & 0o7777, mode);
    assertEquals(await names(`${tmp.path}/bin`), ["ipoib"]);
  }
});

Deno.test({
  name: "installFileAtomic replaces by rename: a handle open on the old file still reads the old content",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/bin`);
  const old = await makeFile(`${tmp.path}/bin/ipoib`, 1, 0o755);
  const fresh = await makeFile(`${tmp.path}/new`, 2, 0o755);
  const oldIno = (await Deno.stat(`${tmp.path}/bin/ipoib`)).ino;
  using held = await Deno.open(`${tmp.path}/bin/ipoib`, { read: true });
  await installFileAtomic(`${tmp.path}/new`, `${tmp.path}/bin`, "ipoib");
  // An in-place overwrite would show the new bytes through the old handle; a rename leaves them untouched.
  const seen = new Uint8Array(old.length);
  let filled = 0;
  while (filled < seen.length) filled += (await held.read(seen.subarray(filled))) ?? seen.length;
  assertEquals(seen, old);
  assertEquals(await Deno.readFile(`${tmp.path}/bin/ipoib`), fresh);
  assert((await Deno.stat(`${tmp.path}/bin/ipoib`)).ino !== oldIno, "the destination is a new inode");
});

Deno.test({
  name: "installFileAtomic overwrites an executable that is running",
  permissions: { ...FS, run: true },
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/bin`);
  const dest = `${tmp.path}/bin/ipoib`;
  await Deno.copyFile("/bin/sleep", dest);
  await Deno.chmod(dest, 0o755);
  const running = new Deno.Command(dest, { args: ["60"], stdin: "null", stdout: "null", stderr: "null" })
    .spawn();
  try {
    // Opening a running executable for writing fails with ETXTBSY; this must not.
    const fresh = await makeFile(`${tmp.path}/new`, 3, 0o755);
    await installFileAtomic(`${tmp.path}/new`, `${tmp.path}/bin`, "ipoib");
    assertEquals(await Deno.readFile(dest), fresh);
    const stillRunning = await Promise.race([
      running.status.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), 200)),
    ]);
    assert(stillRunning, "the old process keeps running from its own inode");
  } finally {
    running.kill("SIGKILL");
    await running.status;
  }
});

Deno.test({
  name: "installFileAtomic with a missing source fails, names it, and leaves the destination untouched",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/bin`);
  const old = await makeFile(`${tmp.path}/bin/ipoib`, 4, 0o755);
  const e = await assertRejects(
    () => installFileAtomic(`${tmp.path}/missing`, `${tmp.path}/bin`, "ipoib"),
    InstallError,
  );
  assertMatch((e as Error).message, /missing does not exist/);
  assertEquals(await Deno.readFile(`${tmp.path}/bin/ipoib`), old);
  assertEquals(await names(`${tmp.path}/bin`), ["ipoib"]);
});

Deno.test({
  name: "installFileAtomic refuses a directory as source",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/bin`);
  await assertRejects(
    () => installFileAtomic(tmp.path, `${tmp.path}/bin`, "ipoib"),
    InstallError,
    "not a regular file",
  );
  assertEquals(await names(`${tmp.path}/bin`), []);
});

Deno.test({
  name: "installFileAtomic into a directory it cannot write to fails without leaving anything",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await makeFile(`${tmp.path}/plugin`, 5, 0o755);
  await assertRejects(
    () => installFileAtomic(`${tmp.path}/plugin`, `${tmp.path}/no-such-dir`, "ipoib"),
    InstallError,
    "cannot create a temporary file",
  );
});

Deno.test({
  name: "installPlugin installs the ipoib.d libraries first, then the plugin",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/src/${LIB_DIR_NAME}`, { recursive: true });
  await Deno.mkdir(`${tmp.path}/bin`);
  const plugin = await makeFile(`${tmp.path}/src/ipoib`, 6, 0o755);
  const libnl = await makeFile(`${tmp.path}/src/${LIB_DIR_NAME}/libnl-3.so.200`, 7, 0o644);
  const route = await makeFile(`${tmp.path}/src/${LIB_DIR_NAME}/libnl-route-3.so.200`, 8, 0o644);
  const result = await installPlugin(`${tmp.path}/src/ipoib`, `${tmp.path}/bin`);
  assertEquals(result.warnings, []);
  assertEquals(result.installed.map((f) => f.path), [
    `${tmp.path}/bin/${LIB_DIR_NAME}/libnl-3.so.200`,
    `${tmp.path}/bin/${LIB_DIR_NAME}/libnl-route-3.so.200`,
    `${tmp.path}/bin/ipoib`,
  ]);
  assertEquals(await Deno.readFile(`${tmp.path}/bin/ipoib`), plugin);
  assertEquals(await Deno.readFile(`${tmp.path}/bin/${LIB_DIR_NAME}/libnl-3.so.200`), libnl);
  assertEquals(await Deno.readFile(`${tmp.path}/bin/${LIB_DIR_NAME}/libnl-route-3.so.200`), route);
  assertEquals((await Deno.stat(`${tmp.path}/bin/${LIB_DIR_NAME}`)).mode! & 0o777, 0o755);
  // A second run (a pod restart) replaces everything in place of the first.
  const again = await installPlugin(`${tmp.path}/src/ipoib`, `${tmp.path}/bin`);
  assertEquals(again.installed.length, 3);
  assertEquals(await names(`${tmp.path}/bin`), ["ipoib", LIB_DIR_NAME]);
  assertEquals(await names(`${tmp.path}/bin/${LIB_DIR_NAME}`), ["libnl-3.so.200", "libnl-route-3.so.200"]);
});

Deno.test({
  name: "installPlugin without an ipoib.d directory installs the plugin alone and warns",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/bin`);
  await makeFile(`${tmp.path}/ipoib`, 9, 0o755);
  const result = await installPlugin(`${tmp.path}/ipoib`, `${tmp.path}/bin`);
  assertEquals(result.installed.map((f) => f.path), [`${tmp.path}/bin/ipoib`]);
  assertEquals(result.warnings.length, 1);
  assertMatch(result.warnings[0]!, /libnl-3-200/);
});

Deno.test({
  name: "installPlugin with a missing plugin file fails before writing anything",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/bin`);
  await Deno.mkdir(`${tmp.path}/${LIB_DIR_NAME}`);
  await makeFile(`${tmp.path}/${LIB_DIR_NAME}/libnl-3.so.200`, 10, 0o644);
  await assertRejects(
    () => installPlugin(`${tmp.path}/ipoib`, `${tmp.path}/bin`),
    InstallError,
    `plugin file ${tmp.path}/ipoib does not exist`,
  );
  assertEquals(await names(`${tmp.path}/bin`), []);
});

Deno.test({
  name: "installPlugin refuses a destination ipoib.d that is not a directory",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/src/${LIB_DIR_NAME}`, { recursive: true });
  await Deno.mkdir(`${tmp.path}/bin`);
  await makeFile(`${tmp.path}/src/ipoib`, 11, 0o755);
  await makeFile(`${tmp.path}/src/${LIB_DIR_NAME}/libnl-3.so.200`, 12, 0o644);
  await Deno.writeTextFile(`${tmp.path}/bin/${LIB_DIR_NAME}`, "in the way");
  await assertRejects(
    () => installPlugin(`${tmp.path}/src/ipoib`, `${tmp.path}/bin`),
    InstallError,
    "exists and is not a directory",
  );
});

Deno.test("parseInstallerArgs defaults to /host/opt/cni/bin and the plugin beside the installer", () => {
  const o = parseInstallerArgs([], defaultBinFile("/opt/ipoib-cni/ipoib-installer"));
  assertEquals(o, {
    help: false,
    version: false,
    cniBinDir: DEFAULT_CNI_BIN_DIR,
    ipoibBinFile: "/opt/ipoib-cni/ipoib",
  });
});

Deno.test("parseInstallerArgs accepts both flag spellings and normalises the directory", () => {
  assertEquals(
    parseInstallerArgs(["--cni-bin-dir", "/opt/cni//bin/", "--ipoib-bin-file=/x/ipoib"], "/d/ipoib"),
    { help: false, version: false, cniBinDir: "/opt/cni/bin/", ipoibBinFile: "/x/ipoib" },
  );
  assertEquals(parseInstallerArgs(["-h"], "/d/ipoib").help, true);
  assertEquals(parseInstallerArgs(["--version"], "/d/ipoib").version, true);
});

Deno.test("parseInstallerArgs rejects unknown flags, positional arguments, empty values and relative paths", () => {
  const cases: [string[], RegExp][] = [
    [["--cni-dir=/x"], /unknown argument "--cni-dir=\/x"/],
    [["/opt/cni/bin"], /unknown argument "\/opt\/cni\/bin"/],
    [["--cni-bin-dir"], /--cni-bin-dir needs a value/],
    [["--ipoib-bin-file="], /--ipoib-bin-file needs a value/],
    [["--cni-bin-dir=opt/cni/bin"], /must be an absolute path, got "opt\/cni\/bin"/],
  ];
  for (const [args, message] of cases) {
    const e = assertThrows(() => parseInstallerArgs(args, "/d/ipoib"), UsageError);
    assertMatch((e as Error).message, message);
  }
});

Deno.test({
  name: "checkCniBinDir requires an existing directory",
  permissions: FS,
}, async () => {
  await using tmp = await tempDir();
  await checkCniBinDir(tmp.path);
  await assertRejects(() => checkCniBinDir(`${tmp.path}/absent`), UsageError, "does not exist");
  await Deno.writeTextFile(`${tmp.path}/file`, "");
  await assertRejects(() => checkCniBinDir(`${tmp.path}/file`), UsageError, "is not a directory");
});
