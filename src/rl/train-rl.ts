/**
 * `memento train rl`: the paper's third stage on the toy task. Starting from an SFT checkpoint, each step
 * generates rollouts with block masking, rewards them with the task's checker and takes CISPO updates under
 * each rollout's own Stage-2 mask, with a KL penalty against the starting (reference) policy.
 *
 *   for step k:  P prompts x G samples (engine, T = 1.0, keep-last-0, maxBlockTokens cap, log pi_old recorded)
 *                -> rewards (checker) -> group-relative advantages
 *                -> M minibatches (whole groups), each one AdamW update of the CISPO loss (cispo.ts)
 *
 * 1. Groups whose rewards are all equal have zero advantage: they are dropped before the update (their only
 *    gradient would be the KL term's, which is zero at the reference and tiny near it), as DAPO's dynamic
 *    sampling does. The step's metrics still count them.
 * 2. pi_old is what the engine recorded while generating. The first minibatch of a step is on-policy (ratio 1
 *    up to the engine-vs-trainer rounding the logprob test bounds); later ones see the updates before them,
 *    which is where the ratio clip acts.
 * 3. AdamW (0.9, 0.999, no weight decay), linear warmup over `warmupUpdates` then constant, global-norm
 *    clipping. Token-level averaging within each minibatch.
 * 4. Deterministic: the prompts of step k are a seeded permutation of the training set, rollout seeds hash
 *    (seed, k, problem, sample), and the worker split is fixed by `workers`. A checkpoint after every step
 *    holds the weights, AdamW's moments and the step; a rerun resumes bitwise-exactly (same `workers`) and
 *    refuses changed options (io/manifest.ts). metrics.jsonl is cut back to the checkpoint on resume.
 * 5. Validation every `valEvery` steps and at the end: held-out problems, `valSamples` each at `valTemperature`
 *    (the paper evaluates at 0.6), pass@1 with its interval, maj@k, peak KV, blocks and block length.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { UserError } from "../errors.js";
import { resolveMasking, type MaskingConfig } from "../masking/config.js";
import { checkJobIdentity, fileFingerprint, moveAside, type JobIdentity } from "../io/manifest.js";
import { loadModel, saveModel } from "../model/index.js";
import { toyTokenizer } from "../train/char-tokenizer.js";
import { AdamW, clipGradNorm } from "../train/optim.js";
import { loadCheckpoint, restoreOptimizer, saveCheckpoint } from "../train/checkpoint.js";
import { STAGE2_MASKING, stagePattern, trackerIdsOf } from "../train/sft-data.js";
import { batchIndices } from "../train/trainer.js";
import {
  DEFAULT_TRAIN_SEED,
  generateDataset,
  generateHeldOut,
  type ToyDatasetItem,
  type ToyParams,
} from "../train/toy-task.js";
import { DEFAULT_ADVANTAGE_SCALE, groupAdvantages, type AdvantageScale } from "./advantages.js";
import { DEFAULT_CISPO, type CispoOptions, type RolloutSample } from "./cispo.js";
import { evaluatePolicy, type PolicyEval } from "./evaluate.js";
import { RlPool } from "./pool.js";
import type { Rollout } from "./engine-rollouts.js";

export interface RlTrainOptions {
  /** The SFT checkpoint to start from (also the KL reference). */
  startDir: string;
  outDir: string;
  seed: number;
  /** RL steps (rollout batches). */
  steps: number;
  /** Prompts per step. */
  prompts: number;
  /** Samples per prompt (the paper: 8). */
  group: number;
  /** Optimizer updates per step: the step's groups split into this many minibatches. */
  minibatches: number;
  /** Peak learning rate (the paper: 1e-6 on an 8B model; a 1M-parameter toy needs far more). */
  lr: number;
  /** Linear warmup, in optimizer updates (the paper: 10). */
  warmupUpdates: number;
  /** Global gradient-norm clip (the paper: 1.0). */
  clip: number;
  cispo: CispoOptions;
  advantageScale: AdvantageScale;
  /** Rollout temperature (the paper: 1.0). */
  temperature: number;
  /**
   * Masking of rollouts and training over Stage 2's (keep-last-0, assistant section only); `maxBlockTokens`
   * caps blocks (0 = the model decides where they end).
   */
  masking: Partial<MaskingConfig>;
  /** Distinct training problems prompts are drawn from. */
  trainProblems: number;
  /** Task parameters of training and held-out problems (rounds = blocks). */
  task?: Partial<ToyParams>;
  valEvery: number;
  valProblems: number;
  valSamples: number;
  valTemperature: number;
  workers: number;
  /** Rollout length cap (default: the task's budget per problem); tests use short ones. */
  maxTokens?: number;
  /** Reward of a response (default: the toy checker, 1 or 0); library callers and tests may replace it. */
  reward?: (item: ToyDatasetItem, text: string) => number;
  /** Stop after this many steps in this call, leaving a checkpoint (time-boxing; rerun to go on). */
  stopAfterSteps?: number;
  signal?: AbortSignal;
  forceNew?: boolean;
  onLog?: (line: string) => void;
}

