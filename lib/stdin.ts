/**
 * Reading the network configuration from stdin, bounded in size.
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** The largest configuration accepted on stdin; a runtime never sends one near this size. */
export const MAX_STDIN_BYTES = 1 << 20;

/**
 * Reads all of stdin synchronously (cheaper at start-up than a stream) and refuses more than `limit` bytes.
 * A closed or absent stdin reads as empty.
 */
export function readStdin(limit = MAX_STDIN_BYTES): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    let n: number | null;
    try {
      n = Deno.stdin.readSync(buf);
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
