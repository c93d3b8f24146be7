/**
 * Small file-system checks shared by the test suites (never shipped: packaging refuses support/).
 * @module
 */

/** True when `path` exists (not following a final symlink: a dangling link exists too). */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