/** The defaults of `memento train rl`, each with its reason where it departs from the paper. */
export const DEFAULT_RL_OPTIONS = Object.freeze({
  seed: 1,
  // 20 steps of 16 x 8 rollouts from models/toy-rl-start: 39 min on 2 cores with its 3 validations (about two
  // minutes a step, README); held-out pass@1 56% -> 83% (`rl compare`, 50 x 8).
  steps: 20,
  prompts: 16,
  group: 8,
  minibatches: 2,
  // The paper's 1e-6 moves an 8B model. On the toy (README): 1e-3 collapsed a Stage-2 start within 5 steps,
  // 3e-4 made a weaker start worse (k digits miscopied), 2e-4 from models/toy-rl-start raised held-out pass@1.
  lr: 2e-4,
  warmupUpdates: 10,
  clip: 1.0,
  cispo: DEFAULT_CISPO,
  advantageScale: DEFAULT_ADVANTAGE_SCALE,
  temperature: 1.0,
  // A toy block is 59 tokens; the cap leaves room, and stops a policy that learns to never close a block.
  masking: Object.freeze({ maxBlockTokens: 96 }) as Partial<MaskingConfig>,
  trainProblems: 2000,
  valEvery: 10,
  valProblems: 32,
  valSamples: 4,
  valTemperature: 0.6,
  workers: 2,
});

/** One line of metrics.jsonl per step ("train") and per validation ("val"). */
export type RlMetric =
  | ({ kind: "train"; step: number } & StepMetrics)
  | ({ kind: "val"; step: number } & Omit<PolicyEval, "rollouts">);

export interface StepMetrics {
  /** Mean reward and the fraction of prompts with at least one correct sample. */
  reward: number;
  passRate: number;
  /** Groups that carried signal (rewards not all equal) and were trained on. */
  trainedGroups: number;
  /** Mean k3 KL to the reference, clipped-ratio fraction, mean |log ratio| (over counted tokens). */
  kl: number;
  clipFraction: number;
  absLogRatio: number;
  gradNorm: number;
  lr: number;
  blocksPerResponse: number;
  meanBlockTokens: number;
  peakKvTokens: number;
  completionTokens: number;
  forcedBlockEnds: number;
  rolloutSeconds: number;
  trainSeconds: number;
}

export interface RlReport {
  startDir: string;
  options: Record<string, unknown>;
  steps: number;
  seconds: number;
  val: Extract<RlMetric, { kind: "val" }>[];
  train: Extract<RlMetric, { kind: "train" }>[];
}

export const RL_MANIFEST_FILE = "manifest.json";

/** Every option that changes the weights, under its flag (io/manifest.ts policy 1). */
export function rlIdentity(o: RlTrainOptions): JobIdentity {
  return {
    options: {
      "--seed": o.seed,
      "--steps": o.steps,
      "--prompts": o.prompts,
      "--group": o.group,
      "--minibatches": o.minibatches,
      "--lr": o.lr,
      "--warmup": o.warmupUpdates,
      "--clip": o.clip,
      "--eps-low": o.cispo.epsLow,
      "--eps-high": o.cispo.epsHigh,
      "--beta": o.cispo.beta,
      "--advantage": o.advantageScale,
      "--temperature": o.temperature,
      masking: resolveMasking({ ...STAGE2_MASKING, ...o.masking }),
      "--train-problems": o.trainProblems,
      // Float sums depend on how the gradient is split (pool.ts clause 2).
      "--workers": o.workers,
      maxTokens: o.maxTokens ?? null,
      task: o.task ?? null,
      reward: o.reward ? "custom" : "toy-checker",
    },
    input: { start: fileFingerprint(join(o.startDir, "model.safetensors")) },
  };
}

