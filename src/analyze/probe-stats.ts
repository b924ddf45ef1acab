/**
 * Interval arithmetic of the probe analysis. Owns only the Wilson score interval.
 *
 * 1. Wilson score interval at 95% (z = 1.96) for `correct` successes in `total` trials; [0, 1] when total is 0.
 * 2. The probe's trials are its digit predictions (5 per test sequence), treated as independent (our reading:
 *    the five digits are drawn independently, so their predictions are close to it, but not exactly).
 */

/** z of a two-sided 95% interval. */
export const Z95 = 1.959964;

/** The 95% Wilson score interval [lo, hi] of a proportion (clause 1). */
export function wilsonInterval(correct: number, total: number, z = Z95): [number, number] {
  if (total <= 0) return [0, 1];
  const p = correct / total;
  const z2 = z * z;
  const denom = 1 + z2 / total;
  const centre = (p + z2 / (2 * total)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / total + z2 / (4 * total * total))) / denom;
  // Exact ends at 0 and n successes (the formula gives them up to rounding).
  const lo = correct <= 0 ? 0 : Math.max(0, centre - half);
  const hi = correct >= total ? 1 : Math.min(1, centre + half);
  return [lo, hi];
}
