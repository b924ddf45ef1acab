/**
 * The probe task of the paper's appendix A.4.2 (our own layout): sequences of blocks, each five random digits and
 * the 3-digit running sum of every digit so far, each closed by a memento that restates the sum, trained with
 * keep-last-0 memento attention. Owns the tokens, the sequences, the training plan and its checkpoints; never
 * touches the trainer's internals (it calls `train` as `train toy` does).
 *
 *   <bos> ( <bs> d d d d d = s s s <be> <ss> s s s <se> ) x blocks       one token per symbol, vocabulary 16
 *
 * 1. The mask is the engine's: `mementoPattern` with keepLastNBlocks 0 over the whole sequence (position 0, the
 *    bos, is the prompt), so a memento's tokens see their block and later tokens never do.
 * 2. Loss on every token except the random digits (they are unpredictable: chance-level noise in the gradient).
 * 3. Task accuracy = held-out blocks whose three running-sum digits are all the argmax, teacher-forced under the
 *    memento mask; it needs the previous memento's sum, so a model that ignores mementos stays near 0 past block 1.
 * 4. Checkpoints: `train` keeps one resumable checkpoint; we copy its weights to `step-<n>/` at each planned step,
 *    F16 (the file is what we commit under models/probe/), and skip steps already copied, so a rerun resumes.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadModel, saveModel } from "../model/index.js";
import { countParameters, toyConfig, type Qwen3Config } from "../model/config.js";
import { Qwen3Model } from "../model/transformer.js";
import { DEFAULT_MASKING, type TrackerTokenIds } from "../masking/config.js";
import { mementoPattern, type CompactAttentionPattern } from "../masking/masks.js";
import { train } from "../train/trainer.js";
import type { TrainSequence } from "../train/grad-job.js";
import { makeRng, type Rng } from "../train/toy-task.js";

/** Token ids: digits are their own value. */
export const PROBE_TOKENS = Object.freeze({
  bos: 10,
  eq: 11,
  blockStart: 12,
  blockEnd: 13,
  summaryStart: 14,
  summaryEnd: 15,
});
export const PROBE_VOCAB_SIZE = 16;
export const PROBE_TRACKER_IDS: Readonly<TrackerTokenIds> = Object.freeze({
  blockStart: PROBE_TOKENS.blockStart,
  blockEnd: PROBE_TOKENS.blockEnd,
  summaryStart: PROBE_TOKENS.summaryStart,
  summaryEnd: PROBE_TOKENS.summaryEnd,
});
/** Blocks per sequence (the paper's 10). */
export const DEFAULT_PROBE_BLOCKS = 10;
/** Random digits per block (the paper's 5): also the digits a probe predicts. */
export const PROBE_DIGITS = 5;
/** Digits of the running sum (at most 9 x 5 x 10 = 450). */
export const SUM_DIGITS = 3;
/** Tokens of one block with its memento: bs, 5 digits, =, 3 sum digits, be, ss, 3 digits, se. */
export const TOKENS_PER_BLOCK = 1 + PROBE_DIGITS + 1 + SUM_DIGITS + 1 + 1 + SUM_DIGITS + 1;
/** Tokens of a memento, `<|summary_start|>` to `<|summary_end|>`: the positions a probe reads. */
export const MEMENTO_TOKENS = SUM_DIGITS + 2;

/** One sequence: its token ids and where each block's parts sit. */
export interface ProbeSequence {
  ids: Int32Array;
  /** digits[b] = the five random digits of block b (0-based). */
  digits: number[][];
  /** Position of block b's `<|summary_start|>` (its memento spans MEMENTO_TOKENS positions from there). */
  mementoStart: number[];
  /** Position of block b's first running-sum digit. */
  sumStart: number[];
}

/** Five uniform random digits per block. */
export function randomDigits(rng: Rng, blocks = DEFAULT_PROBE_BLOCKS): number[][] {
  return Array.from({ length: blocks }, () => Array.from({ length: PROBE_DIGITS }, () => Math.floor(rng() * 10)));
}

function sumDigits(sum: number): number[] {
  return [Math.floor(sum / 100) % 10, Math.floor(sum / 10) % 10, sum % 10];
}

