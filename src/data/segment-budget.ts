/**
 * The bounded path of segmentation (segment.ts): what the exact DP would cost, and the coarse-grid
 * approximation used when that cost is over the work budget.
 *
 * 1. Cost is counted in DP transitions (one candidate (previous cut, block) pair examined), a machine-independent
 *    unit, so whether a trace is segmented exactly never depends on the machine or its load.
 *    `estimateSegmentWork` is an upper bound on the transitions of the single-best-state DP that the exact
 *    solver runs first; the exact solver also counts its own transitions and stops at the budget.
 * 2. Coarse grid: sentences are grouped into runs of about equal tokens, each group ending at the best-scoring
 *    boundary near its target size; the exact solver then runs over the groups (cuts only between groups).
 * 3. Refinement: each cut of the coarse answer is then moved, one at a time, to the best position within the
 *    neighbouring groups that keeps both blocks >= minBlockTokens, while the objective improves. The result is
 *    a valid segmentation, never claimed to be optimal.
 */

/** What the bounded path reports. */
export interface SegmentBudgetReport {
  /** The work budget, in DP transitions. */
  workBudget: number;
  /** The estimated transitions of the exact DP over all sentences. */
  estimatedWork: number;
  /** Transitions actually spent (exact attempts and the coarse solve together). */
  work: number;
  /** Sentence groups of the coarse grid; absent when the answer is exact. */
  groups?: number;
}

/** Inclusive sentence ranges. */
export type Group = [start: number, end: number];

/**
 * Upper bound on the transitions of the single-best-state DP over sentences with prefix token sums `P`
 * (length n + 1) and minimum block size `m`: for each block count k >= 2 and end sentence j, the candidates i
 * run from the last one leaving a block >= m down to the first prefix that can hold k - 1 blocks.
 */
export function estimateSegmentWork(P: Float64Array, m: number): number {
  const n = P.length - 1;
  const T = P[n];
  // iTop[j]: largest i < j with P[j+1] - P[i+1] >= m (-1 when none); non-decreasing in j.
  const iTop = new Int32Array(n);
  let i = -1;
  for (let j = 0; j < n; j++) {
    while (i + 1 < j && P[j + 1] - P[i + 2] >= m) i++;
    iTop[j] = i;
  }
  const suffix = new Float64Array(n + 1); // suffix[j] = sum of (iTop[t] + 1) for t >= j
  for (let j = n - 1; j >= 0; j--) suffix[j] = suffix[j + 1] + iTop[j] + 1;
  const kMax = m > 0 ? Math.min(n, Math.floor(T / m)) : n;
  let work = 0;
  let lo = 0; // first i whose prefix 0..i can hold k - 1 blocks (P[i+1] >= (k-1) m), non-decreasing in k
  for (let k = 2; k <= kMax; k++) {
    while (lo < n && P[lo + 1] < (k - 1) * m) lo++;
    if (lo >= n) break;
    // j from the first with iTop[j] >= lo: sum of (iTop[j] - lo + 1).
    let a = 0;
    let b = n;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (iTop[mid] >= lo) b = mid;
      else a = mid + 1;
    }
    work += suffix[a] - (n - a) * lo;
  }
  return work;
}

/**
 * About `groupCount` groups of about equal tokens. Group g closes at the highest-scoring boundary whose running
 * token total lies within half a target of (g + 1) targets (target = total / groupCount; ties: the one nearest),
 * so sizes follow the running total; a remainder under half a target joins the last group.
 */
export function groupSentences(counts: readonly number[], scores: readonly number[], groupCount: number): Group[] {
  const n = counts.length;
  const T = counts.reduce((a, b) => a + b, 0);
  const target = T / Math.max(1, groupCount);
  const groups: Group[] = [];
  let start = 0;
  let before = 0; // tokens before `start`
  while (start < n) {
    const goal = (groups.length + 1) * target;
    if (goal > T - 0.5 * target) {
      groups.push([start, n - 1]); // the last group takes the rest
      break;
    }
    let acc = before;
    let best = -1;
    let bestScore = -Infinity;
    let bestDistance = Infinity;
    for (let e = start; e < n - 1; e++) {
      acc += counts[e];
      if (T - acc < 0.5 * target) break; // what would be left is no group: it joins this one
      if (acc > goal + 0.5 * target && best >= 0) break;
      if (acc < goal - 0.5 * target) continue;
      const distance = Math.abs(acc - goal);
      if (scores[e] > bestScore || (scores[e] === bestScore && distance < bestDistance)) {
        best = e;
        bestScore = scores[e];
        bestDistance = distance;
      }
    }
    const end = best >= 0 ? best : n - 1;
    groups.push([start, end]);
    for (let i = start; i <= end; i++) before += counts[i];
    start = end + 1;
  }
  return groups;
}

