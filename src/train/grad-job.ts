import { Qwen3Model } from "../model/transformer.js";
import type { Qwen3Config } from "../model/config.js";
import type { CompactAttentionPattern } from "../masking/masks.js";

/** One training sequence as the gradient job sees it: ids, next-token targets (-100 = no loss), its pattern. */
export interface TrainSequence {
  ids: Int32Array;
  targets: Int32Array;
  pattern: CompactAttentionPattern;
  /** Per-token loss weights (default 1 each): the loss is the weighted mean over the batch. */
  weights?: Float32Array;
}

export interface GradSum {
  /** Sum over sequences of (targets counted) x (mean-loss gradient): divide by `count` for the batch mean. */
  grads: Map<string, Float32Array>;
  lossSum: number;
  count: number;
  tokens: number;
}

/** Gradients of the summed token loss over `indices` of `sequences`. */
export function gradSum(model: Qwen3Model, sequences: readonly TrainSequence[], indices: readonly number[]): GradSum {
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of model.params) grads.set(name, new Float32Array(p.length));
  let lossSum = 0;
  let count = 0;
  let tokens = 0;
  for (const i of indices) {
    const s = sequences[i];
    const r = model.lossAndGrad(s.ids, s.targets, s.pattern, undefined, s.weights);
    tokens += s.ids.length;
    if (r.count === 0) continue;
    lossSum += r.loss * r.count;
    count += r.count;
    for (const [name, g] of r.grads) {
      const acc = grads.get(name)!;
      for (let k = 0; k < g.length; k++) acc[k] += g[k] * r.count;
    }
  }
  return { grads, lossSum, count, tokens };
}

/** Parameters over shared memory, so worker threads read the weights the main thread updates in place. */
export function sharedParams(model: Qwen3Model): Map<string, SharedArrayBuffer> {
  const out = new Map<string, SharedArrayBuffer>();
  for (const [name, p] of model.params) {
    const buf = new SharedArrayBuffer(p.byteLength);
    new Float32Array(buf).set(p);
    out.set(name, buf);
  }
  return out;
}

export function modelOverShared(config: Qwen3Config, buffers: ReadonlyMap<string, SharedArrayBuffer>): Qwen3Model {
  const params = new Map<string, Float32Array>();
  for (const [name, buf] of buffers) params.set(name, new Float32Array(buf));
  return new Qwen3Model(config, params);
}

/**
 * Splits sequences of the given lengths over `workers` so they finish together: longest first (ties by index),
 * each to the least-loaded worker, a sequence costing length^1.3 (attention grows faster than linearly).
 * Returns, per worker, the indices it gets. Deterministic: the same lengths always split the same way.
 */
export function dealByCost(lengths: readonly number[], workers: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const parts: number[][] = Array.from({ length: workers }, () => []);
  const load = new Array<number>(workers).fill(0);
  for (const i of order) {
    const w = load.indexOf(Math.min(...load));
    parts[w].push(i);
    load[w] += lengths[i] ** 1.3;
  }
  return parts;
}
