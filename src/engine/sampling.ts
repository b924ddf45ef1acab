/**
 * Token selection from one logit vector: greedy at temperature 0, else temperature -> min_p -> top_k -> top_p
 * (the order vLLM applies them), then one draw from the request's own seeded generator.
 *
 * Cost policy: a step never sorts the vocabulary. One pass finds the top logit, a second keeps the tokens that
 * can matter (inside min_p, and with a nonzero probability in float64) with their weights; top-k and top-p then
 * select by partial ordering (quickselect of the k best, or of growing prefixes for top-p), and only the few
 * survivors are sorted. The result is the set a full sort would keep (ties broken by the lower id), drawn in the
 * same order: by decreasing probability when top-k or top-p cut, by id otherwise.
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

/** exp(x) is 0 in float64 below about -745.13: such tokens can never be drawn. */
const EXP_UNDERFLOW = -746;

/**
 * Top-p without top-k first weighs only the tokens within this many nats of the top one; the rest are bounded
 * (each weighs less than e^-band) and weighed only when that bound leaves the cut in doubt.
 */
const TOP_P_BANDS = [-16, -40, -Infinity];

/** Scratch space reused across calls (JS runs one sampler at a time): candidate ids and their weights. */
let scratchIds = new Int32Array(0);
let scratchWeights = new Float64Array(0);

/** Picks a token; `uniform` draws from [0, 1). */
export function sampleToken(logits: Float32Array, p: Readonly<SamplingParams>, uniform: () => number): number {
  if (!(p.temperature > 0)) return argmax(logits);
  const kept = keptTokens(logits, p);
  if (kept === null) return argmax(logits);
  const { ids, weights, count } = kept;
  let total = 0;
  for (let j = 0; j < count; j++) total += weights[j];
  let r = uniform() * total;
  for (let j = 0; j < count; j++) {
    r -= weights[j];
    if (r < 0) return ids[j];
  }
  return ids[count - 1];
}

/** The tokens a draw chooses from, in draw order, with their unnormalised weights (valid until the next call). */
export interface KeptTokens {
  ids: Int32Array;
  weights: Float64Array;
  count: number;
}

/**
 * The tokens temperature > 0 sampling keeps after min_p, top_k and top_p; null when every logit is -Infinity.
 * A token's weight is exp((logit - max) / T), the top token's 1. The arrays are shared scratch space: read the
 * first `count` entries before the next call.
 */
export function keptTokens(logits: Float32Array, p: Readonly<SamplingParams>): KeptTokens | null {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return null;
  if (scratchIds.length < n) {
    scratchIds = new Int32Array(n);
    scratchWeights = new Float64Array(n);
  }
  const ids = scratchIds;
  const weights = scratchWeights;
  const scan = new CandidateScan(logits, max, p);
  const topK = Math.max(p.topK, 0);
  const topP = p.topP > 0 && p.topP < 1 ? p.topP : 1;

  if (topK > 0) {
    const { count, cut } = scan.bestK(topK, ids);
    if (cut || topP < 1) {
      for (let j = 0; j < count; j++) weights[j] = scan.weight(ids[j]);
      if (topP < 1) return { ids, weights, count: nucleus(ids, weights, count, topP, 0) };
      sortRange(ids, weights, 0, count);
      return { ids, weights, count };
    }
    // No more candidates than k and no top-p: no cut, drawn by id as a full pass would.
  }
  if (topP < 1) {
    // Weigh the band within 16 nats of the top first; the rest weigh at most (their count) x e^-16 together.
    // When the cut is the same whether that mass is 0 or its bound, it is the full pass's cut; otherwise widen.
    for (const band of TOP_P_BANDS) {
      const { near, far } = scan.collect(band, ids);
      for (let j = 0; j < near; j++) weights[j] = scan.weight(ids[j]);
      const cut = nucleus(ids, weights, near, topP, far === 0 ? 0 : far * Math.exp(band));
      if (cut > 0) return { ids, weights, count: cut };
    }
  }
  const { near } = scan.collect(-Infinity, ids);
  for (let j = 0; j < near; j++) weights[j] = scan.weight(ids[j]);
  return { ids, weights, count: near };
}

/**
 * One logit vector seen through temperature and min_p: a token's log-weight is z = (logit - max) / T, and it is
 * a candidate when exp(z) > 0 and exp(z) >= minP. Only tokens near that floor pay an exp to be tested; the test is
 * made on the weight itself, as a full pass would make it.
 */
class CandidateScan {
  private readonly invT: number;
  private readonly floor: number;
  private readonly minP: number;

  constructor(
    private readonly logits: Float32Array,
    private readonly max: number,
    p: Readonly<SamplingParams>,
  ) {
    this.invT = 1 / p.temperature;
    this.minP = Math.max(p.minP, 0);
    this.floor = Math.max(EXP_UNDERFLOW, this.minP > 0 ? Math.log(this.minP) : EXP_UNDERFLOW);
  }

  weight(id: number): number {
    return Math.exp((this.logits[id] - this.max) * this.invT);
  }

  private isCandidate(z: number, id: number): boolean {
    if (!(z >= this.floor - 1e-6)) return false;
    if (z >= this.floor + 1e-6) return true;
    const w = this.weight(id);
    return w > 0 && w >= this.minP;
  }

  /** Candidates with z >= band into `ids` (by id); `far` counts those below the band (an upper bound). */
  collect(band: number, ids: Int32Array): { near: number; far: number } {
    const { logits, max, invT } = this;
    // Compare logits with the band's and the floor's logits first (a margin for rounding), z only near them.
    const temperature = 1 / invT;
    const bandLogit = band === -Infinity ? -Infinity : max + band * temperature - 1e-6;
    const floorLogit = max + (this.floor - 1e-6) * temperature - 1e-6;
    let near = 0;
    let far = 0;
    for (let i = 0; i < logits.length; i++) {
      const l = logits[i];
      if (l < floorLogit) continue;
      if (l < bandLogit) {
        far++;
        continue;
      }
      const z = (l - max) * invT;
      if (z >= band) {
        if (this.isCandidate(z, i)) ids[near++] = i;
      } else far++;
    }
    return { near, far };
  }

