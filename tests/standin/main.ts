/**
 * The stand-in plugin entry: the full plugin, run as a process exactly as a runtime runs it, with the
 * macvlan-on-veth driver in place of IPoIB. Used by integration, e2e and benchmark runs only.
 * @module
 */

import { runPlugin } from "../../lib/cli.ts";

const code = await runPlugin(Deno.args, Deno.env.toObject(), {
  loadDriver: async () => (await import("./driver.ts")).standinDriver,
});
Deno.exit(code);