/** The token sequence of blocks of digits (clause 1's layout). */
export function probeSequence(digits: readonly (readonly number[])[]): ProbeSequence {
  const T = PROBE_TOKENS;
  const ids: number[] = [T.bos];
  const mementoStart: number[] = [];
  const sumStart: number[] = [];
  let sum = 0;
  for (const block of digits) {
    for (const d of block) sum += d;
    const s = sumDigits(sum);
    ids.push(T.blockStart, ...block, T.eq);
    sumStart.push(ids.length);
    ids.push(...s, T.blockEnd);
    mementoStart.push(ids.length);
    ids.push(T.summaryStart, ...s, T.summaryEnd);
  }
  return { ids: Int32Array.from(ids), digits: digits.map((b) => [...b]), mementoStart, sumStart };
}

/** Keep-last-0 memento attention over a probe sequence (clause 1). */
export function probePattern(ids: Int32Array): CompactAttentionPattern {
  return mementoPattern(ids, 1, PROBE_TRACKER_IDS, { ...DEFAULT_MASKING, keepLastNBlocks: 0 });
}

/** The training sequence of one probe sequence: next-token targets, random digits excluded (clause 2). */
export function probeTrainSequence(seq: ProbeSequence): TrainSequence {
  const n = seq.ids.length;
  const targets = new Int32Array(n).fill(-100);
  const random = new Set<number>();
  for (let b = 0; b < seq.digits.length; b++) {
    const first = seq.sumStart[b] - 1 - PROBE_DIGITS;
    for (let i = 0; i < PROBE_DIGITS; i++) random.add(first + i);
  }
  for (let t = 0; t + 1 < n; t++) if (!random.has(t + 1)) targets[t] = seq.ids[t + 1];
  return { ids: seq.ids, targets, pattern: probePattern(seq.ids) };
}

/** Model shape of the probe task. */
export interface ProbeModelSpec {
  layers: number;
  hidden: number;
}

/**
 * 4 layers like the paper's toy, d=64 instead of its 128 (~0.2M parameters): measured on this 2-core machine,
 * our trainer runs ~2,000 tokens/s at d=64 vs ~870 at d=128 (one thread, 161-token sequences), and 1,600 steps
 * at d=128 would not fit the 60-minute budget of `analyze probe`.
 */
export const DEFAULT_PROBE_MODEL: Readonly<ProbeModelSpec> = Object.freeze({ layers: 4, hidden: 64 });
/** The --quick model: 2 layers, d=32. */
export const QUICK_PROBE_MODEL: Readonly<ProbeModelSpec> = Object.freeze({ layers: 2, hidden: 32 });

export function probeModelConfig(spec: ProbeModelSpec): Qwen3Config {
  const headDim = Math.min(32, spec.hidden / 2);
  return toyConfig({
    vocab_size: PROBE_VOCAB_SIZE,
    hidden_size: spec.hidden,
    intermediate_size: spec.hidden * 3,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.hidden / headDim,
    num_key_value_heads: Math.max(1, spec.hidden / headDim / 2),
    head_dim: headDim,
    max_position_embeddings: 512,
  });
}

/** Training plan of the probe-task model. */
export interface ProbeTrainPlan {
  model: ProbeModelSpec;
  /** Optimizer steps in all (one cosine schedule). */
  steps: number;
  /** Steps at which a copy of the weights is kept (the last one is `steps`). */
  checkpointSteps: number[];
  batchSize: number;
  /** Distinct training sequences (drawn from `seed`; held-out ones come from other seeds). */
  trainSequences: number;
  lr: number;
  seed: number;
  workers: number;
}

export const DEFAULT_PROBE_TRAIN: Readonly<ProbeTrainPlan> = Object.freeze({
  model: DEFAULT_PROBE_MODEL,
  // 1,000 steps over 4,000 sequences left the sums 15.7% right (the paper's toy reaches 77-95%).
  steps: 3000,
  checkpointSteps: [250, 500, 1000, 2000, 3000],
  batchSize: 4,
  // One epoch: every training sequence is seen once.
  trainSequences: 12000,
  lr: 3e-3,
  seed: 1,
  workers: 2,
});

