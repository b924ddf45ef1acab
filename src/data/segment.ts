/**
 * Segmentation step of the OpenMementos data pipeline (paper section 3, "Stage 3: Segmentation").
 *
 * Given n sentences with token counts c[0..n-1] and boundary scores s[0..n-2] (s[i] sits between sentence i
 * and sentence i+1), choose cuts that split the sentences into K contiguous blocks maximising
 *
 *     objective = (1/K) * (sum of the scores at the K-1 cuts) - lambda * std(block sizes) / mean(block sizes)
 *
 * subject to every block holding at least `minBlockTokens` tokens. K is free, but at least `minBlocks` whenever a
 * segmentation with that many blocks satisfies the size constraint.
 *
 * Conventions (our choices; the paper does not pin them down):
 * - The 1/K factor multiplies the sum over the K-1 cuts, exactly as the paper writes it (so a K-block segmentation
 *   whose cuts all score 3 gets 3(K-1)/K, not 3).
 * - std is the POPULATION standard deviation (divide by K, numpy's default `np.std`). The paper only says
 *   "standard deviation" of the block sizes; the population form is the one defined for K = 1 and is what a
 *   numpy implementation computes unless it passes ddof=1.
 * - K = 1: there are no cuts and the single block's std is 0, so the objective is 0 - 0 = 0. If the mean block size
 *   is 0 (only possible with minBlockTokens = 0 and all counts 0), std/mean is taken as 0.
 * - Fallbacks: if no segmentation with >= minBlocks blocks satisfies the size constraint, the best feasible one
 *   with fewer blocks is returned; if not even one block is feasible (total < minBlockTokens), the result is the
 *   single block covering everything, objective 0, `feasible: false`.
 * - Ties (equal objective up to 1e-12): fewer blocks first; then, for the same K, the smaller sum of squared block
 *   sizes (the more balanced one); then, for identical (cut-score sum, sum of squares), the lexicographically
 *   earliest cut positions. The result is deterministic (checked against a brute force on integer inputs).
 *
 * Exact algorithm (`segmentBlocks`). For a fixed K the mean block size T/K is fixed (T = total tokens), so with
 * S = sum of cut scores and Q = sum of squared block sizes,
 *
 *     f_K(S, Q) = S / K - (lambda / T) * sqrt(K * Q - T^2).
 *
 * f_K is increasing in S, decreasing in Q, and CONVEX in (S, Q) (minus the square root of an affine function).
 * A convex function's maximum over a finite point set is attained at a vertex of the set's convex hull, and a
 * function that is also monotone in this way attains it at a vertex on the "upper-left" chain: the points that
 * maximise S - mu * Q for some mu in [0, inf]. So it suffices to keep, for every DP state, only that chain. The
 * chain composes exactly through the DP: the achievable (S, Q) set of a state is a union of translates of its
 * successors' sets, and every such vertex of a union of translates is a translate of such a vertex of one of the
 * parts. Hence a DP over (start sentence j, blocks left r) that stores the upper-left convex chain of (S, Q) per
 * state yields, at (0, K), a set containing an optimal (S, Q) for every K; the exact optimum is the best of those.
 * The chain is a subset of the Pareto front of non-dominated (S, Q) pairs (typically 5-20 points per state with
 * pruning, at most ~150 without, for n = 400), so it is both exact and small. Points strictly inside a chain edge
 * are dropped too: along an edge f_K is strictly convex (lambda > 0) so an endpoint is at least as good.
 * Floating point: with integer token counts and integer or half-integer scores every S, Q and hull test is exact;
 * with arbitrary real scores the hull tests carry ordinary rounding (errors of order 1e-15 in the objective).
 *
 * Speed-ups that keep exactness:
 * - a whole successor chain is skipped when one point already dominates it (binary search);
 * - branch and bound: the approximate single-best-state DP (`segmentBlocksApprox`) supplies a lower bound LB,
 *   and a state (and then each point in it) is dropped when an upper bound on every completion of it is below
 *   LB. The bound uses, for the p blocks still to be placed in the prefix, the sum of the p-1 largest prefix
 *   scores (plus the forced cut) and the convexity bound sum(l^2) >= P^2 / p for prefix token total P.
 *
 * Safety valve: a state's chain is capped at `maxFrontSize` points (default 1024; in practice chains hold a few
 * dozen). If a cap ever bites, evenly spaced chain points are kept and the result reports `exact: false`.
 *
 * Work budget (bounded worst case). The DPs cost O(K_max * n^2) transitions (K_max = total tokens / minBlockTokens),
 * which is seconds at 2,000 sentences and hours at 20,000. `segmentBlocks` therefore takes `workBudget` (DP
 * transitions, default DEFAULT_SEGMENT_WORK_BUDGET) and reports `method`:
 * - "exact": the estimated cost (`estimateSegmentWork`, an upper bound for the first DP) fits and the exact solver
 *   finished within the budget (it counts its own transitions);
 * - "coarse": otherwise; the exact solver runs over sentence groups on a coarser grid sized to fit the budget,
 *   then each cut is refined locally (segment-budget.ts). `exact` is false; `budget` says the budget, the estimate,
 *   the work spent and the number of groups. Total work is at most about twice the budget.
 */
