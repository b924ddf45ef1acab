/**
 * Group-relative advantages (GRPO's baseline, which CISPO keeps): each prompt is answered `group` times and a
 * response's advantage is its reward against its own group's, so no value network is needed.
 *
 * 1. A_i = (r_i - mean(r)) / (std(r) + eps) with `scale: "std"` (the default, as GRPO and MiniMax-M1's CISPO),
 *    or A_i = r_i - mean(r) with `scale: "none"` (Dr. GRPO: no bias toward groups of low variance).
 * 2. std is the population standard deviation of the group; eps keeps a group of equal rewards at exactly 0:
 *    such a group carries no signal, and every one of its tokens gets advantage 0 (only the KL term moves it).
 * 3. Every token of a response gets its response's advantage (outcome reward, no per-token credit).
 */

export type AdvantageScale = "std" | "none";

/** Added to the group's std before dividing, so a group of equal rewards has advantage 0, not NaN. */
export const ADVANTAGE_EPS = 1e-6;

/** Default: GRPO's normalisation by the group's standard deviation. */
export const DEFAULT_ADVANTAGE_SCALE: AdvantageScale = "std";

/** The advantages of one group's rewards, in the same order. */
export function groupAdvantages(rewards: readonly number[], scale: AdvantageScale = DEFAULT_ADVANTAGE_SCALE): number[] {
  const n = rewards.length;
  if (n === 0) return [];
  for (const r of rewards) if (!Number.isFinite(r)) throw new RangeError(`reward ${r} is not a finite number`);
  const mean = rewards.reduce((a, b) => a + b, 0) / n;
  const centred = rewards.map((r) => r - mean);
  if (scale === "none") return centred;
  const std = Math.sqrt(centred.reduce((a, c) => a + c * c, 0) / n);
  // Equal rewards leave float rounding in `centred`; a group with no spread has no signal at all.
  if (std < 1e-12) return centred.map(() => 0);
  return centred.map((c) => c / (std + ADVANTAGE_EPS));
}
