/**
 * KV probing of the probe-task model (paper section 6.2.2 and appendix A.4.2, Figure 13, at toy scale): inject
 * a passcode (five digits) as the content of a target block, read the keys and values a memento leaves in the
 * KV cache, and train an MLP probe to recover the passcode. Owns the samples, the features and the report;
 * the model comes from probe-task.ts, the classifier from probe-mlp.ts.
 *
 * 1. Conditions (target block T, the paper's T2): direct = memento of T (it sees T); masked = memento of T+1
 *    (T is evicted before it is computed); causal control = memento of T-1 (computed before T exists); distance
 *    d = memento of T+d, d = 1..7 (d = 1 is masked).
 * 2. Features: per layer, the keys (after their norm and RoPE, as the cache stores them) and values of every
 *    memento token, `<|summary_start|>` to `<|summary_end|>`, concatenated: 5 x 2 x kvDim numbers.
 * 3. Samples are fresh random sequences (seeds unlike the model's training seed), split label-unique: a
 *    passcode is in the test set iff a hash of it is 0 mod 5, so no passcode is in both sets.
 * 4. Accuracy = correct digit predictions / (5 x test sequences); chance is 1/10; every accuracy has a 95%
 *    Wilson interval over those predictions.
 * 5. Checkpoints: the masked condition at the last layer for every kept checkpoint, with the task accuracy
 *    (probe-task.ts clause 3) on other held-out sequences beside it.
 */
import { performance } from "node:perf_hooks";
import type { Qwen3Model } from "../model/transformer.js";
import { loadModel } from "../model/index.js";
import { fnv1a, makeRng } from "../train/toy-task.js";
import { DEFAULT_PROBE_HIDDEN, ProbeMlp, type ProbeDataset, type ProbeMlpOptions } from "./probe-mlp.js";
import { wilsonInterval } from "./probe-stats.js";
import {
  DEFAULT_PROBE_BLOCKS,
  MEMENTO_TOKENS,
  PROBE_DIGITS,
  SUM_DIGITS,
  listProbeCheckpoints,
  probePattern,
  probeSequence,
  randomDigits,
  type ProbeSequence,
} from "./probe-task.js";

/** The target block, 0-based (the paper's T2). */
export const PROBE_TARGET_BLOCK = 1;
/** Farthest distance probed (the paper's +7). */
export const MAX_PROBE_DISTANCE = 7;
/**
 * Probe sequences for the final model (train + test; about a fifth are test). The paper used 50K; ours are fewer
 * so `analyze probe` fits its 60 minutes on a shared 2-core machine (forward ~1,000-9,000 tokens/s here).
 */
export const DEFAULT_PROBE_SAMPLES = 5_000;
/** Probe sequences per checkpoint (masked condition, last layer only). */
export const DEFAULT_CHECKPOINT_SAMPLES = 2_500;
/** Held-out sequences for the task accuracy of each checkpoint. */
export const DEFAULT_TASK_SAMPLES = 200;
/** Seeds of the probe samples and the task-accuracy sequences (the model trains on seed 1). */
export const PROBE_SAMPLE_SEED = 1001;
export const TASK_SAMPLE_SEED = 2001;
export const PROBE_CHANCE = 0.1;

export interface Accuracy {
  accuracy: number;
  ci95: [number, number];
  correct: number;
  total: number;
}

export interface LayerAccuracy extends Accuracy {
  /** 1-based, like the paper's "1st ... 4th". */
  layer: number;
}

export interface ConditionResult {
  /** The memento probed, 1-based block number. */
  block: number;
  byLayer: LayerAccuracy[];
  /** Test sequences (each gives PROBE_DIGITS predictions). */
  samples: number;
  trainSamples: number;
}

export interface ProbeReport {
  chance: number;
  model: { dir: string; layers: number; hidden: number; steps: number };
  targetBlock: number;
  direct: ConditionResult;
  masked: ConditionResult;
  causal: ConditionResult;
  maskedByDistance: (Accuracy & { distance: number; block: number })[];
  maskedByCheckpoint: (Accuracy & { step: number; taskAccuracy: number; taskCi95: [number, number] })[];
  probe: { hidden: number[]; features: string; checkpointSamples: number; taskSamples: number };
  seconds: { features: number; probes: number; checkpoints: number };
}

export interface ProbeAnalysisOptions {
  modelDir: string;
  samples: number;
  checkpointSamples: number;
  taskSamples: number;
  mlp: Partial<ProbeMlpOptions>;
  log?: (line: string) => void;
}

/** Probe sequences with the passcode injected in the target block; `test[i]` marks the label-unique test set. */
export interface ProbeSamples {
  sequences: ProbeSequence[];
  /** [n, PROBE_DIGITS]: the passcode of each sequence. */
  labels: Int32Array;
  test: boolean[];
}

