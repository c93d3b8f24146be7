/**
 * Running a plugin as a runtime does, for the tests; shared with the demo and the benchmark from
 * support/run.ts, a module that is never shipped.
 * @module
 */

export * from "../../support/run.ts";
