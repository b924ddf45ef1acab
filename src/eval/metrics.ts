/**
 * Accuracy metrics over problems with several generations each, and the Table-1-like comparison of two
 * runs.
 *
 *   - pass@1: the fraction of correct generations per problem, averaged over problems (the paper's metric:
 *     64 generations per competition-math problem, 2 for MATH-500/GPQA/LiveCodeBench).
 *   - pass@k (unbiased, Chen et al. 2021): per problem with n generations of which c are correct,
 *     1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1..n} (1 - k/i) (no huge binomials), 1 when
 *     n - c < k; averaged over problems.
 *   - maj@k: majority vote over k generations; answers are grouped by `answerKey` (normalised form, exact
 *     rationals reduced, unordered collections sorted; override with `key`); empty answers abstain; a tie
 *     between the largest groups is broken uniformly at random. A group's correctness is the fraction of its
 *     members judged correct (0 or 1 when the judge is consistent). Two modes:
 *       "expectation" (default): the expected maj@k over a uniformly random subset of k of the n generations
 *         AND over the tie-break: every subset when C(n,k) <= `trials` (exact), else `trials` random subsets
 *         drawn with the seeded PRNG; within a subset the tie-break is averaged exactly (each tied group
 *         weighs 1/#tied), so the estimate has no tie-break noise.
 *       "first": the first k generations, ties broken by ONE draw of the seeded PRNG.
 *   - standard error over problems: sample standard deviation (n-1) of the per-problem values / sqrt(P);
 *     0 when P < 2.
 *   - comparison: per benchmark on the problems present in both runs, accuracy of each in percent, the delta
 *     in points (other - base) with a paired standard error (std of per-problem differences / sqrt(P)), and
 *     mean per-response peak KV and KV AUC of each with the ratios other/base (memento/vanilla: < 1 means
 *     Memento holds less). KV values are in whatever unit the caller gives (tokens or GB), the same for both.
 */

import { UserError } from "../errors.js";
import { answerKey } from "./normalize.js";

export interface Estimate {
  /** Mean over problems, in [0, 1]. */
  value: number;
  /** Standard error over problems. */
  stderr: number;
  problems: number;
}

/** A seeded PRNG (mulberry32-style 32-bit mixing), uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation of per-problem values / sqrt(P); 0 for fewer than two problems. */
export function standardError(perProblem: readonly number[]): number {
  const p = perProblem.length;
  if (p < 2) return 0;
  const m = mean(perProblem);
  const v = perProblem.reduce((a, x) => a + (x - m) ** 2, 0) / (p - 1);
  return Math.sqrt(v / p);
}

function estimate(perProblem: readonly number[]): Estimate {
  return { value: mean(perProblem), stderr: standardError(perProblem), problems: perProblem.length };
}

/** Unbiased pass@k of one problem with n generations, c correct. */
export function passAtK(n: number, c: number, k: number): number {
  if (
    !Number.isInteger(n) ||
    !Number.isInteger(c) ||
    !Number.isInteger(k) ||
    n < 1 ||
    c < 0 ||
    c > n ||
    k < 1 ||
    k > n
  ) {
    throw new UserError(`pass@k needs integers 0 <= c <= n and 1 <= k <= n (n=${n}, c=${c}, k=${k})`);
  }
  if (n - c < k) return 1;
  let fail = 1;
  for (let i = n - c + 1; i <= n; i++) fail *= 1 - k / i;
  return 1 - fail;
}

/** pass@1 averaged over problems (each problem: the fraction of its generations that are correct). */
export function passAt1(problems: readonly (readonly boolean[])[]): Estimate {
  return passAtKOverProblems(problems, 1);
}

/** Unbiased pass@k averaged over problems; every problem needs at least k generations. */
export function passAtKOverProblems(problems: readonly (readonly boolean[])[], k: number): Estimate {
  return estimate(
    problems.map((g, i) => {
      if (g.length < k) throw new UserError(`problem ${i} has ${g.length} generations, pass@${k} needs at least ${k}`);
      return passAtK(g.length, g.filter(Boolean).length, k);
    }),
  );
}

export interface VoteProblem {
  /** Extracted answers per generation; null/empty abstains. */
  answers: readonly (string | null)[];
  /** Judged correctness per generation (same length). */
  correct: readonly boolean[];
}

export interface MajorityOptions {
  mode?: "expectation" | "first";
  /** Default 1. */
  seed?: number;
  /** Expectation mode: enumerate when C(n,k) <= trials, else sample this many subsets. Default 1000. */
  trials?: number;
  /** Grouping key; default `answerKey`. */
  key?: (answer: string) => string;
}

