/**
 * Held-out evaluation of a policy on the toy task, Figure 7's quantities: pass@1 from several samples per
 * problem, maj@k and pass@k from the same samples, and what the responses cost in KV.
 *
 * 1. Every problem gets `samples` rollouts at `temperature` (the paper evaluates at 0.6) with the rollout
 *    masking; seeds come from (seed, "eval step", problem, sample), so two models evaluated with the same
 *    options see the same random streams.
 * 2. pass@1 = mean over problems of the fraction correct; its 95% interval is the normal one over problems
 *    (1.96 standard errors, clamped to [0, 1]). pass@k is the unbiased estimator, maj@k the expectation over
 *    the k-subsets (eval/metrics.ts), answers grouped by their exact text.
 * 3. Full attention's peak KV for the same responses: prompt + completion - 1 cells (the last token's KV is
 *    never computed), what an engine without eviction would hold at their end.
 */
import { majAtK, passAt1, passAtKOverProblems } from "../eval/metrics.js";
import type { ToyDatasetItem } from "../train/toy-task.js";
import type { Rollout, RolloutOptions, RolloutSource } from "./engine-rollouts.js";

/** The step number evaluation seeds use (never a training step). */
export const EVAL_SEED_STEP = -1;

export interface PolicyEval {
  problems: number;
  samples: number;
  passAt1: number;
  ci95: [number, number];
  /** maj@k and pass@k with k = samples (null when samples < 2). */
  majAtK: number | null;
  passAtK: number | null;
  k: number;
  peakKvTokens: number;
  fullAttentionPeakKvTokens: number;
  blocksPerResponse: number;
  meanBlockTokens: number;
  meanCompletionTokens: number;
}

export interface EvalOptions extends Pick<RolloutOptions, "masking" | "maxTokens"> {
  samples: number;
  temperature: number;
  seed: number;
  /** Problems generated together (memory and fairness of the batch; default 16). */
  chunk?: number;
  /** Called after each chunk with the problems done. */
  onProgress?: (done: number, total: number) => void;
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Summary of rollouts grouped by problem (one inner array per problem, same sample count each). */
export function summarize(groups: readonly (readonly Rollout[])[]): PolicyEval {
  const samples = groups[0]?.length ?? 0;
  const correct = groups.map((g) => g.map((r) => r.reward > 0));
  const p1 = passAt1(correct);
  const half = 1.96 * p1.stderr;
  const all = groups.flat();
  const withBlocks = all.filter((r) => r.blocks > 0);
  const votes = groups.map((g, i) => ({
    answers: g.map((r) => r.answer),
    correct: correct[i],
  }));
  return {
    problems: groups.length,
    samples,
    passAt1: p1.value,
    ci95: [Math.max(0, p1.value - half), Math.min(1, p1.value + half)],
    majAtK: samples >= 2 ? majAtK(votes, samples, { key: (a) => a.trim() }).value : null,
    passAtK: samples >= 2 ? passAtKOverProblems(correct, samples).value : null,
    k: samples,
    peakKvTokens: mean(all.map((r) => r.peakKvTokens)),
    fullAttentionPeakKvTokens: mean(all.map((r) => r.promptIds.length + r.completionIds.length - 1)),
    blocksPerResponse: mean(all.map((r) => r.blocks)),
    meanBlockTokens: mean(withBlocks.map((r) => r.meanBlockTokens)),
    meanCompletionTokens: mean(all.map((r) => r.completionIds.length)),
  };
}

/** Evaluates the policy behind `source` (`localRollouts(model, tok)` or an RL pool) on `items`, `samples` each. */
export async function evaluatePolicy(
  source: RolloutSource,
  items: readonly ToyDatasetItem[],
  opts: EvalOptions,
): Promise<PolicyEval & { rollouts: Rollout[][] }> {
  const chunk = opts.chunk ?? 16;
  const groups: Rollout[][] = [];
  for (let at = 0; at < items.length; at += chunk) {
    const part = items.slice(at, at + chunk);
    const got = await source.rollouts(part, opts.samples, {
      temperature: opts.temperature,
      seed: opts.seed,
      step: EVAL_SEED_STEP,
      logprobs: false,
      problemIds: part.map((_, i) => at + i),
      ...(opts.masking ? { masking: opts.masking } : {}),
      ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
    });
    groups.push(...got);
    opts.onProgress?.(groups.length, items.length);
  }
  return { ...summarize(groups), rollouts: groups };
}
