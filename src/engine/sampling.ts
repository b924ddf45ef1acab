/**
 * Token selection from one logit vector: greedy at temperature 0, else temperature -> min_p -> top_k -> top_p
 * (the order vLLM applies them), then one draw from the request's own seeded generator.
 */
import { Rng } from "../model/ops.js";
import type { SamplingParams } from "./types.js";

/** A request's sampler: owns its random stream, so a request's tokens depend only on its seed and logits. */
export class Sampler {
  private readonly rng: Rng;
  constructor(
    readonly params: Readonly<SamplingParams>,
    seed: number = params.seed ?? Math.floor(Math.random() * 2 ** 32),
  ) {
    this.rng = new Rng(seed);
  }

  sample(logits: Float32Array): number {
    return sampleToken(logits, this.params, () => this.rng.next());
  }
}

/** Index of the largest logit (first one on ties). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/** Picks a token; `uniform` draws from [0, 1). */
export function sampleToken(logits: Float32Array, p: Readonly<SamplingParams>, uniform: () => number): number {
  if (!(p.temperature > 0)) return argmax(logits);
  const n = logits.length;
  const invT = 1 / p.temperature;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return argmax(logits);

  // Unnormalised probabilities relative to the top token (which gets 1).
  const weights = new Float64Array(n);
  for (let i = 0; i < n; i++) weights[i] = Math.exp((logits[i] - max) * invT);

  // min_p: relative to the top token's probability, i.e. weight >= minP.
  let ids: number[] = [];
  const minP = p.minP > 0 ? p.minP : 0;
  for (let i = 0; i < n; i++) if (weights[i] > 0 && weights[i] >= minP) ids.push(i);

  const topK = p.topK > 0 ? p.topK : 0;
  const topP = p.topP > 0 && p.topP < 1 ? p.topP : 1;
  if ((topK > 0 && topK < ids.length) || topP < 1) {
    ids.sort((a, b) => weights[b] - weights[a] || a - b);
    if (topK > 0 && topK < ids.length) ids = ids.slice(0, topK);
    if (topP < 1) {
      let total = 0;
      for (const i of ids) total += weights[i];
      let acc = 0;
      let keep = ids.length;
      for (let j = 0; j < ids.length; j++) {
        acc += weights[ids[j]];
        if (acc >= topP * total) {
          keep = j + 1;
          break;
        }
      }
      ids = ids.slice(0, keep);
    }
  }

  let total = 0;
  for (const i of ids) total += weights[i];
  let r = uniform() * total;
  for (const i of ids) {
    r -= weights[i];
    if (r < 0) return i;
  }
  return ids[ids.length - 1];
}
