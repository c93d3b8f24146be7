/**
 * Test-only fault injection into the plugin process: wraps one kernel step of the netlink layer so that
 * its n-th call fails (as if the kernel had refused it) or pauses until the test says go, so the test can
 * remove the namespace, delete the master or SIGKILL the process at that exact point. Configured from
 * the environment by the test; production code has no such switch.
 *
 *   FAULT_AT=moveToNetns:1   the step and which of its calls (1-based)
 *   FAULT_ACTION=fail|pause  throw a NetlinkError, or wait before the call
 *   FAULT_DIR=/tmp/...       pause: the plugin creates FAULT_DIR/paused, then waits for FAULT_DIR/resume
 * @module
 */

import { Netlink, NetlinkError } from "../../ffi/netlink.ts";
import { exists } from "../../support/fs.ts";

/** The kernel steps of ADD that can be made to fail or pause. */
export const STEPS = ["createLink", "moveToNetns", "setLink", "addAddress", "addRoute"] as const;

/** One of {@link STEPS}. */
export type Step = typeof STEPS[number];

/** How long a paused plugin waits for the test before going on by itself (a lost test must not hang CI). */
const PAUSE_LIMIT_MS = 60_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Waits synchronously (the plugin may be inside a namespace switch) until the test creates `resume`. */
function pause(dir: string): void {
  Deno.writeTextFileSync(`${dir}/paused`, String(Deno.pid));
  const deadline = performance.now() + PAUSE_LIMIT_MS;
  while (!exists(`${dir}/resume`) && performance.now() < deadline) sleepSync(5);
}

/** Installs the fault the environment describes, if any. */
export function installFault(env: Record<string, string>): void {
  const at = env.FAULT_AT;
  if (!at) return;
  const [step, nth] = at.split(":") as [Step, string | undefined];
  if (!(STEPS as readonly string[]).includes(step)) throw new Error(`FAULT_AT: unknown step ${step}`);
  const target = Number(nth ?? "1");
  const action = env.FAULT_ACTION ?? "fail";
  const proto = Netlink.prototype as unknown as Record<Step, (...args: unknown[]) => unknown>;
  const original = proto[step];
  let calls = 0;
  proto[step] = function (this: Netlink, ...args: unknown[]) {
    if (++calls === target) {
      if (action === "pause") pause(env.FAULT_DIR!);
      // EIO: a kernel failure no input could cause, so the test isolates the plugin's cleanup.
      else throw new NetlinkError(`${step} (injected by tests/faults)`, 5, "injected failure", "");
    }
    return original.apply(this, args);
  };
}
