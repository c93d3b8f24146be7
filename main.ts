/**
 * ipoib-cni: the CNI plugin entry. Wires the IPoIB link driver and nothing else.
 * @module
 */

import { runPlugin } from "./lib/cli.ts";

const code = await runPlugin(Deno.args, Deno.env.toObject(), {
  loadDriver: async () => (await import("./lib/ipoib.ts")).ipoibDriver,
});
Deno.exit(code);