export interface VoteOutcome {
  /** The winning group's key (null when everyone abstained). */
  key: string | null;
  votes: number;
  /** How many groups shared the top count. */
  tied: number;
  /** Expected correctness of the vote over the tie-break, in [0, 1]. */
  expectedCorrect: number;
  /** Correctness of the group the PRNG picked (when `random` is given), else of the first tied group. */
  pickedCorrect: number;
}

/** Majority vote over pre-computed keys (index subset `idx`); `random` breaks ties when given. */
function voteOnKeys(
  keys: readonly string[],
  correct: readonly boolean[],
  idx: readonly number[],
  random?: () => number,
): VoteOutcome {
  const groups = new Map<string, { votes: number; right: number }>();
  for (const i of idx) {
    const k = keys[i];
    if (k === "") continue;
    const g = groups.get(k) ?? { votes: 0, right: 0 };
    g.votes++;
    if (correct[i]) g.right++;
    groups.set(k, g);
  }
  if (groups.size === 0) return { key: null, votes: 0, tied: 0, expectedCorrect: 0, pickedCorrect: 0 };
  let top = 0;
  for (const g of groups.values()) top = Math.max(top, g.votes);
  const tied = [...groups].filter(([, g]) => g.votes === top).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const expectedCorrect = mean(tied.map(([, g]) => g.right / g.votes));
  const pick = random ? tied[Math.min(tied.length - 1, Math.floor(random() * tied.length))] : tied[0];
  return { key: pick[0], votes: top, tied: tied.length, expectedCorrect, pickedCorrect: pick[1].right / pick[1].votes };
}

/** Majority vote over all answers of one problem, ties broken with `random` (seeded by the caller). */
export function majorityVote(
  answers: readonly (string | null)[],
  correct: readonly boolean[],
  random: () => number,
  key: (a: string) => string = answerKey,
): VoteOutcome {
  const keys = answers.map((a) => (a ? key(a) : ""));
  return voteOnKeys(
    keys,
    correct,
    keys.map((_, i) => i),
    random,
  );
}

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

function* subsets(n: number, k: number): Generator<number[]> {
  const idx = Array.from({ length: k }, (_, i) => i);
  for (;;) {
    yield idx.slice();
    let i = k - 1;
    while (i >= 0 && idx[i] === n - k + i) i--;
    if (i < 0) return;
    idx[i]++;
    for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1] + 1;
  }
}

/** maj@k of one problem; see the module comment for the modes. */
export function majAtKProblem(
  problem: VoteProblem,
  k: number,
  options: MajorityOptions = {},
  random?: () => number,
): number {
  const n = problem.answers.length;
  if (problem.correct.length !== n) throw new UserError("maj@k: answers and correct differ in length");
  if (!Number.isInteger(k) || k < 1 || k > n) throw new UserError(`maj@${k} needs 1 <= k <= n (n=${n})`);
  const keyFn = options.key ?? answerKey;
  const keys = problem.answers.map((a) => (a ? keyFn(a) : ""));
  const rnd = random ?? seededRandom(options.seed ?? 1);
  if ((options.mode ?? "expectation") === "first") {
    return voteOnKeys(
      keys,
      problem.correct,
      Array.from({ length: k }, (_, i) => i),
      rnd,
    ).pickedCorrect;
  }
  const trials = options.trials ?? 1000;
  if (binomial(n, k) <= trials) {
    let sum = 0;
    let count = 0;
    for (const s of subsets(n, k)) {
      sum += voteOnKeys(keys, problem.correct, s).expectedCorrect;
      count++;
    }
    return sum / count;
  }
  let sum = 0;
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let t = 0; t < trials; t++) {
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rnd() * (n - i));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    sum += voteOnKeys(keys, problem.correct, perm.slice(0, k)).expectedCorrect;
  }
  return sum / trials;
}

/** maj@k averaged over problems, one seeded PRNG stream for the whole set. */
export function majAtK(problems: readonly VoteProblem[], k: number, options: MajorityOptions = {}): Estimate {
  const rnd = seededRandom(options.seed ?? 1);
  return estimate(problems.map((p) => majAtKProblem(p, k, options, rnd)));
}

/** maj@k for several k (Figure 7's curve); each k restarts the PRNG from the seed. */
export function majAtKCurve(
  problems: readonly VoteProblem[],
  ks: readonly number[],
  options: MajorityOptions = {},
): (Estimate & { k: number })[] {
  return ks.map((k) => ({ k, ...majAtK(problems, k, options) }));
}

// ---------------------------------------------------------------------------------------------------
// Comparing two runs (Table 1).