interface CheckpointState {
  /** The next step to run. */
  step: number;
  /** AdamW updates so far. */
  t: number;
  seconds: number;
}

function readMetrics(path: string): RlMetric[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as RlMetric);
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Validates options that a user can get wrong (CLI and library). */
function checkOptions(o: RlTrainOptions): void {
  const int = (v: number, name: string, lo: number) => {
    if (!Number.isInteger(v) || v < lo) throw new UserError(`train rl: ${name} must be an integer >= ${lo}, got ${v}`);
  };
  int(o.steps, "--steps", 1);
  int(o.prompts, "--prompts", 1);
  int(o.group, "--group", 2);
  int(o.minibatches, "--minibatches", 1);
  int(o.valEvery, "--val-every", 1);
  int(o.valProblems, "--val-problems", 1);
  int(o.valSamples, "--val-samples", 1);
  int(o.trainProblems, "--train-problems", o.prompts);
  if (o.minibatches > o.prompts)
    throw new UserError(
      `train rl: --minibatches ${o.minibatches} exceeds --prompts ${o.prompts} (a minibatch holds whole groups)`,
    );
  if (!(o.lr > 0)) throw new UserError(`train rl: --lr must be > 0, got ${o.lr}`);
  if (!(o.temperature > 0))
    throw new UserError(`train rl: --temperature must be > 0 (rollouts sample), got ${o.temperature}`);
  if (!(o.cispo.epsLow >= 0 && o.cispo.epsLow < 1)) throw new UserError(`train rl: --eps-low must be in [0, 1)`);
  if (!(o.cispo.epsHigh >= 0)) throw new UserError(`train rl: --eps-high must be >= 0`);
  if (!(o.cispo.beta >= 0)) throw new UserError(`train rl: --beta must be >= 0`);
  if (!existsSync(join(o.startDir, "config.json")) || !existsSync(join(o.startDir, "model.safetensors")))
    throw new UserError(`train rl: ${o.startDir} is not a model directory (config.json and model.safetensors)`);
}

/** The rollouts of one step turned into training samples (groups with signal only) and the step's metrics. */
function toSamples(
  groups: readonly (readonly Rollout[])[],
  rewards: readonly (readonly number[])[],
  scale: AdvantageScale,
  masking: Readonly<MaskingConfig>,
): { samples: RolloutSample[][]; trained: number } {
  const tok = toyTokenizer();
  const ids = trackerIdsOf(tok);
  const out: RolloutSample[][] = [];
  for (const [g, group] of groups.entries()) {
    const adv = groupAdvantages(rewards[g], scale);
    if (adv.every((a) => a === 0)) continue;
    out.push(
      group.map((r, s) => {
        const all = Int32Array.from([...r.promptIds, ...r.completionIds]);
        const counted = new Uint8Array(r.completionIds.length).fill(1);
        for (const f of r.forced) counted[f] = 0;
        return {
          ids: all,
          promptLength: r.promptIds.length,
          pattern: stagePattern({ ids: all, promptLength: r.promptIds.length }, 2, ids, masking),
          oldLogprobs: r.logprobs,
          counted,
          advantage: adv[s],
        };
      }),
    );
  }
  return { samples: out, trained: out.length };
}

