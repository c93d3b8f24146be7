/**
 * Named network namespaces for tests, made and removed with iproute2 (tests only: the plugin
 * itself never runs `ip`).
 * @module
 */

/** Runs a command synchronously; returns stdout, throws with stderr on failure. */
export function run(cmd: string, ...args: string[]): string {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}

/** A unique short name (link names must stay within 15 bytes). */
export function uniqueName(prefix: string): string {
  const tail = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => (b % 36).toString(36)).join("");
  return `${prefix}${tail}`.slice(0, 15);
}

/** A named network namespace under /run/netns, deleted on dispose (with whatever is in it). */
export class TestNetns implements Disposable {
  readonly name: string;
  readonly path: string;

  constructor(prefix = "nlt") {
    this.name = uniqueName(prefix);
    this.path = `/run/netns/${this.name}`;
    run("ip", "netns", "add", this.name);
  }

  [Symbol.dispose](): void {
    new Deno.Command("ip", { args: ["netns", "del", this.name], stdout: "null", stderr: "null" })
      .outputSync();
  }
}
