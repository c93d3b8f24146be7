/**
 * ffi/libc.ts: opening a path that follows no symlink in any component, by openat2(2) with
 * RESOLVE_NO_SYMLINKS and by the per-component walk used where the kernel has no openat2 (ENOSYS).
 */
import { assert, assertEquals } from "@std/assert";
import { closeFd, Errno, O_CREAT, O_WRONLY, openNoSymlinks, openNoSymlinksWalk } from "../../ffi/libc.ts";
import { sh } from "../../support/net.ts";

for (
  const [name, open] of [["openat2", openNoSymlinks], ["the O_NOFOLLOW walk", openNoSymlinksWalk]] as const
) {
  Deno.test(`${name}: a symlink in a directory component or the last one is refused (ELOOP, ENOTDIR)`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "ipoib-open-" });
    try {
      await Deno.mkdir(`${dir}/real`);
      await sh("ln", "-s", `${dir}/real`, `${dir}/linkdir`);
      await Deno.writeTextFile(`${dir}/real/target`, "");
      await sh("ln", "-s", `${dir}/real/target`, `${dir}/real/linkfile`);
      for (const path of [`${dir}/linkdir/new.log`, `${dir}/linkdir/target`, `${dir}/real/linkfile`]) {
        // The walk meets a symlinked directory with O_DIRECTORY | O_NOFOLLOW: the kernel answers ENOTDIR.
        const fd = open(path, O_WRONLY | O_CREAT, 0o600);
        assert(fd === -Errno.ELOOP || fd === -Errno.ENOTDIR, `${path}: ${fd}`);
      }
      assertEquals([...Deno.readDirSync(`${dir}/real`)].map((e) => e.name).sort(), ["linkfile", "target"]);
      // Real directories all the way, `..` included: opened, and created with the mode asked for.
      const fd = open(`${dir}/real/../real/new.log`, O_WRONLY | O_CREAT, 0o600);
      assert(fd >= 0, `errno ${-fd}`);
      closeFd(fd);
      assertEquals((await Deno.stat(`${dir}/real/new.log`)).mode! & 0o777, 0o600);
      assertEquals(open(`${dir}/real/none/x`, O_WRONLY, 0), -Errno.ENOENT);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