/** `n` sequences of `blocks` blocks whose target block holds a random passcode (clause 3). */
export function probeSamples(n: number, seed: number, blocks: number): ProbeSamples {
  const rng = makeRng(seed);
  const sequences: ProbeSequence[] = [];
  const labels = new Int32Array(n * PROBE_DIGITS);
  const test: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const digits = randomDigits(rng, blocks);
    const passcode = Array.from({ length: PROBE_DIGITS }, () => Math.floor(rng() * 10));
    digits[PROBE_TARGET_BLOCK] = passcode;
    sequences.push(probeSequence(digits));
    labels.set(passcode, i * PROBE_DIGITS);
    test.push(fnv1a(passcode.join("")) % 5 === 0);
  }
  return { sequences, labels, test };
}

/** What to read: the memento of `block` (0-based) at `layers` (0-based). */
export interface FeatureRequest {
  block: number;
  layers: number[];
}

const featureKey = (block: number, layer: number) => `${block}:${layer}`;

/** Clause 2's features, one [n, MEMENTO_TOKENS * 2 * kvDim] matrix per (block, layer) requested. */
export function mementoKvFeatures(
  model: Qwen3Model,
  sequences: readonly ProbeSequence[],
  requests: readonly FeatureRequest[],
): Map<string, Float32Array> {
  const kvDim = model.kvDim;
  const dim = MEMENTO_TOKENS * 2 * kvDim;
  const out = new Map<string, Float32Array>();
  for (const r of requests)
    for (const l of r.layers) out.set(featureKey(r.block, l), new Float32Array(sequences.length * dim));
  const lastBlock = Math.max(...requests.map((r) => r.block));
  sequences.forEach((seq, i) => {
    // Everything after the last memento read is irrelevant to it (causal), so the forward stops there.
    const ids = seq.ids.subarray(0, seq.mementoStart[lastBlock] + MEMENTO_TOKENS);
    const { cache } = model.forward(ids, probePattern(ids));
    for (const r of requests) {
      for (const l of r.layers) {
        const { k, v } = cache.layers[l];
        const target = out.get(featureKey(r.block, l))!;
        let o = i * dim;
        for (let t = 0; t < MEMENTO_TOKENS; t++) {
          const p = seq.mementoStart[r.block] + t;
          target.set(k.subarray(p * kvDim, (p + 1) * kvDim), o);
          target.set(v.subarray(p * kvDim, (p + 1) * kvDim), o + kvDim);
          o += 2 * kvDim;
        }
      }
    }
  });
  return out;
}

function subset(features: Float32Array, labels: Int32Array, rows: readonly number[], dim: number): ProbeDataset {
  const f = new Float32Array(rows.length * dim);
  const y = new Int32Array(rows.length * PROBE_DIGITS);
  rows.forEach((r, i) => {
    f.set(features.subarray(r * dim, (r + 1) * dim), i * dim);
    y.set(labels.subarray(r * PROBE_DIGITS, (r + 1) * PROBE_DIGITS), i * PROBE_DIGITS);
  });
  return { n: rows.length, dim, features: f, heads: PROBE_DIGITS, labels: y };
}

/** Trains a probe on the samples' training split and scores it on their test split (clause 4). */
export function probeAccuracy(
  features: Float32Array,
  samples: Pick<ProbeSamples, "labels" | "test">,
  mlp: Partial<ProbeMlpOptions>,
): Accuracy {
  const n = samples.test.length;
  const dim = features.length / n;
  const trainRows = samples.test.flatMap((t, i) => (t ? [] : [i]));
  const testRows = samples.test.flatMap((t, i) => (t ? [i] : []));
  const probe = ProbeMlp.fit(subset(features, samples.labels, trainRows, dim), mlp);
  const { correct, total } = probe.score(subset(features, samples.labels, testRows, dim));
  return { accuracy: correct / Math.max(1, total), ci95: wilsonInterval(correct, total), correct, total };
}

/**
 * Task accuracy (probe-task.ts clause 3): the share of blocks whose three running-sum digits are all the argmax
 * of a teacher-forced forward under the memento mask, over `sequences`.
 */
export function probeTaskAccuracy(model: Qwen3Model, sequences: readonly ProbeSequence[]): Accuracy {
  const vocab = model.vocab;
  let correct = 0;
  let total = 0;
  for (const seq of sequences) {
    const { logits } = model.forward(seq.ids, probePattern(seq.ids));
    for (const start of seq.sumStart) {
      let right = true;
      for (let j = 0; j < SUM_DIGITS && right; j++) {
        const row = logits.subarray((start + j - 1) * vocab, (start + j) * vocab);
        let best = 0;
        for (let c = 1; c < vocab; c++) if (row[c] > row[best]) best = c;
        right = best === seq.ids[start + j];
      }
      if (right) correct++;
      total++;
    }
  }
  return { accuracy: correct / Math.max(1, total), ci95: wilsonInterval(correct, total), correct, total };
}

