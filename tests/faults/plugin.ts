/**
 * The stand-in plugin (tests/standin) with a fault from tests/faults/inject.ts installed first: the
 * entry the fault-injection suite runs as a process.
 * @module
 */

import { runPlugin } from "../../lib/cli.ts";
import { installFault } from "./inject.ts";

installFault(Deno.env.toObject());
const code = await runPlugin(Deno.args, Deno.env.toObject(), {
  loadDriver: async () => (await import("../standin/driver.ts")).standinDriver,
});
Deno.exit(code);
