/**
 * The statistics of the restart ablation's table: an accuracy with its standard error and a 95% interval, and
 * the paired difference of two modes run on the same problems with the same seeds.
 *
 * 1. Accuracy = correct generations / generations (pass@1 averaged over samples, the paper's protocol).
 * 2. Standard error over problems: the sample standard deviation of per-problem accuracies / sqrt(problems)
 *    (eval/metrics' `standardError`, as `eval report` computes it), so several samples of one problem count as
 *    one observation, not several independent ones.
 * 3. 95% interval: Wilson's score interval (probe-stats.ts's) at an effective sample size. With one generation per problem that is
 *    the plain Wilson interval over problems. With several, generations of one problem are correlated, so we use
 *    Kish's effective size n_eff = p(1-p) / SE^2, kept between problems and generations (our choice: Wilson
 *    stays inside [0, 1] and well-behaved near 0% and 100%, where a toy model sits).
 * 4. Paired delta (b - a): mean of per-problem differences, its standard error, a normal 95% interval, and the
 *    discordant problems (a right and b wrong, and the reverse; per-problem accuracies compared) with the exact
 *    two-sided sign test on them (McNemar's exact test when each problem has one generation).
 */
import { mean, standardError } from "../eval/metrics.js";
import { wilsonInterval, Z95 } from "./probe-stats.js";

/** Kish's effective sample size of a clustered proportion (clause 3), kept within [problems, generations]. */
export function effectiveSampleSize(accuracy: number, stderr: number, problems: number, generations: number): number {
  if (generations <= problems) return generations;
  const variance = accuracy * (1 - accuracy);
  if (!(stderr > 0) || !(variance > 0)) return generations;
  return Math.min(generations, Math.max(problems, variance / (stderr * stderr)));
}

export interface AccuracyEstimate {
  /** Correct generations / generations (clause 1). */
  accuracy: number;
  /** Standard error over problems (clause 2). */
  stderr: number;
  /** Wilson 95% interval (clause 3). */
  ci95: [number, number];
  problems: number;
  generations: number;
  correct: number;
}

/** Clauses 1-3 from per-problem correct counts, each out of `samplesPerProblem`. */
export function estimateAccuracy(correctPerProblem: readonly number[], samplesPerProblem: number): AccuracyEstimate {
  const problems = correctPerProblem.length;
  const generations = problems * samplesPerProblem;
  const correct = correctPerProblem.reduce((a, b) => a + b, 0);
  const accuracy = generations > 0 ? correct / generations : 0;
  const stderr = standardError(correctPerProblem.map((c) => c / samplesPerProblem));
  const n = effectiveSampleSize(accuracy, stderr, problems, generations);
  return { accuracy, stderr, ci95: wilsonInterval(accuracy * n, n), problems, generations, correct };
}

export interface PairedDelta {
  /** Mean over problems of (b - a) accuracy, in percentage points. */
  deltaPoints: number;
  /** Its standard error, in points. */
  stderrPoints: number;
  /** Normal 95% interval of the delta, in points. */
  ci95Points: [number, number];
  /** Problems on which a did better than b, and the reverse. */
  aBetter: number;
  bBetter: number;
  /** Exact two-sided sign-test p-value over those discordant problems (1 when there are none). */
  signTestP: number;
}

/** Exact two-sided binomial (p = 1/2) test of `k` successes in `n`: twice the smaller tail, at most 1. */
export function signTestP(k: number, n: number): number {
  if (n === 0) return 1;
  const lo = Math.min(k, n - k);
  // log C(n, i) summed in log space: n is at most a few thousand problems.
  let logC = 0;
  let tail = 0;
  for (let i = 0; i <= lo; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logC - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

/** Clause 4: b - a over the same problems (per-problem accuracies, parallel arrays). */
export function pairedDelta(a: readonly number[], b: readonly number[]): PairedDelta {
  if (a.length !== b.length) throw new Error(`paired delta over ${a.length} vs ${b.length} problems`);
  const diffs = a.map((x, i) => b[i] - x);
  const d = 100 * mean(diffs);
  const se = 100 * standardError(diffs);
  const aBetter = diffs.filter((x) => x < 0).length;
  const bBetter = diffs.filter((x) => x > 0).length;
  return {
    deltaPoints: d,
    stderrPoints: se,
    ci95Points: [d - Z95 * se, d + Z95 * se],
    aBetter,
    bBetter,
    signTestP: signTestP(bBetter, aBetter + bBetter),
  };
}