export interface ResponseKv {
  /** Peak KV of the response (tokens or GB). */
  peak: number;
  /** KV AUC of the response (tokens x tokens or GB x ktok). */
  auc: number;
}

export interface RunProblem {
  id: string;
  correct: readonly boolean[];
  /** Per response, parallel to `correct` (optional). */
  kv?: readonly ResponseKv[];
}

export interface BenchmarkRun {
  benchmark: string;
  problems: readonly RunProblem[];
}

export interface RunSide {
  /** pass@1 in percent. */
  accuracy: number;
  /** Standard error in points. */
  stderr: number;
  /** Mean per-response peak KV / AUC (undefined when no KV was given). */
  peakKv?: number;
  aucKv?: number;
}

export interface ComparisonRow {
  benchmark: string;
  /** Problems present in both runs (the only ones compared). */
  problems: number;
  base: RunSide;
  other: RunSide;
  /** other - base, in points. */
  deltaPoints: number;
  /** Paired standard error of the delta, in points. */
  deltaStderr: number;
  /** other / base (memento / vanilla). */
  peakRatio?: number;
  aucRatio?: number;
}

export interface Comparison {
  baseName: string;
  otherName: string;
  rows: ComparisonRow[];
}

function side(problems: readonly RunProblem[]): { perProblem: number[]; side: RunSide } {
  const perProblem = problems.map((p) => (p.correct.length ? p.correct.filter(Boolean).length / p.correct.length : 0));
  const kvs = problems.flatMap((p) => p.kv ?? []);
  return {
    perProblem,
    side: {
      accuracy: 100 * mean(perProblem),
      stderr: 100 * standardError(perProblem),
      peakKv: kvs.length ? mean(kvs.map((k) => k.peak)) : undefined,
      aucKv: kvs.length ? mean(kvs.map((k) => k.auc)) : undefined,
    },
  };
}

/** Table 1: per benchmark present in both runs, accuracy delta (points) and KV ratios other/base. */
export function compareRuns(
  base: readonly BenchmarkRun[],
  other: readonly BenchmarkRun[],
  names: { base?: string; other?: string } = {},
): Comparison {
  const rows: ComparisonRow[] = [];
  for (const b of base) {
    const o = other.find((x) => x.benchmark === b.benchmark);
    if (!o) continue;
    const oById = new Map(o.problems.map((p) => [p.id, p]));
    const pairs = b.problems.filter((p) => oById.has(p.id)).map((p) => [p, oById.get(p.id)!] as const);
    if (pairs.length === 0) continue;
    const sb = side(pairs.map(([x]) => x));
    const so = side(pairs.map(([, y]) => y));
    const diffs = so.perProblem.map((v, i) => v - sb.perProblem[i]);
    const ratio = (x?: number, y?: number) => (x !== undefined && y !== undefined && x > 0 ? y / x : undefined);
    rows.push({
      benchmark: b.benchmark,
      problems: pairs.length,
      base: sb.side,
      other: so.side,
      deltaPoints: so.side.accuracy - sb.side.accuracy,
      deltaStderr: 100 * standardError(diffs),
      peakRatio: ratio(sb.side.peakKv, so.side.peakKv),
      aucRatio: ratio(sb.side.aucKv, so.side.aucKv),
    });
  }
  return { baseName: names.base ?? "base", otherName: names.other ?? "other", rows };
}

/** The comparison as a Markdown table. */
export function formatComparison(c: Comparison): string {
  const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
  const sign = (x: number) => (x >= 0 ? "+" : "") + x.toFixed(1);
  const lines = [
    `| Benchmark | Problems | ${c.baseName} acc (%) | ${c.otherName} acc (%) | Δ (points) | ${c.baseName} peak KV | ${c.otherName} peak KV | peak ratio | ${c.baseName} KV AUC | ${c.otherName} KV AUC | AUC ratio |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of c.rows) {
    lines.push(
      `| ${r.benchmark} | ${r.problems} | ${f(r.base.accuracy)} ± ${f(r.base.stderr)} | ${f(r.other.accuracy)} ± ${f(r.other.stderr)} | ${sign(r.deltaPoints)} ± ${f(r.deltaStderr)} | ${f(r.base.peakKv)} | ${f(r.other.peakKv)} | ${r.peakRatio === undefined ? "-" : `${r.peakRatio.toFixed(2)}×`} | ${f(r.base.aucKv)} | ${f(r.other.aucKv)} | ${r.aucRatio === undefined ? "-" : `${r.aucRatio.toFixed(2)}×`} |`,
    );
  }
  return lines.join("\n");
}