  /**
   * The k best candidates (higher logit, then lower id) into ids[0, count), unordered; `cut` tells whether any
   * candidate was left out. A min-heap of k: most tokens cost one comparison.
   */
  bestK(k: number, ids: Int32Array): { count: number; cut: boolean } {
    const { logits, max, invT } = this;
    // Float32 logits never collapse to one float64 weight, so ranking by logit is ranking by weight.
    const worse = (a: number, b: number) => logits[a] < logits[b] || (logits[a] === logits[b] && a > b);
    let size = 0;
    let cut = false;
    for (let i = 0; i < logits.length; i++) {
      if (size === k && !worse(ids[0], i)) {
        cut ||= this.isCandidate((logits[i] - max) * invT, i);
        continue;
      }
      if (!this.isCandidate((logits[i] - max) * invT, i)) continue;
      if (size < k) {
        let c = size++;
        ids[c] = i;
        while (c > 0) {
          const parent = (c - 1) >> 1;
          if (!worse(ids[c], ids[parent])) break;
          swapIds(ids, c, parent);
          c = parent;
        }
        continue;
      }
      cut = true;
      ids[0] = i; // replaces the worst, then sinks
      for (let c = 0; ; ) {
        const l = 2 * c + 1;
        if (l >= size) break;
        const w = l + 1 < size && worse(ids[l + 1], ids[l]) ? l + 1 : l;
        if (!worse(ids[w], ids[c])) break;
        swapIds(ids, c, w);
        c = w;
      }
    }
    return { count: size, cut };
  }
}

function swapIds(ids: Int32Array, a: number, b: number): void {
  const t = ids[a];
  ids[a] = ids[b];
  ids[b] = t;
}

/**
 * Top-p over the first `count` candidates: leaves the smallest best-first prefix whose mass reaches topP x the
 * total at the front, sorted, and returns its length. `farMass` bounds the weight of candidates outside these
 * (all lighter than every one inside); returns 0 when the cut depends on where in [0, farMass] it lies. Sorts only
 * growing prefixes (64, 256, ...), each found by quickselect, so a peaked distribution costs a few linear passes.
 */
function nucleus(ids: Int32Array, weights: Float64Array, count: number, topP: number, farMass: number): number {
  let total = 0;
  for (let j = 0; j < count; j++) total += weights[j];
  const target = topP * total;
  const targetHigh = topP * (total + farMass);
  let sorted = 0;
  let acc = 0;
  let cut = 0;
  for (let size = Math.min(64, count); ; size = Math.min(size * 4, count)) {
    if (size > sorted) selectBest(ids, weights, sorted, count, size - sorted);
    sortRange(ids, weights, sorted, size);
    for (let j = sorted; j < size; j++) {
      acc += weights[j];
      if (cut === 0 && acc >= target) cut = j + 1;
      if (cut > 0 && acc >= targetHigh) return cut === j + 1 ? cut : 0;
    }
    sorted = size;
    if (size === count) return farMass === 0 ? cut || count : 0;
  }
}

/** Sorts candidates [from, to) best first (higher weight, then lower id). */
function sortRange(ids: Int32Array, weights: Float64Array, from: number, to: number): void {
  const order = Array.from({ length: to - from }, (_, j) => from + j);
  order.sort((a, b) => weights[b] - weights[a] || ids[a] - ids[b]);
  const sortedIds = order.map((j) => ids[j]);
  const sortedWeights = order.map((j) => weights[j]);
  for (let j = from; j < to; j++) {
    ids[j] = sortedIds[j - from];
    weights[j] = sortedWeights[j - from];
  }
}

/** True when candidate a ranks before candidate b (higher weight; on a tie, lower id). */
function better(ids: Int32Array, weights: Float64Array, a: number, b: number): boolean {
  return weights[a] > weights[b] || (weights[a] === weights[b] && ids[a] < ids[b]);
}

function swapIn(ids: Int32Array, weights: Float64Array, a: number, b: number): void {
  const id = ids[a];
  ids[a] = ids[b];
  ids[b] = id;
  const w = weights[a];
  weights[a] = weights[b];
  weights[b] = w;
}

/**
 * Quickselect: rearranges candidates [from, to) so that the k best of them occupy [from, from + k), in no
 * particular order. Median-of-three pivots; expected linear time.
 */
function selectBest(ids: Int32Array, weights: Float64Array, from: number, to: number, k: number): void {
  let lo = from;
  let hi = to - 1;
  const want = from + k - 1; // the k-th best lands here; everything before it is better
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    if (better(ids, weights, mid, lo)) swapIn(ids, weights, mid, lo);
    if (better(ids, weights, hi, lo)) swapIn(ids, weights, hi, lo);
    if (better(ids, weights, hi, mid)) swapIn(ids, weights, hi, mid);
    // mid now holds the median of the three: park it at hi and partition [lo, hi) around it (Lomuto; ids are
    // unique, so no two candidates tie and the partition never degenerates on equal weights).
    swapIn(ids, weights, mid, hi);
    let store = lo;
    for (let j = lo; j < hi; j++) {
      if (better(ids, weights, j, hi)) {
        swapIn(ids, weights, j, store);
        store++;
      }
    }
    swapIn(ids, weights, store, hi);
    if (store === want) return;
    if (store < want) lo = store + 1;
    else hi = store - 1;
  }
}
