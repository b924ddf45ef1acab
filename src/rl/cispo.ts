/**
 * The CISPO objective (MiniMax-M1; the paper's RL stage) over one rollout, with its gradient, on our transformer
 * under the rollout's own Stage-2 memento mask (the attention the engine gave it while it was generated).
 *
 *   L = (1 / N) sum_t [ - sg(clip(r_t, 1 - epsLow, 1 + epsHigh)) A lp_t  +  beta KL_t ]
 *   lp_t = log pi_theta(a_t | s_t),   r_t = exp(lp_t - lp_old_t),   N = counted tokens of the whole batch
 *
 * 1. Token-level averaging: every counted token of the batch weighs 1 / N, whatever its response's length.
 * 2. The clipped ratio is a weight, detached: it scales the token's gradient and never zeroes it (PPO's clipped
 *    surrogate drops the gradient of a token outside the trust region; CISPO keeps it, bounded).
 * 3. KL_t is Schulman's k3 estimator of KL(pi_theta || pi_ref) at the sampled token:
 *    KL_t = exp(lr_t) - lr_t - 1 with lr_t = lp_ref_t - lp_t (unbiased, always >= 0); d KL_t / d lp_t = 1 - exp(lr_t).
 * 4. Counted tokens: the completion's tokens the policy drew. Prompt tokens and tokens the engine forced
 *    (`<|block_end|>` at maxBlockTokens) carry no loss: the policy did not choose them.
 * 5. d lp_t / d z = onehot(a_t) - softmax(z) for the logits z that predicted a_t (row t - 1), so the whole
 *    objective is one d(loss)/d(logits) fed to the model's backward: no second forward.
 */
import type { CompactAttentionPattern } from "../masking/masks.js";
import type { Qwen3Model } from "../model/transformer.js";
import { logSumExp } from "../engine/logprobs.js";

export interface CispoOptions {
  /** Lower clip: the ratio weight is at least 1 - epsLow. The paper: 0.2. */
  epsLow: number;
  /** Upper clip: the ratio weight is at most 1 + epsHigh. The paper: 0.2. */
  epsHigh: number;
  /** KL penalty coefficient against the reference (SFT) policy. The paper: 0.001; 0 = no reference needed. */
  beta: number;
}

export const DEFAULT_CISPO: Readonly<CispoOptions> = Object.freeze({ epsLow: 0.2, epsHigh: 0.2, beta: 0.001 });

/** One response as the objective sees it. Per-token arrays are over the completion (index j = token promptLength + j). */
export interface RolloutSample {
  /** Prompt then completion token ids. */
  ids: Int32Array;
  promptLength: number;
  /** The Stage-2 pattern of `ids` (the mask the engine's evictions gave the rollout). */
  pattern: CompactAttentionPattern;
  /** log pi_old of each completion token, as the rollout policy (the engine) recorded it. */
  oldLogprobs: Float32Array;
  /** log pi_ref of each completion token (needed when beta > 0). */
  refLogprobs?: Float32Array;
  /** 1 = the token counts in the loss (sampled by the policy), 0 = it does not (forced). */
  counted: Uint8Array;
  /** The response's group-relative advantage. */
  advantage: number;
}

/** Sums over a sample's counted tokens, for the progress line (divide by `tokens`). */
export interface CispoStats {
  tokens: number;
  /** Tokens whose ratio fell outside [1 - epsLow, 1 + epsHigh]. */
  clipped: number;
  /** Sum of KL_t (k3). */
  kl: number;
  /** Sum of |lp_t - lp_old_t|. */
  absLogRatio: number;
  /** Sum of the objective's terms before dividing by N: sum of -w A lp + beta KL. */
  objective: number;
}

export function emptyCispoStats(): CispoStats {
  return { tokens: 0, clipped: 0, kl: 0, absLogRatio: 0, objective: 0 };
}

export function addCispoStats(into: CispoStats, s: Readonly<CispoStats>): void {
  into.tokens += s.tokens;
  into.clipped += s.clipped;
  into.kl += s.kl;
  into.absLogRatio += s.absLogRatio;
  into.objective += s.objective;
}