import { z } from "zod";
import { UserError } from "../errors.js";
import {
  balancedCuts,
  estimateSegmentWork,
  groupSentences,
  refineCuts,
  spreadCounts,
  type Group,
  type SegmentBudgetReport,
} from "./segment-budget.js";

export type { SegmentBudgetReport } from "./segment-budget.js";

export type Block = [start: number, end: number];

export interface SegmentOptions {
  /** Token count of each sentence (non-negative, finite). */
  tokenCounts: number[];
  /** Boundary scores; scores[i] sits between sentence i and i+1, so its length is tokenCounts.length - 1. */
  scores: number[];
  /** Every block must hold at least this many tokens. Default 200. */
  minBlockTokens?: number;
  /** lambda, the weight of the coefficient of variation of block sizes. Default 0.5. */
  varianceWeight?: number;
  /** Prefer at least this many blocks whenever feasible. Default 3. */
  minBlocks?: number;
  /** Safety cap on the points kept per DP state (exact while never reached). Default 1024. */
  maxFrontSize?: number;
  /** Branch-and-bound pruning (exact either way; off only to test or benchmark it). Default true. */
  branchAndBound?: boolean;
  /** DP transitions the exact solver may spend before the coarse grid is used. Default DEFAULT_SEGMENT_WORK_BUDGET. */
  workBudget?: number;
}

export interface SegmentStats {
  /** DP states (start sentence, blocks left) that held at least one point. */
  states: number;
  /** Total chain points stored over all states. */
  points: number;
  /** Largest chain kept in one state. */
  maxFront: number;
  /** States dropped by the branch-and-bound test. */
  prunedStates: number;
}

export interface SegmentResult {
  /** Inclusive [start, end] sentence indices, contiguous, covering every sentence. */
  blocks: Block[];
  /** The objective of `blocks`, recomputed directly from them with `segmentationObjective`. */
  objective: number;
  /** True when the result is provably optimal (no safety cap was hit). */
  exact: boolean;
  /** False when not even a single block meets minBlockTokens (the result is then one block, objective 0). */
  feasible: boolean;
  stats?: SegmentStats;
  /** How `segmentBlocks` solved it: exactly, or on a coarse grid because the exact cost was over the budget. */
  method?: "exact" | "coarse";
  /** The work budget, the estimate and the work spent (segmentBlocks only). */
  budget?: SegmentBudgetReport;
}

export const DEFAULT_MIN_BLOCK_TOKENS = 200;
export const DEFAULT_VARIANCE_WEIGHT = 0.5;
export const DEFAULT_MIN_BLOCKS = 3;
export const DEFAULT_MAX_FRONT_SIZE = 1024;
/**
 * DP transitions `segmentBlocks` may spend exactly (see the module comment). Sized so realistic traces (up to
 * ~2,000 sentences of ~25 tokens, minBlockTokens 200: at most ~1.7e8 estimated) stay exact; about 1-3 s here.
 */
export const DEFAULT_SEGMENT_WORK_BUDGET = 300_000_000;

/** Objective values closer than this are ties (see the tie rule above). */
const TIE_EPS = 1e-12;

const nonNegativeNumber = z.number().refine((x) => Number.isFinite(x) && x >= 0, "must be a finite number >= 0");
const finiteNumber = z.number().refine((x) => Number.isFinite(x), "must be a finite number");

export const SegmentInputSchema = z
  .strictObject({
    tokenCounts: z.array(nonNegativeNumber).min(1, "must hold at least one sentence"),
    scores: z.array(finiteNumber),
    minBlockTokens: nonNegativeNumber.optional(),
    varianceWeight: nonNegativeNumber.optional(),
    minBlocks: z.number().int("must be an integer").min(1, "must be >= 1").optional(),
    maxFrontSize: z.number().int("must be an integer").min(2, "must be >= 2").optional(),
    branchAndBound: z.boolean().optional(),
    workBudget: z.number().int("must be an integer").min(1, "must be >= 1").optional(),
  })
  .refine((v) => v.scores.length === v.tokenCounts.length - 1, {
    message: "must have exactly tokenCounts.length - 1 entries (one per boundary between sentences)",
    path: ["scores"],
  });

