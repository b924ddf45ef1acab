import { BlockTracker } from "./tracker.js";
import type { MaskingConfig, TrackerTokenIds } from "./config.js";

/** Sentinel in `visibleUntil`: the key is never evicted. */
export const NEVER = 0x7fffffff;

/**
 * Attention pattern in a compact per-token form, O(n) memory:
 *   query q sees key k  <=>  k <= q  &&  viewAt[q] <= visibleUntil[k]
 * `visibleUntil[k]` is the position of the token whose processing evicts key k (it still sees k), or NEVER.
 * `viewAt[q]` is q, except for rows whose KV is recomputed in restart mode: those see the cache as it is
 * right after the eviction at trigger t, so `viewAt[q] = t + 1`.
 * Stage 1 (causal) is the special case visibleUntil = NEVER everywhere.
 */
export interface CompactAttentionPattern {
  readonly length: number;
  readonly visibleUntil: Int32Array;
  readonly viewAt: Int32Array;
}

export function isVisible(p: CompactAttentionPattern, q: number, k: number): boolean {
  return k <= q && p.viewAt[q] <= p.visibleUntil[k];
}

/** Stage 1: full causal attention. */
export function causalPattern(length: number): CompactAttentionPattern {
  const viewAt = new Int32Array(length);
  for (let i = 0; i < length; i++) viewAt[i] = i;
  return { length, visibleUntil: new Int32Array(length).fill(NEVER), viewAt };
}

/**
 * Stage 2: memento attention. Runs the block tracker over the sequence (first `promptLength` tokens as prompt)
 * so that row q of the pattern is exactly the set of keys resident in the engine's KV cache when token q is
 * computed. In restart mode the rows of a recomputed memento describe its recomputed KV (its block hidden);
 * the logits those rows produce are the recomputed ones, not the ones the memento was sampled from.
 */
export function mementoPattern(
  tokens: ArrayLike<number>,
  promptLength: number,
  ids: TrackerTokenIds,
  config: Readonly<MaskingConfig>,
): CompactAttentionPattern {
  const n = tokens.length;
  const visibleUntil = new Int32Array(n).fill(NEVER);
  const viewAt = new Int32Array(n);
  const tracker = new BlockTracker(config, ids);
  for (let q = 0; q < n; q++) {
    viewAt[q] = q;
    const evictions = tracker.push(tokens[q], q < promptLength);
    for (const ev of evictions) {
      const stop = Math.min(ev.end, n);
      for (let k = ev.start; k < stop; k++) if (visibleUntil[k] === NEVER) visibleUntil[k] = q;
      if (ev.recomputeFrom !== undefined) {
        for (let r = ev.recomputeFrom; r <= q; r++) viewAt[r] = q + 1;
      }
    }
  }
  return { length: n, visibleUntil, viewAt };
}

/** Dense boolean matrix, row-major: `mask[q * n + k] === 1` when query q sees key k. O(n^2) memory. */
export function denseMask(p: CompactAttentionPattern): Uint8Array {
  const n = p.length;
  const out = new Uint8Array(n * n);
  for (let q = 0; q < n; q++) {
    const view = p.viewAt[q];
    const row = q * n;
    for (let k = 0; k <= q; k++) if (view <= p.visibleUntil[k]) out[row + k] = 1;
  }
  return out;
}

/** The keys query q sees, ascending. */
export function visibleKeys(p: CompactAttentionPattern, q: number): number[] {
  const out: number[] = [];
  const view = p.viewAt[q];
  for (let k = 0; k <= q; k++) if (view <= p.visibleUntil[k]) out.push(k);
  return out;
}