/** Tokens of a sample that count in the loss. */
export function countedTokens(sample: Pick<RolloutSample, "counted">): number {
  let n = 0;
  for (const c of sample.counted) n += c;
  return n;
}

/** log_softmax of logits row `row` at `token`, in float64. */
function rowLogprob(logits: Float32Array, vocab: number, row: number, token: number): number {
  return logits[row * vocab + token] - logSumExp(logits.subarray(row * vocab, (row + 1) * vocab));
}

/** log pi(completion token j) for every j, from one forward of `ids` under `pattern` (no gradient). */
export function completionLogprobs(
  model: Qwen3Model,
  ids: Int32Array,
  promptLength: number,
  pattern: CompactAttentionPattern,
): Float32Array {
  const logits = model.logits(ids, pattern);
  const out = new Float32Array(ids.length - promptLength);
  for (let j = 0; j < out.length; j++)
    out[j] = rowLogprob(logits, model.vocab, promptLength + j - 1, ids[promptLength + j]);
  return out;
}

/**
 * The CISPO gradient of one sample's share of a batch of `batchTokens` counted tokens (accumulate over the
 * batch's samples), and its statistics.
 */
export function cispoGrad(
  model: Qwen3Model,
  sample: RolloutSample,
  batchTokens: number,
  opts: Readonly<CispoOptions>,
): { grads: Map<string, Float32Array>; stats: CispoStats } {
  const { ids, promptLength: P } = sample;
  const V = model.vocab;
  const { logits, cache } = model.forward(ids, sample.pattern);
  const dlogits = new Float32Array(logits.length);
  const stats = emptyCispoStats();
  const term = cispoTokenTerms(sample, opts);
  for (let j = 0; j < sample.counted.length; j++) {
    if (!sample.counted[j]) continue;
    const row = P + j - 1;
    const a = ids[P + j];
    const base = row * V;
    const lse = logSumExp(logits.subarray(base, base + V));
    const lp = logits[base + a] - lse;
    const t = term(j, lp);
    // d L / d lp_t, then through log_softmax: onehot(a) - softmax.
    const g = t.dLossDLogprob / batchTokens;
    for (let i = 0; i < V; i++) dlogits[base + i] = -g * Math.exp(logits[base + i] - lse);
    dlogits[base + a] += g;
    stats.tokens++;
    if (t.clipped) stats.clipped++;
    stats.kl += t.kl;
    stats.absLogRatio += Math.abs(lp - sample.oldLogprobs[j]);
    stats.objective += t.objective;
  }
  return { grads: model.backward(cache, dlogits), stats };
}

/** What one token contributes, given its current log-probability. */
export interface TokenTerm {
  /** d(objective_t) / d(lp_t) with the ratio weight held constant (the stop-gradient). */
  dLossDLogprob: number;
  /** objective_t = -w A lp + beta KL. */
  objective: number;
  kl: number;
  clipped: boolean;
  /** The clipped, detached ratio weight w. */
  w: number;
}

/** The per-token terms of the objective, as a function of (completion index, current lp). */
export function cispoTokenTerms(
  sample: Pick<RolloutSample, "oldLogprobs" | "refLogprobs" | "advantage">,
  opts: Readonly<CispoOptions>,
): (j: number, lp: number) => TokenTerm {
  if (opts.beta > 0 && !sample.refLogprobs)
    throw new Error("CISPO with beta > 0 needs the reference log-probabilities");
  return (j, lp) => {
    const ratio = Math.exp(lp - sample.oldLogprobs[j]);
    const lo = 1 - opts.epsLow;
    const hi = 1 + opts.epsHigh;
    const w = Math.min(hi, Math.max(lo, ratio));
    const clipped = ratio < lo || ratio > hi;
    let kl = 0;
    let dKl = 0;
    if (opts.beta > 0) {
      const lr = (sample.refLogprobs as Float32Array)[j] - lp;
      const e = Math.exp(lr);
      kl = e - lr - 1;
      dKl = 1 - e;
    }
    const A = sample.advantage;
    return { dLossDLogprob: -w * A + opts.beta * dKl, objective: -w * A * lp + opts.beta * kl, kl, clipped, w };
  };
}