interface Normalized {
  counts: number[];
  scores: number[];
  m: number;
  lambda: number;
  minBlocks: number;
  maxFront: number;
  prune: boolean;
  workBudget: number;
}

function describeZodIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return error.message;
  const where = issue.path.length ? issue.path.join(".") + ": " : "";
  return `${where}${issue.message}`;
}

/** Validates the input (UserError with a one-line message on failure) and fills in defaults. */
export function parseSegmentInput(input: unknown): Normalized {
  const r = SegmentInputSchema.safeParse(input);
  if (!r.success) throw new UserError(`segment input: ${describeZodIssue(r.error)}`);
  const v = r.data;
  return {
    counts: v.tokenCounts,
    scores: v.scores,
    m: v.minBlockTokens ?? DEFAULT_MIN_BLOCK_TOKENS,
    lambda: v.varianceWeight ?? DEFAULT_VARIANCE_WEIGHT,
    minBlocks: v.minBlocks ?? DEFAULT_MIN_BLOCKS,
    maxFront: v.maxFrontSize ?? DEFAULT_MAX_FRONT_SIZE,
    prune: v.branchAndBound ?? true,
    workBudget: v.workBudget ?? DEFAULT_SEGMENT_WORK_BUDGET,
  };
}

/** Objective from (S, Q) for K blocks over T tokens; the exact comparison quantity used by the DPs. */
function objectiveFromSums(S: number, Q: number, K: number, T: number, lambda: number): number {
  if (T <= 0) return S / K;
  return S / K - (lambda * Math.sqrt(Math.max(0, K * Q - T * T))) / T;
}

/** Checks that `blocks` are contiguous, in order, and cover sentences 0..n-1; throws UserError otherwise. */
export function checkBlocks(blocks: readonly (readonly [number, number])[], n: number): void {
  if (blocks.length === 0) throw new UserError("blocks: must hold at least one block");
  let next = 0;
  for (const [k, b] of blocks.entries()) {
    const [start, end] = b;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start !== next || end < start || end >= n) {
      throw new UserError(`blocks.${k}: expected [${next}, e] with ${next} <= e < ${n}, got [${start}, ${end}]`);
    }
    next = end + 1;
  }
  if (next !== n) throw new UserError(`blocks: cover sentences 0..${next - 1}, expected 0..${n - 1}`);
}

/** Token size of each block. */
export function blockSizes(tokenCounts: readonly number[], blocks: readonly (readonly [number, number])[]): number[] {
  return blocks.map(([a, b]) => {
    let t = 0;
    for (let i = a; i <= b; i++) t += tokenCounts[i];
    return t;
  });
}

/**
 * The paper's objective for a given segmentation, computed directly (two-pass population std):
 * (1/K) * sum of scores at the K-1 cuts - varianceWeight * std(sizes) / mean(sizes); 0 for one block.
 * Does not check minBlockTokens (see `blocksSatisfyMinTokens`).
 */
export function segmentationObjective(
  tokenCounts: readonly number[],
  scores: readonly number[],
  blocks: readonly (readonly [number, number])[],
  varianceWeight: number = DEFAULT_VARIANCE_WEIGHT,
): number {
  checkBlocks(blocks, tokenCounts.length);
  const K = blocks.length;
  let cutSum = 0;
  for (let k = 0; k < K - 1; k++) cutSum += scores[blocks[k][1]];
  const sizes = blockSizes(tokenCounts, blocks);
  const mean = sizes.reduce((a, b) => a + b, 0) / K;
  let sq = 0;
  for (const l of sizes) sq += (l - mean) * (l - mean);
  const std = Math.sqrt(sq / K);
  const cv = mean > 0 ? std / mean : 0;
  return cutSum / K - varianceWeight * cv;
}

export function blocksSatisfyMinTokens(
  tokenCounts: readonly number[],
  blocks: readonly (readonly [number, number])[],
  minBlockTokens: number = DEFAULT_MIN_BLOCK_TOKENS,
): boolean {
  return blockSizes(tokenCounts, blocks).every((l) => l >= minBlockTokens);
}