/** Objective from (S, Q) for K blocks over T tokens (the same formula as segment.ts). */
function objectiveOf(S: number, Q: number, K: number, T: number, lambda: number): number {
  if (T <= 0) return S / K;
  return S / K - (lambda * Math.sqrt(Math.max(0, K * Q - T * T))) / T;
}

/**
 * Moves each cut (a cut at c separates sentence c from c + 1) within `window` sentences while the objective
 * improves, keeping every block >= m. At most `maxPasses` passes over the cuts. Returns the new cuts and the
 * transitions spent.
 */
export function refineCuts(
  cuts: readonly number[],
  P: Float64Array,
  scores: readonly number[],
  m: number,
  lambda: number,
  window: number,
  maxPasses = 4,
): { cuts: number[]; work: number } {
  const n = P.length - 1;
  const T = P[n];
  const K = cuts.length + 1;
  const out = [...cuts];
  let S = 0;
  let Q = 0;
  const bounds = (t: number): [number, number] => [t === 0 ? 0 : out[t - 1] + 1, t === K - 1 ? n - 1 : out[t]];
  for (let t = 0; t < K; t++) {
    const [a, b] = bounds(t);
    const L = P[b + 1] - P[a];
    Q += L * L;
    if (t < K - 1) S += scores[out[t]];
  }
  let work = 0;
  for (let pass = 0; pass < maxPasses; pass++) {
    let improved = false;
    for (let t = 0; t < K - 1; t++) {
      const left = bounds(t)[0];
      const right = bounds(t + 1)[1];
      const c0 = out[t];
      const l0 = P[c0 + 1] - P[left];
      const r0 = P[right + 1] - P[c0 + 1];
      const base = Q - l0 * l0 - r0 * r0;
      let bestC = c0;
      let bestV = objectiveOf(S, Q, K, T, lambda);
      for (let c = Math.max(left, c0 - window); c <= Math.min(right - 1, c0 + window); c++) {
        work++;
        const l = P[c + 1] - P[left];
        const r = P[right + 1] - P[c + 1];
        if (c === c0 || l < m || r < m) continue;
        const v = objectiveOf(S - scores[c0] + scores[c], base + l * l + r * r, K, T, lambda);
        if (v > bestV + 1e-12) {
          bestV = v;
          bestC = c;
        }
      }
      if (bestC !== c0) {
        const l = P[bestC + 1] - P[left];
        const r = P[right + 1] - P[bestC + 1];
        S += scores[bestC] - scores[c0];
        Q = base + l * l + r * r;
        out[t] = bestC;
        improved = true;
      }
    }
    if (!improved) break;
  }
  return { cuts: out, work };
}

/**
 * Cuts for K blocks of about equal tokens: cut t at the boundary whose running total is nearest t * T / K.
 * Null when that leaves a block under `m` tokens or two cuts at one boundary.
 */
export function balancedCuts(P: Float64Array, K: number, m: number): number[] | null {
  const n = P.length - 1;
  const T = P[n];
  const cuts: number[] = [];
  for (let t = 1; t < K; t++) {
    const goal = (t * T) / K;
    // First boundary c (0 <= c < n - 1) with P[c + 1] >= goal, then the nearer of it and the one before.
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (P[mid + 1] >= goal) hi = mid;
      else lo = mid + 1;
    }
    const c = lo > 0 && goal - P[lo] < P[lo + 1] - goal ? lo - 1 : lo;
    if (c >= n - 1 || (cuts.length > 0 && c <= cuts[cuts.length - 1])) return null;
    cuts.push(c);
  }
  let start = 0;
  for (const c of [...cuts, n - 1]) {
    if (P[c + 1] - P[start] < m) return null;
    start = c + 1;
  }
  return cuts;
}

/** Up to `most` block counts spread evenly over [lo, hi] (all of them when there are few). */
export function spreadCounts(lo: number, hi: number, most: number): number[] {
  if (hi < lo) return [];
  if (hi - lo + 1 <= most) return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  const out = new Set<number>();
  for (let i = 0; i < most; i++) out.add(Math.round(lo + ((hi - lo) * i) / (most - 1)));
  return [...out];
}
