/**
 * Atomic installation of the plugin and its bundled libraries into a CNI bin directory.
 *
 * Kubelet may execute the plugin at any moment, including while a new version is being installed. Each file is
 * therefore written to a temporary file in the destination directory, flushed, given the source's mode and then
 * renamed over the destination: an exec sees the old file or the new one, never a partial one, and a running
 * old binary keeps its inode (writing into it in place would fail with ETXTBSY).
 * @module
 */

import { basename, dirname, join } from "node:path";

/** The directory beside the plugin that holds the libraries it loads before the system's. */
export const LIB_DIR_NAME = "ipoib.d";

/** A failure the installer reports as one line, without a stack trace. */
export class InstallError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InstallError";
  }
}

/** One file the installer wrote. */
export interface InstalledFile {
  /** The destination path. */
  path: string;
  /** Permission bits, copied from the source. */
  mode: number;
  /** Size in bytes. */
  size: number;
}

/** What {@linkcode installPlugin} did. */
export interface InstallResult {
  /** The files written, libraries first, the plugin last. */
  installed: InstalledFile[];
  /** Things an operator should know that did not stop the install. */
  warnings: string[];
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Stats `path`, turning "not found" into an {@linkcode InstallError} naming `what`. */
async function statSource(path: string, what: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InstallError(`${what} ${path} does not exist`);
    throw new InstallError(`cannot stat ${what} ${path}: ${describe(e)}`, { cause: e });
  }
}

/** Flushes a directory so that a rename inside it survives a crash of the node. */
async function syncDir(dir: string): Promise<void> {
  const f = await Deno.open(dir, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

/**
 * Copies the regular file `src` to `destDir/name` atomically: temporary file in `destDir`, fsync, the source's
 * permission bits, rename, fsync of the directory. On failure the destination is unchanged and the temporary
 * file is removed.
 */
export async function installFileAtomic(
  src: string,
  destDir: string,
  name = basename(src),
): Promise<InstalledFile> {
  const st = await statSource(src, "source file");
  if (!st.isFile) throw new InstallError(`source ${src} is not a regular file`);
  const mode = (st.mode ?? 0o755) & 0o7777;
  const dest = join(destDir, name);
  // A hidden name that is unique per attempt: concurrent installers (a rolling update) never share a file.
  const tmpPath = join(destDir, `.${name}.tmp-${crypto.randomUUID().slice(0, 8)}`);
  let tmp: Deno.FsFile;
  try {
    tmp = await Deno.open(tmpPath, { write: true, createNew: true, mode: 0o600 });
  } catch (e) {
    throw new InstallError(`cannot create a temporary file in ${destDir}: ${describe(e)}`, { cause: e });
  }
  let open = true;
  try {
    const source = await Deno.open(src, { read: true });
    // Streamed, not read whole: the plugin is tens of megabytes and the DaemonSet's memory limit is small.
    // The source stream closes the source file when it ends; the temporary file stays open for the fsync.
    await source.readable.pipeTo(tmp.writable, { preventClose: true });
    await Deno.chmod(tmpPath, mode);
    await tmp.sync();
    tmp.close();
    open = false;
    await Deno.rename(tmpPath, dest);
  } catch (e) {
    if (open) {
      try {
        tmp.close();
      } catch { /* already closed by an aborted stream */ }
    }
    await Deno.remove(tmpPath).catch(() => {});
    throw new InstallError(`cannot install ${src} as ${dest}: ${describe(e)}`, { cause: e });
  }
  try {
    await syncDir(destDir);
  } catch (e) {
    throw new InstallError(`installed ${dest} but cannot flush ${destDir}: ${describe(e)}`, { cause: e });
  }
  return { path: dest, mode, size: st.size };
}

/** Makes sure `dir` is a directory, creating it with mode 0755 when absent. */
async function ensureDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { mode: 0o755 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) {
      throw new InstallError(`cannot create ${dir}: ${describe(e)}`, { cause: e });
    }
    if (!(await Deno.stat(dir)).isDirectory) throw new InstallError(`${dir} exists and is not a directory`);
  }
}

/**
 * Installs `pluginFile` into `cniBinDir` under its own name, after the libraries of the `ipoib.d/` directory
 * beside it (into `cniBinDir/ipoib.d/`). Libraries go first so that the new plugin never runs without them.
 * A missing `ipoib.d/` is a warning, not an error: the plugin then uses the host's libnl.
 */
export async function installPlugin(pluginFile: string, cniBinDir: string): Promise<InstallResult> {
  const st = await statSource(pluginFile, "plugin file");
  if (!st.isFile) throw new InstallError(`plugin file ${pluginFile} is not a regular file`);
  const result: InstallResult = { installed: [], warnings: [] };
  const libSrc = join(dirname(pluginFile), LIB_DIR_NAME);
  const libFiles: string[] = [];
  try {
    for await (const entry of Deno.readDir(libSrc)) {
      if (entry.isFile || entry.isSymlink) libFiles.push(entry.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new InstallError(`cannot read ${libSrc}: ${describe(e)}`, { cause: e });
    }
    result.warnings.push(
      `no ${libSrc}: installing the plugin alone; the host must provide libnl-3-200 and libnl-route-3-200`,
    );
  }
  if (libFiles.length > 0) {
    const libDest = join(cniBinDir, LIB_DIR_NAME);
    await ensureDir(libDest);
    for (const name of libFiles.sort()) {
      result.installed.push(await installFileAtomic(join(libSrc, name), libDest, name));
    }
  }
  result.installed.push(await installFileAtomic(pluginFile, cniBinDir));
  return result;
}
