/**
 * Misbehaving IPAM plugins for the fault suite: small POSIX shell scripts written into a temporary
 * CNI_PATH directory. Most first run the real host-local, so a lease is really taken, and then fail in
 * one way on ADD; every other verb goes straight to host-local, so a later DEL can release the lease.
 * (The plugin never runs a shell itself: these are fixtures, executed by it like any IPAM binary.)
 * @module
 */

import { GO_CNI } from "../../support/fixture.ts";

/** How a fake IPAM plugin misbehaves on ADD. */
export type IpamFault =
  | "exit-3" // prints nothing and exits 3, without allocating
  | "signal" // kills itself with SIGSEGV, without allocating
  | "crash-after-alloc" // allocates, then exits 2 with a Go-style panic on stderr
  | "garbage-after-alloc" // allocates, then prints something that is not JSON and exits 0
  | "no-ips-after-alloc" // allocates, then prints a valid result without addresses
  | "hang-after-alloc" // allocates, then waits in a child process that holds stdout open
  | "hang" // never answers (the script itself sleeps)
  | "pause-after-alloc"; // allocates, then waits for $FAULT_DIR/resume (SIGKILL and netns tests)

const BODY: Record<IpamFault, string> = {
  "exit-3": "exit 3",
  "signal": "kill -SEGV $$",
  "crash-after-alloc": 'alloc\necho "panic: runtime error: index out of range" >&2\nexit 2',
  "garbage-after-alloc": 'alloc\necho "<html>502 Bad Gateway</html>"',
  "no-ips-after-alloc": `alloc\necho '{"cniVersion":"1.0.0","dns":{}}'`,
  "hang-after-alloc": "alloc\nsleep 600\necho never",
  "hang": "exec sleep 600",
  "pause-after-alloc": 'alloc\necho $$ > "$FAULT_DIR/paused"\n' +
    'i=0; while [ ! -e "$FAULT_DIR/resume" ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done\n' +
    'printf "%s" "$result"',
};

/** The script text of a fake IPAM plugin; it records its pid (its process group) in `pidFile`. */
export function fakeIpamScript(fault: IpamFault, pidFile: string): string {
  return `#!/bin/sh
echo $$ > '${pidFile}'
[ "$CNI_COMMAND" = ADD ] || exec ${GO_CNI}/host-local
# Runs the real host-local with this script's stdin: a lease is taken exactly as in production.
alloc() { result=$(${GO_CNI}/host-local) || exit 1; }
${BODY[fault]}
`;
}

/** A temporary CNI_PATH directory holding fake IPAM plugins; removed on dispose. */
export class FakeIpamDir implements AsyncDisposable {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(): Promise<FakeIpamDir> {
    return new FakeIpamDir(await Deno.makeTempDir({ prefix: "ipoib-fault-ipam-" }));
  }

  /** Writes the fake `name` with `fault`, executable unless `mode` says otherwise; returns its pid file. */
  async add(name: string, fault: IpamFault, mode = 0o755): Promise<string> {
    const pidFile = `${this.dir}/${name}.pid`;
    await Deno.writeTextFile(`${this.dir}/${name}`, fakeIpamScript(fault, pidFile), { mode });
    await Deno.chmod(`${this.dir}/${name}`, mode);
    return pidFile;
  }

  /**
   * Writes an executable IPAM plugin `name` whose shell body is `body` (run for every verb; `$GO_CNI` names
   * the directory of the Go plugins); returns its path.
   */
  async addScript(name: string, body: string): Promise<string> {
    const path = `${this.dir}/${name}`;
    await Deno.writeTextFile(path, `#!/bin/sh\nGO_CNI=${GO_CNI}\n${body}\n`, { mode: 0o755 });
    await Deno.chmod(path, 0o755);
    return path;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
