/**
 * Order statistics for benchmark samples: medians and tail percentiles, nothing that assumes a distribution.
 * @module
 */

/** The `q` quantile (0..1) of `xs` by the nearest-rank method; NaN for no samples. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** The median of `xs` (the mean of the two middle values for an even count); NaN for no samples. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The 95th percentile of `xs`. */
export function p95(xs: readonly number[]): number {
  return quantile(xs, 0.95);
}

/** A number rounded to `digits` decimals, for tables and JSON that a reader compares by eye. */
export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
