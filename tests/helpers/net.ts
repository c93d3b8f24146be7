/**
 * The kernel fixtures of the tests, which the demo and the benchmark share: they live in
 * support/net.ts, a module that is never shipped.
 * @module
 */

export * from "../../support/net.ts";
