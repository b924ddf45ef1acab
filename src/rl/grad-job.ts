/**
 * The gradient job of one RL update, shared by the main thread and the worker threads: the summed CISPO
 * gradient of some of a minibatch's samples (each already scaled by 1 / N of the whole minibatch, so the
 * workers' sums add up to the minibatch's gradient), with the reference log-probabilities filled in first.
 */
import type { Qwen3Model } from "../model/transformer.js";
import {
  addCispoStats,
  cispoGrad,
  completionLogprobs,
  emptyCispoStats,
  type CispoOptions,
  type CispoStats,
  type RolloutSample,
} from "./cispo.js";

export interface RlGradSum {
  grads: Map<string, Float32Array>;
  stats: CispoStats;
}

export function rlGradSum(
  model: Qwen3Model,
  ref: Qwen3Model | undefined,
  samples: readonly RolloutSample[],
  batchTokens: number,
  opts: Readonly<CispoOptions>,
): RlGradSum {
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of model.params) grads.set(name, new Float32Array(p.length));
  const stats = emptyCispoStats();
  for (const s of samples) {
    let sample = s;
    if (opts.beta > 0 && !s.refLogprobs) {
      if (!ref) throw new Error("CISPO with beta > 0 needs a reference model");
      sample = { ...s, refLogprobs: completionLogprobs(ref, s.ids, s.promptLength, s.pattern) };
    }
    const r = cispoGrad(model, sample, batchTokens, opts);
    addCispoStats(stats, r.stats);
    for (const [name, g] of r.grads) {
      const acc = grads.get(name)!;
      for (let i = 0; i < g.length; i++) acc[i] += g[i];
    }
  }
  return { grads, stats };
}