/** Cut positions (a cut at i separates sentence i from i+1) to inclusive blocks over n sentences. */
export function cutsToBlocks(cuts: readonly number[], n: number): Block[] {
  const blocks: Block[] = [];
  let start = 0;
  for (const c of cuts) {
    blocks.push([start, c]);
    start = c + 1;
  }
  blocks.push([start, n - 1]);
  return blocks;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces of both DPs
// ---------------------------------------------------------------------------------------------------------------

function prefixSums(counts: readonly number[]): Float64Array {
  const P = new Float64Array(counts.length + 1);
  for (let i = 0; i < counts.length; i++) P[i + 1] = P[i] + counts[i];
  return P;
}

/** Which K values to choose from: >= minBlocks when any such K is feasible, else every feasible K. */
function chooseKRange(feasibleKs: readonly number[], minBlocks: number): number[] {
  const big = feasibleKs.filter((k) => k >= minBlocks);
  return big.length > 0 ? big : [...feasibleKs];
}

function singleBlockResult(
  n: number,
  counts: readonly number[],
  m: number,
  exact: boolean,
  stats?: SegmentStats,
): SegmentResult {
  const total = counts.reduce((a, b) => a + b, 0);
  return { blocks: [[0, n - 1]], objective: 0, exact, feasible: total >= m, ...(stats ? { stats } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Approximate DP: one best partial state per (end sentence, K)
// ---------------------------------------------------------------------------------------------------------------

interface ApproxOutcome {
  result: SegmentResult;
  /** K values with a feasible segmentation (exact: feasibility does not depend on which state is kept). */
  feasibleKs: number[];
  /** Objective of the result as compared inside the DP (from (S, Q)), usable as a lower bound. */
  lowerBound: number;
}

function approxCore(p: Normalized): ApproxOutcome {
  const { counts, scores, m, lambda, minBlocks } = p;
  const n = counts.length;
  const P = prefixSums(counts);
  const T = P[n];
  const kMax = n;
  // Layer k: best partial segmentation of sentences 0..j into k blocks, judged by its own partial objective.
  const layers: { S: Float64Array; Q: Float64Array; prev: Int32Array }[] = [];
  const first = { S: new Float64Array(n), Q: new Float64Array(n), prev: new Int32Array(n).fill(-2) };
  for (let j = 0; j < n; j++) {
    if (P[j + 1] >= m) {
      first.prev[j] = -1;
      first.Q[j] = P[j + 1] * P[j + 1];
    }
  }
  layers.push(first);
  for (let k = 2; k <= kMax; k++) {
    const before = layers[k - 2];
    const cur = { S: new Float64Array(n), Q: new Float64Array(n), prev: new Int32Array(n).fill(-2) };
    let any = false;
    let iTop = -1; // largest i with P[j+1] - P[i+1] >= m (non-decreasing in j)
    for (let j = 0; j < n; j++) {
      while (iTop + 1 < j && P[j + 1] - P[iTop + 2] >= m) iTop++;
      let best = -Infinity;
      for (let i = iTop; i >= 0; i--) {
        const L = P[j + 1] - P[i + 1];
        // Feasibility of (i, k-1) is monotone in i (extend the last block), so the rest are infeasible too.
        if (before.prev[i] === -2) break;
        const S = before.S[i] + scores[i];
        const Q = before.Q[i] + L * L;
        const v = objectiveFromSums(S, Q, k, P[j + 1], lambda);
        if (v > best) {
          best = v;
          cur.S[j] = S;
          cur.Q[j] = Q;
          cur.prev[j] = i;
        }
      }
      if (cur.prev[j] !== -2) any = true;
    }
    if (!any) break;
    layers.push(cur);
  }
  const feasibleKs: number[] = [];
  for (let k = 1; k <= layers.length; k++) if (layers[k - 1].prev[n - 1] !== -2) feasibleKs.push(k);
  const ks = chooseKRange(feasibleKs, minBlocks);
  if (ks.length === 0) return { result: singleBlockResult(n, counts, m, false), feasibleKs, lowerBound: 0 };
  let bestK = -1;
  let bestV = -Infinity;
  for (const k of ks) {
    const L = layers[k - 1];
    const v = objectiveFromSums(L.S[n - 1], L.Q[n - 1], k, T, lambda);
    if (v > bestV + TIE_EPS) {
      bestV = v;
      bestK = k;
    }
  }
  const cuts: number[] = [];
  let j = n - 1;
  for (let k = bestK; k >= 2; k--) {
    const i = layers[k - 1].prev[j];
    cuts.push(i);
    j = i;
  }
  cuts.reverse();
  const blocks = cutsToBlocks(cuts, n);
  return {
    result: { blocks, objective: segmentationObjective(counts, scores, blocks, lambda), exact: false, feasible: true },
    feasibleKs,
    lowerBound: bestV,
  };
}

/**
 * The approximate DP, for comparison: a forward DP that keeps a single best partial segmentation per
 * (end sentence, number of blocks), ranked by the partial segmentation's own objective. It finds the feasible
 * K values exactly but can miss the optimum; `exact` is always false.
 */
export function segmentBlocksApprox(input: SegmentOptions): SegmentResult {
  return approxCore(parseSegmentInput(input)).result;
}

// ---------------------------------------------------------------------------------------------------------------
// Exact DP over upper-left convex chains of (S, Q)
// ---------------------------------------------------------------------------------------------------------------

/** A DP state's chain: Q strictly increasing, S strictly increasing, strictly concave. */
interface Chain {
  S: Float64Array;
  Q: Float64Array;
  /** End sentence of the first block of the suffix. */
  e: Int32Array;
  /** Index of the continuing point in the chain of state (e + 1, r - 1); -1 for the last block. */
  nx: Int32Array;
}

/** Growable scratch chain used while merging. */
class ChainBuilder {
  S = new Float64Array(64);
  Q = new Float64Array(64);
  e = new Int32Array(64);
  nx = new Int32Array(64);
  len = 0;

  reset(): void {
    this.len = 0;
  }

  private grow(): void {
    const cap = this.S.length * 2;
    const S = new Float64Array(cap);
    S.set(this.S);
    const Q = new Float64Array(cap);
    Q.set(this.Q);
    const e = new Int32Array(cap);
    e.set(this.e);
    const nx = new Int32Array(cap);
    nx.set(this.nx);
    this.S = S;
    this.Q = Q;
    this.e = e;
    this.nx = nx;
  }

  /**
   * Appends a point; input must arrive sorted by Q ascending (equal Q: S descending, preferred point first).
   * Skips dominated points, pops points that stop being strict vertices of the upper-left chain.
   */
  push(s: number, q: number, e: number, nx: number): void {
    let len = this.len;
    if (len > 0 && s <= this.S[len - 1]) return;
    const S = this.S;
    const Q = this.Q;
    while (len >= 2) {
      const aq = Q[len - 2];
      const as = S[len - 2];
      const cross = (Q[len - 1] - aq) * (s - as) - (S[len - 1] - as) * (q - aq);
      if (cross >= 0) len--;
      else break;
    }
    if (len === this.S.length) this.grow();
    this.S[len] = s;
    this.Q[len] = q;
    this.e[len] = e;
    this.nx[len] = nx;
    this.len = len + 1;
  }

  toChain(cap: number): { chain: Chain; capped: boolean } {
    const len = this.len;
    let idx: number[] | null = null;
    if (len > cap) {
      // Safety valve: keep `cap` evenly spaced points including both ends (the result is then not exact).
      idx = [];
      for (let t = 0; t < cap; t++) idx.push(Math.round((t * (len - 1)) / (cap - 1)));
    }
    const size = idx ? idx.length : len;
    const chain: Chain = {
      S: new Float64Array(size),
      Q: new Float64Array(size),
      e: new Int32Array(size),
      nx: new Int32Array(size),
    };
    for (let t = 0; t < size; t++) {
      const u = idx ? idx[t] : t;
      chain.S[t] = this.S[u];
      chain.Q[t] = this.Q[u];
      chain.e[t] = this.e[u];
      chain.nx[t] = this.nx[u];
    }
    return { chain, capped: idx !== null };
  }
}

/** Upper bounds for completing a suffix state (j, r) by p >= 1 prefix blocks over sentences 0..j-1. */
class PrefixBound {
  /** top[j][t] = sum of the t largest scores among scores[0..j-2] (boundaries strictly inside the prefix). */
  private readonly top: Float64Array[];
  private readonly pMax: Int32Array;

  constructor(
    private readonly P: Float64Array,
    private readonly scores: readonly number[],
    m: number,
    private readonly lambda: number,
    private readonly kMax: number,
  ) {
    const n = P.length - 1;
    this.top = new Array(n + 1);
    this.pMax = new Int32Array(n + 1);
    const sorted: number[] = [];
    for (let j = 0; j <= n; j++) {
      // Prefix 0..j-1 holds at most j blocks, and at most P[j]/m when m > 0.
      // (+1 is slack against rounding in P[j] / m; a looser bound is still a valid bound.)
      let pm = j;
      if (m > 0) pm = Math.min(pm, Math.floor(P[j] / m) + 1);
      this.pMax[j] = pm;
      if (j >= 2) {
        // Insert scores[j-2] keeping `sorted` descending.
        const x = scores[j - 2];
        let lo = 0;
        let hi = sorted.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (sorted[mid] >= x) lo = mid + 1;
          else hi = mid;
        }
        sorted.splice(lo, 0, x);
      }
      const t = new Float64Array(Math.max(1, pm));
      let acc = 0;
      for (let u = 1; u < pm; u++) {
        acc += sorted[u - 1];
        t[u] = acc;
      }
      this.top[j] = t;
    }
  }

  /** Upper bound on the objective of any full segmentation extending suffix point (S, Q) of state (j, r), j > 0. */
  bound(j: number, r: number, S: number, Q: number): number {
    const P = this.P[j];
    const T = this.P[this.P.length - 1];
    const pm = Math.min(this.pMax[j], this.kMax - r);
    const top = this.top[j];
    const forced = this.scores[j - 1];
    let best = -Infinity;
    for (let p = 1; p <= pm; p++) {
      const K = r + p;
      const sUp = S + forced + top[p - 1];
      const qLow = Q + (P * P) / p;
      const v = objectiveFromSums(sUp, qLow, K, T, this.lambda);
      if (v > best) best = v;
    }
    return best;
  }
}

/** Index of the last chain point with Q <= q, or -1. */
function lastAtMost(Q: Float64Array, len: number, q: number): number {
  let lo = 0;
  let hi = len;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (Q[mid] <= q) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Thrown inside the exact solver when its transitions pass the meter's limit. */
class WorkBudgetExceeded extends Error {}

/** Counts DP transitions against a limit. */
class WorkMeter {
  spent = 0;
  constructor(private readonly limit: number) {}

  /** Adds `work`; throws WorkBudgetExceeded once the total passes the limit. */
  spend(work: number): void {
    this.spent += work;
    if (this.spent > this.limit) throw new WorkBudgetExceeded();
  }
}

/**
 * Optimal segmentation within a work budget (see the module comment for the objective, conventions, algorithm
 * and the budget): exact when it fits, else the coarse grid. Throws UserError on invalid input.
 */
export function segmentBlocks(input: SegmentOptions): SegmentResult {
  const p = parseSegmentInput(input);
  const P = prefixSums(p.counts);
  const estimatedWork = estimateSegmentWork(P, p.m);
  let spent = 0;
  if (estimatedWork <= p.workBudget) {
    const meter = new WorkMeter(p.workBudget);
    try {
      const r = exactSegment(p, meter, estimatedWork);
      const budget = { workBudget: p.workBudget, estimatedWork, work: meter.spent };
      return { ...r, method: "exact", budget };
    } catch (e) {
      if (!(e instanceof WorkBudgetExceeded)) throw e;
      spent = meter.spent;
    }
  }
  return coarseSegment(p, P, estimatedWork, spent);
}

/** Group sums and the scores between groups: the coarse problem. */
function coarseProblem(p: Normalized, groups: readonly Group[]): Normalized {
  const counts = groups.map(([a, b]) => {
    let t = 0;
    for (let i = a; i <= b; i++) t += p.counts[i];
    return t;
  });
  const scores = groups.slice(0, -1).map(([, b]) => p.scores[b]);
  return { ...p, counts, scores };
}

/** The coarse grid (segment-budget.ts): the exact solver over sentence groups sized to fit the budget, refined. */
function coarseSegment(p: Normalized, P: Float64Array, estimatedWork: number, spentBefore: number): SegmentResult {
  const n = p.counts.length;
  let spent = spentBefore;
  // The first DP costs about G^3 / 6 transitions over G groups: start there and shrink until the estimate fits.
  let groupCount = Math.min(n, Math.max(1, Math.floor(Math.cbrt(6 * p.workBudget))));
  for (;;) {
    const groups = groupSentences(p.counts, p.scores, groupCount);
    const coarse = coarseProblem(p, groups);
    const coarseP = prefixSums(coarse.counts);
    const coarseEstimate = estimateSegmentWork(coarseP, p.m);
    if (coarseEstimate > p.workBudget && groupCount > 1) {
      groupCount = Math.max(1, Math.floor(groupCount * 0.8));
      continue;
    }
    const meter = new WorkMeter(p.workBudget);
    let r: SegmentResult;
    try {
      r = exactSegment(coarse, meter, coarseEstimate);
    } catch (e) {
      if (!(e instanceof WorkBudgetExceeded) || groupCount <= 1) throw e;
      spent += meter.spent;
      groupCount = Math.max(1, Math.floor(groupCount * 0.7));
      continue;
    }
    spent += meter.spent;
    const widest = groups.reduce((w, [a, b]) => Math.max(w, b - a + 1), 1);
    const candidates = [r.blocks.slice(0, -1).map(([, b]) => groups[b][1])];
    if (r.feasible) candidates.push(...balancedCandidates(p, P, r.blocks.length));
    let blocks: Block[] = [];
    let objective = -Infinity;
    for (const cuts of candidates) {
      const refined = refineCuts(cuts, P, p.scores, p.m, p.lambda, widest);
      spent += refined.work;
      const b = cutsToBlocks(refined.cuts, n);
      const v = segmentationObjective(p.counts, p.scores, b, p.lambda);
      if (v > objective + TIE_EPS) {
        blocks = b;
        objective = v;
      }
    }
    return {
      blocks,
      objective,
      exact: false,
      feasible: r.feasible,
      ...(r.stats ? { stats: r.stats } : {}),
      method: "coarse",
      budget: { workBudget: p.workBudget, estimatedWork, work: spent, groups: groups.length },
    };
  }
}

/** Block counts tried as equal-token starting points besides the coarse answer (coarse grid, clause 3). */
const BALANCED_CANDIDATES = 32;

/**
 * Equal-token segmentations for block counts spread over the K range segmentBlocks would choose from (>= minBlocks
 * when feasible; at most total / minBlockTokens), the coarse answer's K included: they reach block counts and
 * balances a grid of groups cannot.
 */
function balancedCandidates(p: Normalized, P: Float64Array, coarseK: number): number[][] {
  const n = p.counts.length;
  const T = P[n];
  const kMax = Math.min(n, p.m > 0 ? Math.floor(T / p.m) : n);
  const kMin = kMax >= p.minBlocks ? p.minBlocks : 1;
  const out: number[][] = [];
  for (const K of new Set([coarseK, ...spreadCounts(kMin, kMax, BALANCED_CANDIDATES)])) {
    if (K < 2 || K < kMin) continue;
    const cuts = balancedCuts(P, K, p.m);
    if (cuts) out.push(cuts);
  }
  return out;
}

/** The exact solver (module comment); spends its transitions on `meter`, `approxWork` for the first DP up front. */
function exactSegment(p: Normalized, meter: WorkMeter, approxWork: number): SegmentResult {
  meter.spend(approxWork);
  const { counts, scores, m, lambda, minBlocks, maxFront, prune } = p;
  const n = counts.length;
  const P = prefixSums(counts);
  const T = P[n];

  // The approximate DP gives the feasible K values (exactly) and a lower bound for branch and bound.
  const approx = approxCore(p);
  const stats: SegmentStats = { states: 0, points: 0, maxFront: 0, prunedStates: 0 };
  const ks = chooseKRange(approx.feasibleKs, minBlocks);
  if (ks.length === 0) return singleBlockResult(n, counts, m, true, stats);
  if (ks.length === 1 && ks[0] === 1) {
    stats.states = 1;
    stats.points = 1;
    stats.maxFront = 1;
    return { blocks: [[0, n - 1]], objective: 0, exact: true, feasible: true, stats };
  }
  const kMax = ks[ks.length - 1];
  const LB = approx.lowerBound;
  const pruneBelow = LB - 1e-9 * (1 + Math.abs(LB));
  const bounds = new PrefixBound(P, scores, m, lambda, kMax);

  // eStart[j]: first e >= j with P[e+1] - P[j] >= m (n when none).
  const eStart = new Int32Array(n);
  {
    let e = 0;
    for (let j = 0; j < n; j++) {
      if (e < j) e = j;
      while (e < n && P[e + 1] - P[j] < m) e++;
      eStart[j] = e;
    }
  }

  let exact = true;
  // levels[r][j]: chain of suffix state "sentences j..n-1 in r blocks" (null when empty or pruned).
  const levels: (Chain | null)[][] = [[]];
  const H = new ChainBuilder();
  const G = new ChainBuilder();
  let builders: [ChainBuilder, ChainBuilder] = [H, G];

  const finish = (j: number, r: number, b: ChainBuilder): Chain | null => {
    if (b.len === 0) return null;
    if (prune && j > 0) {
      // Branch and bound: drop the state if even its best corner cannot reach LB, else drop hopeless points.
      if (bounds.bound(j, r, b.S[b.len - 1], b.Q[0]) < pruneBelow) {
        stats.prunedStates++;
        return null;
      }
      let w = 0;
      for (let t = 0; t < b.len; t++) {
        if (bounds.bound(j, r, b.S[t], b.Q[t]) < pruneBelow) continue;
        b.S[w] = b.S[t];
        b.Q[w] = b.Q[t];
        b.e[w] = b.e[t];
        b.nx[w] = b.nx[t];
        w++;
      }
      b.len = w;
      if (w === 0) {
        stats.prunedStates++;
        return null;
      }
    }
    const { chain, capped } = b.toChain(maxFront);
    if (capped) exact = false;
    stats.states++;
    stats.points += chain.S.length;
    if (chain.S.length > stats.maxFront) stats.maxFront = chain.S.length;
    return chain;
  };

  // r = 1: the single block j..n-1.
  const level1: (Chain | null)[] = new Array(n).fill(null);
  for (let j = 0; j < n; j++) {
    const L = T - P[j];
    if (L < m) continue;
    if (j > 0 && P[j] < m) continue; // the prefix cannot form a block
    H.reset();
    H.push(0, L * L, n - 1, -1);
    level1[j] = finish(j, 1, H);
  }
  levels.push(level1);

  for (let r = 2; r <= kMax; r++) {
    const below = levels[r - 1];
    // Start sentences of the non-empty states one level down, ascending.
    const live: number[] = [];
    for (let i = 1; i < n; i++) if (below[i]) live.push(i);
    if (live.length === 0) break;
    const cur: (Chain | null)[] = new Array(n).fill(null);
    let firstLive = 0; // first index into `live` with live[.] > eStart[j] (eStart is non-decreasing in j)
    for (let j = 0; j < n; j++) {
      if (j > 0 && P[j] < m) continue;
      if (j > 0 && r + 1 > kMax) continue; // a prefix block would exceed the largest useful K
      let [acc, tmp] = builders;
      acc.reset();
      while (firstLive < live.length && live[firstLive] <= eStart[j]) firstLive++;
      meter.spend(live.length - firstLive);
      for (let u = firstLive; u < live.length; u++) {
        const e = live[u] - 1;
        const succ = below[e + 1] as Chain;
        const L = P[e + 1] - P[j];
        const add = L * L;
        const cut = scores[e];
        const cl = succ.S.length;
        // Skip the successor when one accumulated point dominates its whole chain.
        if (acc.len > 0) {
          const k = lastAtMost(acc.Q, acc.len, succ.Q[0] + add);
          if (k >= 0 && acc.S[k] >= succ.S[cl - 1] + cut) continue;
        }
        // Merge acc (earlier e, preferred on ties) with the translated successor chain into tmp.
        tmp.reset();
        let a = 0;
        let c = 0;
        const aLen = acc.len;
        while (a < aLen || c < cl) {
          let takeA: boolean;
          if (a >= aLen) takeA = false;
          else if (c >= cl) takeA = true;
          else {
            const cq = succ.Q[c] + add;
            takeA = acc.Q[a] < cq || (acc.Q[a] === cq && acc.S[a] >= succ.S[c] + cut);
          }
          if (takeA) {
            tmp.push(acc.S[a], acc.Q[a], acc.e[a], acc.nx[a]);
            a++;
          } else {
            tmp.push(succ.S[c] + cut, succ.Q[c] + add, e, c);
            c++;
          }
        }
        builders = [tmp, acc];
        [acc, tmp] = builders;
      }
      cur[j] = finish(j, r, acc);
    }
    levels.push(cur);
  }

  // Pick the best (K, point) by the tie rule: K ascending, Q ascending, strictly better by more than TIE_EPS.
  let bestK = -1;
  let bestIdx = -1;
  let bestV = -Infinity;
  for (const K of ks) {
    const ch = levels[K]?.[0];
    if (!ch) continue;
    for (let t = 0; t < ch.S.length; t++) {
      const v = objectiveFromSums(ch.S[t], ch.Q[t], K, T, lambda);
      if (v > bestV + TIE_EPS) {
        bestV = v;
        bestK = K;
        bestIdx = t;
      }
    }
  }
  if (bestK < 0) {
    // Cannot happen: the approximate solution's segmentation survives pruning up to ties; keep it as a guard.
    return { ...approx.result, exact: false, stats };
  }
  const blocks: Block[] = [];
  let j = 0;
  let idx = bestIdx;
  for (let r = bestK; r >= 1; r--) {
    const ch = levels[r][j] as Chain;
    const e = ch.e[idx];
    blocks.push([j, e]);
    idx = ch.nx[idx];
    j = e + 1;
  }
  const objective = segmentationObjective(counts, scores, blocks, lambda);
  // Only when the safety cap bit: never return less than the approximate DP found.
  if (!exact && approx.result.objective > objective) return { ...approx.result, exact: false, stats };
  return { blocks, objective, exact, feasible: true, stats };
}
