/**
 * KV sizes for people: the simulator reports KV in decimal GB (bytes / 1e9, src/kv/simulate.ts); a small model's
 * cache is a few MB, which "0.000 GB" hides. This module picks the unit that fits.
 *
 * Policy:
 * 1. Decimal units, as the simulator's GB: B, kB (1e3), MB (1e6), GB (1e9); the largest unit in which the value
 *    is at least 1 (B below 1 kB).
 * 2. A column of values shares one unit, picked from its largest value (`pickKvUnit`), so rows compare at a glance.
 * 3. Three significant digits (at least the integer part): 1.23, 12.3, 123, 1234.
 */

export type KvUnit = "B" | "kB" | "MB" | "GB";

/** Bytes per unit. */
export const KV_UNIT_BYTES: Readonly<Record<KvUnit, number>> = Object.freeze({ B: 1, kB: 1e3, MB: 1e6, GB: 1e9 });

const LARGEST_FIRST: readonly KvUnit[] = ["GB", "MB", "kB", "B"];

/** The unit for a column whose largest value is `maxGB` (policy 1 and 2). */
export function pickKvUnit(maxGB: number): KvUnit {
  const bytes = Math.abs(maxGB) * 1e9;
  return LARGEST_FIRST.find((u) => bytes >= KV_UNIT_BYTES[u]) ?? "B";
}

/** `gb` in `unit`, three significant digits, without the unit. */
export function formatInKvUnit(gb: number, unit: KvUnit): string {
  if (!Number.isFinite(gb)) return "–";
  const v = (gb * 1e9) / KV_UNIT_BYTES[unit];
  if (v === 0) return "0";
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(v))));
  return v.toFixed(Math.min(digits, 6));
}

/** `gb` in the unit that fits it alone, with the unit: "12.3 MB". */
export function formatKvBytes(gb: number): string {
  const unit = pickKvUnit(gb);
  return `${formatInKvUnit(gb, unit)} ${unit}`;
}