/** Runs (or resumes) RL training; returns the report once every step is done, or `stopped` at a checkpoint. */
export async function trainRl(o: RlTrainOptions): Promise<{ stopped: boolean; report: RlReport }> {
  checkOptions(o);
  const log = o.onLog ?? (() => {});
  if (o.forceNew) {
    const aside = moveAside(o.outDir);
    if (aside) log(`--force-new: moved the earlier run to ${aside}`);
  }
  const identity = rlIdentity(o);
  checkJobIdentity(join(o.outDir, RL_MANIFEST_FILE), identity, { what: "RL run", dirFlag: "--out" });
  mkdirSync(o.outDir, { recursive: true });
  writeFileSync(
    join(o.outDir, RL_MANIFEST_FILE),
    JSON.stringify({ ...identity, startDir: o.startDir, recordedAt: new Date().toISOString() }, null, 2) + "\n",
  );

  const tok = toyTokenizer();
  const policy = loadModel(o.startDir);
  const ref = o.cispo.beta > 0 ? loadModel(o.startDir) : undefined;
  const train = generateDataset(DEFAULT_TRAIN_SEED + o.seed, o.trainProblems, o.task ?? {}, "train");
  const heldOut = generateHeldOut(o.valProblems, o.task ?? {});
  const metricsPath = join(o.outDir, "metrics.jsonl");

  let start: CheckpointState = { step: 0, t: 0, seconds: 0 };
  let moments: Map<string, Float32Array> | undefined;
  const ck = loadCheckpoint<CheckpointState>(o.outDir);
  if (ck) {
    start = ck.state;
    for (const [name, p] of policy.params) p.set(ck.model.params.get(name)!);
    moments = ck.moments;
    log(`resuming at step ${start.step} of ${o.steps}`);
  }
  // metrics.jsonl holds exactly what happened before the checkpoint.
  const kept = readMetrics(metricsPath).filter((m) => m.step < start.step);
  writeFileSync(metricsPath, kept.map((m) => JSON.stringify(m) + "\n").join(""));
  const record = (m: RlMetric) => appendFileSync(metricsPath, JSON.stringify(m) + "\n");

  const pool = await RlPool.create(policy, ref, tok, o.workers);
  const model = pool.model;
  const opt = new AdamW(model.params);
  if (moments) {
    restoreOptimizer(opt, moments, start.t);
  }
  const rolloutMasking = resolveMasking({ ...STAGE2_MASKING, ...o.masking });
  const began = performance.now();
  const elapsed = () => start.seconds + (performance.now() - began) / 1000;
  const validate = async (step: number) => {
    const t0 = performance.now();
    const v = await evaluatePolicy(pool, heldOut, {
      samples: o.valSamples,
      temperature: o.valTemperature,
      seed: o.seed,
      masking: rolloutMasking,
      ...(o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : {}),
    });
    const { rollouts: _r, ...summary } = v;
    record({ kind: "val", step, ...summary });
    log(
      `val step ${step}: pass@1 ${(100 * v.passAt1).toFixed(1)}% [${(100 * v.ci95[0]).toFixed(1)}, ${(100 * v.ci95[1]).toFixed(1)}]` +
        `${v.majAtK !== null ? `, maj@${v.k} ${(100 * v.majAtK).toFixed(1)}%` : ""}, peak KV ${v.peakKvTokens.toFixed(0)} ` +
        `(full attention ${v.fullAttentionPeakKvTokens.toFixed(0)}), ${v.blocksPerResponse.toFixed(2)} blocks of ` +
        `${v.meanBlockTokens.toFixed(1)} tokens (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
    );
  };

  let stopped = false;
  let ran = 0;
  try {
    for (let step = start.step; step < o.steps; step++) {
      if (step % o.valEvery === 0) await validate(step);
      // One event-loop turn per step, so Ctrl-C's handler runs even when everything computes on this thread.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const t0 = performance.now();
      const idx = batchIndices(train.length, o.prompts, o.seed, 0, step);
      const items = idx.map((i) => train[i]);
      const groups = await pool.rollouts(items, o.group, {
        temperature: o.temperature,
        seed: o.seed,
        step,
        masking: rolloutMasking,
        problemIds: idx,
        ...(o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : {}),
      });
      // The checker's reward came with each rollout; a caller's reward function replaces it.
      const rewards = groups.map((g, i) => g.map((r) => (o.reward ? o.reward(items[i], r.text) : r.reward)));
      const t1 = performance.now();
      const { samples, trained } = toSamples(groups, rewards, o.advantageScale, rolloutMasking);
      // Whole groups per minibatch, dealt round-robin; an empty minibatch makes no update.
      const parts: RolloutSample[][] = Array.from({ length: o.minibatches }, () => []);
      for (const [i, g] of samples.entries()) parts[i % o.minibatches].push(...g);
      let clipped = 0;
      let counted = 0;
      let kl = 0;
      let absLogRatio = 0;
      let gradNorm = 0;
      let lr = 0;
      for (const part of parts) {
        if (part.length === 0) continue;
        let tokens = 0;
        for (const s of part) for (const c of s.counted) tokens += c;
        if (tokens === 0) continue;
        const g = await pool.grads(part, tokens, o.cispo);
        gradNorm = clipGradNorm(g.grads, o.clip);
        lr = o.lr * Math.min(1, (opt.t + 1) / Math.max(1, o.warmupUpdates));
        opt.step(model.params, g.grads, lr);
        clipped += g.stats.clipped;
        counted += g.stats.tokens;
        kl += g.stats.kl;
        absLogRatio += g.stats.absLogRatio;
      }
      const all = groups.flat();
      const withBlocks = all.filter((r) => r.blocks > 0);
      const m: StepMetrics = {
        reward: mean(rewards.flat()),
        passRate: mean(rewards.map((g) => (g.some((r) => r > 0) ? 1 : 0))),
        trainedGroups: trained,
        kl: counted ? kl / counted : 0,
        clipFraction: counted ? clipped / counted : 0,
        absLogRatio: counted ? absLogRatio / counted : 0,
        gradNorm,
        lr,
        blocksPerResponse: mean(all.map((r) => r.blocks)),
        meanBlockTokens: mean(withBlocks.map((r) => r.meanBlockTokens)),
        peakKvTokens: mean(all.map((r) => r.peakKvTokens)),
        completionTokens: mean(all.map((r) => r.completionIds.length)),
        forcedBlockEnds: mean(all.map((r) => r.forced.length)),
        rolloutSeconds: (t1 - t0) / 1000,
        trainSeconds: (performance.now() - t1) / 1000,
      };
      record({ kind: "train", step, ...m });
      log(
        `step ${step + 1}/${o.steps} reward ${m.reward.toFixed(3)} pass ${(100 * m.passRate).toFixed(0)}% ` +
          `trained ${trained}/${groups.length} groups, KL ${m.kl.toExponential(2)} clip ${(100 * m.clipFraction).toFixed(1)}% ` +
          `${trained > 0 ? `|g| ${gradNorm.toFixed(3)} lr ${lr.toExponential(1)}` : "no update (no group carried signal)"}, ` +
          `${m.blocksPerResponse.toFixed(2)} blocks of ` +
          `${m.meanBlockTokens.toFixed(1)} tokens, peak KV ${m.peakKvTokens.toFixed(0)} ` +
          `(${m.rolloutSeconds.toFixed(1)} s rollouts, ${m.trainSeconds.toFixed(1)} s train)`,
      );
      ran++;
      saveCheckpoint(o.outDir, model, opt, { step: step + 1, t: opt.t, seconds: elapsed() });
      const last = step + 1 === o.steps;
      if (!last && ((o.stopAfterSteps !== undefined && ran >= o.stopAfterSteps) || o.signal?.aborted === true)) {
        stopped = true;
        break;
      }
    }
    const metrics = readMetrics(metricsPath);
    if (!stopped && !metrics.some((m) => m.kind === "val" && m.step === o.steps)) await validate(o.steps);
  } finally {
    await pool.close();
  }
  const report = buildReport(o, readMetrics(metricsPath), elapsed());
  if (!stopped) {
    const modelDir = join(o.outDir, "model");
    saveModel(modelDir, model);
    tok.save(modelDir);
    writeFileSync(join(o.outDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
  }
  return { stopped, report };
}

export function buildReport(o: RlTrainOptions, metrics: readonly RlMetric[], seconds: number): RlReport {
  const { reward: _r, onLog: _l, signal: _s, ...rest } = o;
  return {
    startDir: o.startDir,
    options: { ...rest, reward: o.reward ? "custom" : "toy-checker" },
    steps: o.steps,
    seconds,
    val: metrics.filter((m): m is Extract<RlMetric, { kind: "val" }> => m.kind === "val"),
    train: metrics.filter((m): m is Extract<RlMetric, { kind: "train" }> => m.kind === "train"),
  };
}
