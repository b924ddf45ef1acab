/** Order statistics shared by the KV tables, the reports and the benchmarks. */
/** The median (the mean of the middle two for an even count); 0 for no values. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
