/**
 * Running a CNI plugin as a runtime does: CNI_* environment, config on stdin, stdout parsed. Shared by the
 * tests, the demo and the benchmark; never shipped.
 * @module
 */

/** What one plugin run printed and returned. */
export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout decoded as JSON, or undefined when it is not. */
  json: unknown;
  /** Wall time of the run in milliseconds. */
  ms: number;
}

/** The repository root, for locating entries and fixtures. */
export const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The flags the production plugin runs with (Makefile PLUGIN_FLAGS). */
export const PLUGIN_FLAGS = [
  "--no-prompt",
  "--allow-env",
  "--allow-read",
  "--allow-ffi",
  "--allow-write",
];

/** The argv that runs a plugin entry (e.g. "main.ts", "tests/standin/main.ts") with production flags. */
export function pluginCommand(entry: string): string[] {
  return [Deno.execPath(), "run", "--quiet", ...PLUGIN_FLAGS, `${ROOT}/${entry}`];
}

/** A plugin process started in the background: a test may pause, kill or resume it before awaiting it. */
export interface RunningPlugin {
  pid: number;
  /** Sends SIGKILL, as a runtime that gives up on the plugin does. */
  kill(): void;
  /** What it printed and returned, once it has ended. */
  done: Promise<PluginRun>;
}

/** Starts `argv` with `env` (and nothing else of ours) and `stdin`, without waiting for it to end. */
export function startPlugin(
  argv: string[],
  env: Record<string, string>,
  stdin: string | Uint8Array = "",
): RunningPlugin {
  const start = performance.now();
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: Deno.env.get("HOME") ?? "/root", ...env },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const done = (async () => {
    const writer = child.stdin.getWriter();
    await writer.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin).catch(() => {});
    await writer.close().catch(() => {});
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    let json: unknown = undefined;
    try {
      json = JSON.parse(stdout);
    } catch { /* not JSON */ }
    return {
      code: out.code,
      stdout,
      stderr: new TextDecoder().decode(out.stderr),
      json,
      ms: performance.now() - start,
    };
  })();
  return { pid: child.pid, kill: () => child.kill("SIGKILL"), done };
}

/** Runs `argv` with `env` (and nothing else of ours) and `stdin`, and collects what it printed. */
export function runPlugin(
  argv: string[],
  env: Record<string, string>,
  stdin: string | Uint8Array = "",
): Promise<PluginRun> {
  return startPlugin(argv, env, stdin).done;
}