export const QUICK_PROBE_TRAIN: Readonly<ProbeTrainPlan> = Object.freeze({
  model: QUICK_PROBE_MODEL,
  steps: 6,
  checkpointSteps: [3, 6],
  batchSize: 4,
  trainSequences: 64,
  lr: 3e-3,
  seed: 1,
  workers: 1,
});

const STEP_DIR = /^step-(\d+)$/;

/** The next step the trainer's working checkpoint would run (`total` once its one stage is done; 0 if none). */
function workStep(work: string, total: number): number {
  const file = join(work, "checkpoint", "state.json");
  if (!existsSync(file)) return 0;
  const state = JSON.parse(readFileSync(file, "utf8")) as { stage: number; step: number };
  return state.stage >= 1 ? total : state.step;
}

/** The kept checkpoints of a probe-model directory, ascending by step. */
export function listProbeCheckpoints(dir: string): { step: number; dir: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => ({ m: STEP_DIR.exec(name), name }))
    .filter((e) => e.m !== null && existsSync(join(dir, e.name, "model.safetensors")))
    .map((e) => ({ step: Number(e.m![1]), dir: join(dir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * The trained probe-task model of a directory (its last kept checkpoint): the loader other analyses use
 * (e.g. restart mode on this model). Undefined when the directory holds no checkpoint.
 */
export function loadProbeModel(dir: string): Qwen3Model | undefined {
  const all = listProbeCheckpoints(dir);
  return all.length === 0 ? undefined : loadModel(all[all.length - 1].dir);
}

/** True when `dir` holds every checkpoint of `plan`. */
export function probeModelComplete(dir: string, plan: Pick<ProbeTrainPlan, "checkpointSteps">): boolean {
  const have = new Set(listProbeCheckpoints(dir).map((c) => c.step));
  return plan.checkpointSteps.every((s) => have.has(s));
}

/**
 * Trains the probe-task model into `outDir` (resumable, clause 4): the trainer's working checkpoint in
 * `outDir/work/`, the kept copies in `outDir/step-<n>/`. Returns the kept checkpoints.
 */
export async function trainProbeModel(
  outDir: string,
  plan: ProbeTrainPlan,
  log: (line: string) => void = () => {},
): Promise<{ step: number; dir: string }[]> {
  mkdirSync(outDir, { recursive: true });
  const config = probeModelConfig(plan.model);
  log(`probe-task model: ${plan.model.layers} layers, d=${plan.model.hidden}, ${countParameters(config)} parameters`);
  const rng = makeRng(plan.seed);
  const sequences = Array.from({ length: plan.trainSequences }, () =>
    probeTrainSequence(probeSequence(randomDigits(rng))),
  );
  const work = join(outDir, "work");
  const model = Qwen3Model.random(config, { seed: plan.seed });
  for (const step of [...plan.checkpointSteps].sort((a, b) => a - b)) {
    const kept = join(outDir, `step-${step}`);
    if (existsSync(join(kept, "model.safetensors"))) continue;
    const current = workStep(work, plan.steps);
    if (current > step) {
      log(`step ${step} was passed without its copy (the run stopped in between); skipped`);
      continue;
    }
    if (current < step) {
      await train({
        model,
        stages: [{ name: "memento", sequences, steps: plan.steps, lr: plan.lr }],
        batchSize: plan.batchSize,
        seed: plan.seed,
        outDir: work,
        workers: plan.workers,
        checkpointEvery: 50,
        stopAfterSteps: step - current,
        onLog: log,
      });
    }
    saveModel(kept, loadModel(join(work, "checkpoint")), { dtype: "F16" });
    log(`kept step ${step} in ${kept}`);
  }
  if (existsSync(join(work, "loss.csv"))) copyFileSync(join(work, "loss.csv"), join(outDir, "loss.csv"));
  writeFileSync(join(outDir, "plan.json"), `${JSON.stringify(plan, null, 2)}\n`);
  // Every copy is kept: the working checkpoint (weights and AdamW moments) is not worth its bytes any more.
  if (probeModelComplete(outDir, plan)) rmSync(work, { recursive: true, force: true });
  return listProbeCheckpoints(outDir);
}
