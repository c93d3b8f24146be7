/**
 * Reading the network configuration from stdin, bounded in size.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** The largest configuration accepted on stdin; a runtime never sends one near this size. */
export const MAX_STDIN_BYTES = 1 << 20;

/** Decodes the network configuration as JSON; undecodable content is error code 6. */
export function decodeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      "network configuration is not valid JSON",
      e instanceof Error ? e.message : String(e),
    );
  }
}

/** Something stdin can be read from synchronously, as `Deno.stdin` is. */
export interface SyncReader {
  readSync(p: Uint8Array): number | null;
}

/**
 * Reads all of stdin synchronously (cheaper at start-up than a stream) and refuses more than `limit` bytes.
 * A closed or absent stdin reads as empty. `source` is the process's stdin unless a caller runs the
 * plugin in-process (the fuzz tests).
 */
export function readStdin(limit = MAX_STDIN_BYTES, source: SyncReader = Deno.stdin): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    let n: number | null;
    try {
      n = source.readSync(buf);
    } catch {
      break; // no stdin at all (closed descriptor)
    }
    if (n === null || n === 0) break;
    total += n;
    if (total > limit) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `network configuration on stdin exceeds ${limit} bytes`,
        "the plugin refuses oversized input before decoding it",
      );
    }
    chunks.push(buf.slice(0, n));
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