/** The whole analysis of clauses 1-5 on the checkpoints in `modelDir` (the last one is "the model"). */
export function runProbeAnalysis(opts: ProbeAnalysisOptions): ProbeReport {
  const log = opts.log ?? (() => {});
  const checkpoints = listProbeCheckpoints(opts.modelDir);
  if (checkpoints.length === 0) throw new Error(`no probe-task checkpoint in ${opts.modelDir}`);
  const last = checkpoints[checkpoints.length - 1];
  const model = loadModel(last.dir);
  const layers = Array.from({ length: model.layers.length }, (_, l) => l);
  const lastLayer = layers.length - 1;
  const T = PROBE_TARGET_BLOCK;
  const blocks = Math.min(DEFAULT_PROBE_BLOCKS, T + MAX_PROBE_DISTANCE + 1);
  const samples = probeSamples(opts.samples, PROBE_SAMPLE_SEED, blocks);
  const testCount = samples.test.filter(Boolean).length;

  let t0 = performance.now();
  log(`features: ${opts.samples} sequences through the model at step ${last.step}`);
  const requests: FeatureRequest[] = [T - 1, T, T + 1].map((block) => ({ block, layers }));
  for (let d = 2; T + d < blocks; d++) requests.push({ block: T + d, layers: [lastLayer] });
  const features = mementoKvFeatures(model, samples.sequences, requests);
  const featureSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const condition = (block: number, name: string): ConditionResult => ({
    block: block + 1,
    byLayer: layers.map((l) => {
      const acc = probeAccuracy(features.get(featureKey(block, l))!, samples, opts.mlp);
      log(`${name} layer ${l + 1}: ${(100 * acc.accuracy).toFixed(1)}% (chance 10%)`);
      return { layer: l + 1, ...acc };
    }),
    samples: testCount,
    trainSamples: opts.samples - testCount,
  });
  const causal = condition(T - 1, "causal");
  const direct = condition(T, "direct");
  const masked = condition(T + 1, "masked");
  const { layer: _layer, ...atLastLayer } = masked.byLayer[lastLayer];
  const maskedByDistance: ProbeReport["maskedByDistance"] = [{ distance: 1, block: T + 2, ...atLastLayer }];
  for (let d = 2; T + d < blocks; d++) {
    const acc = probeAccuracy(features.get(featureKey(T + d, lastLayer))!, samples, opts.mlp);
    log(`masked +${d}: ${(100 * acc.accuracy).toFixed(1)}% (chance 10%)`);
    maskedByDistance.push({ distance: d, block: T + d + 1, ...acc });
  }
  features.clear();
  const probeSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const ckSamples = probeSamples(opts.checkpointSamples, PROBE_SAMPLE_SEED, T + 2);
  const taskSeqs = probeSamples(opts.taskSamples, TASK_SAMPLE_SEED, DEFAULT_PROBE_BLOCKS).sequences;
  const maskedByCheckpoint = checkpoints.map((ck) => {
    const m = ck === last ? model : loadModel(ck.dir);
    const f = mementoKvFeatures(m, ckSamples.sequences, [{ block: T + 1, layers: [m.layers.length - 1] }]);
    const acc = probeAccuracy(f.get(featureKey(T + 1, m.layers.length - 1))!, ckSamples, opts.mlp);
    const task = probeTaskAccuracy(m, taskSeqs);
    log(`step ${ck.step}: masked ${(100 * acc.accuracy).toFixed(1)}%, task ${(100 * task.accuracy).toFixed(1)}%`);
    return { step: ck.step, ...acc, taskAccuracy: task.accuracy, taskCi95: task.ci95 };
  });
  const checkpointSeconds = (performance.now() - t0) / 1000;

  return {
    chance: PROBE_CHANCE,
    model: { dir: last.dir, layers: layers.length, hidden: model.hidden, steps: last.step },
    targetBlock: T + 1,
    direct,
    masked,
    causal,
    maskedByDistance,
    maskedByCheckpoint,
    probe: {
      hidden: opts.mlp.hidden ?? [...DEFAULT_PROBE_HIDDEN],
      features: `keys and values of the ${MEMENTO_TOKENS} memento tokens, ${MEMENTO_TOKENS * 2 * model.kvDim} per layer`,
      checkpointSamples: opts.checkpointSamples,
      taskSamples: opts.taskSamples,
    },
    seconds: { features: featureSeconds, probes: probeSeconds, checkpoints: checkpointSeconds },
  };
}
