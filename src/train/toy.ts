/**
 * `memento train toy`: the toy task's data, the staged SFT recipe (warm-up, stage 1 causal, stage 2 memento
 * attention, two answer stages), greedy evaluation with and without block masking, and the report.
 *
 * Policy:
 * 1. Resumable through the trainer's checkpoints (trainer.ts): the same command picks up where it stopped.
 * 2. Resumes are checked (io/manifest.ts): `manifest.json` in the output directory records every option that
 *    changes the weights (`toyIdentity`) before training; a rerun with other ones is refused in one line naming
 *    them, and `forceNew` moves the old directory aside. Workers, checkpoint spacing and the held-out count do
 *    not change the weights and may differ between runs.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { UserError } from "../errors.js";
import { join } from "node:path";
import { checkJobIdentity, moveAside, type JobIdentity } from "../io/manifest.js";
import { Qwen3Model } from "../model/transformer.js";
import { KVCache } from "../model/kv-cache.js";
import { countParameters, toyConfig, type Qwen3Config } from "../model/config.js";
import { saveModel } from "../model/index.js";
import { BlockTracker } from "../masking/tracker.js";
import { resolveMasking, type MaskingConfig } from "../masking/config.js";
import { toyTokenizer, type CharTokenizer } from "./char-tokenizer.js";
import {
  buildSftExample,
  IGNORE_INDEX,
  renderSftPrompt,
  stagePattern,
  trackerIdsOf,
  type SftExample,
} from "./sft-data.js";
import {
  generateDataset,
  generateHeldOut,
  gradeResponse,
  makeRng,
  type ToyDatasetItem,
  type ToyParams,
  type ToyProblem,
} from "./toy-task.js";
import { argmax } from "../engine/sampling.js";
import { train, type TrainResult } from "./trainer.js";
import type { TrainSequence } from "./grad-job.js";

/** Rounds of the problems the short warm-up trains on. */
export const SHORT_ROUNDS = 2;

/** Next-token targets from unshifted labels: targets[i] = labels[i + 1]. */
export function shiftLabels(labels: Int32Array): Int32Array {
  const t = new Int32Array(labels.length).fill(IGNORE_INDEX);
  t.set(labels.subarray(1), 0);
  return t;
}

/**
 * Training sequences of one stage. `weights[i]` (optional, one array per example, indexed like the example's
 * tokens) weights the loss of predicting token i; it is shifted with the labels. `causal[i]` trains example i
 * with causal attention whatever the stage.
 */
export function toSequences(
  examples: readonly SftExample[],
  stage: 1 | 2,
  tok: CharTokenizer,
  extra: { weights?: readonly Float32Array[]; causal?: readonly boolean[] } = {},
): TrainSequence[] {
  const ids = trackerIdsOf(tok);
  return examples.map((ex, i) => {
    const seq: TrainSequence = {
      ids: ex.ids,
      targets: shiftLabels(ex.labels),
      pattern: stagePattern(ex, extra.causal?.[i] ? 1 : stage, ids),
    };
    const w = extra.weights?.[i];
    if (w) {
      const shifted = new Float32Array(w.length).fill(1);
      shifted.set(w.subarray(1), 0);
      seq.weights = shifted;
    }
    return seq;
  });
}

/**
 * Per-token loss weights for a toy example: `weight` on the tokens that occur once per problem, 1 elsewhere.
 * Those are the reads of the prompt (block 1's steps that take a value from `s=....`, and block 1's memento's
 * k, which decrements the prompt's k) and the answer's digits. Every other digit role repeats in every block,
 * so in a 9-round problem it gets ~9x the gradient; measured on the first bundled model, the once-per-problem
 * tokens were the only ones still wrong at the end (teacher-forced answer digit 3 right 5% of the time, block 1's
 * third prompt read derailing 26 of 40 greedy solutions) while every per-block role was at 99-100%.
 * With `scope` "answer" only the answer's digits get `weight` (the answer stage).
 */
export function toyLossWeights(
  tok: CharTokenizer,
  ex: SftExample,
  weight: number,
  scope: "once" | "answer" = "once",
): Float32Array {
  const w = new Float32Array(ex.ids.length).fill(1);
  if (weight === 1) return w;
  const response = ex.ids.subarray(ex.promptLength);
  const roles = toyTokenRoles(tok, response);
  const text = Array.from(response, (id) => tok.decode([id]));
  let block = 0;
  let step = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "<|block_start|>") {
      block++;
      step = 0;
    } else if (text[i] === " " && roles[i - 1] === "sum") step++;
    // Step s (0-based) of block 1 computes value 4 + s: its b = value s + 1 and, for s = 0, its a = value 0 are
    // prompt values (indices < 4); block 1's memento's k is the digit after "k=".
    const promptRead = block === 1 && ((roles[i] === "b" && step < 3) || (roles[i] === "a" && step === 0));
    const firstK = block === 1 && roles[i] === "memento" && text[i - 2] === "k";
    if (roles[i] === "answer" || (scope === "once" && (promptRead || firstK))) w[ex.promptLength + i] = weight;
  }
  return w;
}

/**
 * The sequences of an answer stage: stage-2 sequences (`causal[i]` keeps example i causal) whose answer digits
 * weigh `weight` in the memento-attention examples, and in the causal ones too when `weightCausal`.
 */
export function toyAnswerSequences(
  tok: CharTokenizer,
  examples: readonly SftExample[],
  causal: readonly boolean[],
  weight: number,
  weightCausal: boolean,
): TrainSequence[] {
  const weights = examples.map((ex, i) => toyLossWeights(tok, ex, causal[i] && !weightCausal ? 1 : weight, "answer"));
  return toSequences(examples, 2, tok, { weights, causal });
}

export interface GenerateResult {
  tokens: number[];
  text: string;
  peakKvTokens: number;
  evictions: number;
}

/**
 * Greedy decoding with the reference KV cache. With `masking` (keepLastNBlocks >= 0) a block tracker evicts
 * each completed block from the cache right after its `<|summary_end|>`, as the engine does; without it the
 * model keeps full attention.
 */
export function generateGreedy(
  model: Qwen3Model,
  tok: CharTokenizer,
  prompt: string,
  masking: Readonly<MaskingConfig> | undefined,
  maxTokens = 512,
): GenerateResult {
  const promptIds = tok.encode(renderSftPrompt(prompt));
  const cache = new KVCache(model);
  const tracker = masking ? new BlockTracker(masking, trackerIdsOf(tok)) : undefined;
  for (const t of promptIds) tracker?.push(t, true);
  let logits = cache.prefill(promptIds);
  const vocab = model.config.vocab_size;
  let last = logits.subarray((promptIds.length - 1) * vocab, promptIds.length * vocab);
  const out: number[] = [];
  const stop = new Set(
    [tok.specialTokens.imEnd, tok.specialTokens.eos, tok.specialTokens.pad].filter(
      (x): x is number => x !== undefined && x >= 0,
    ),
  );
  let evictions = 0;
  for (let i = 0; i < maxTokens; i++) {
    const best = argmax(last);
    if (stop.has(best)) break;
    out.push(best);
    logits = cache.step(best);
    last = logits;
    if (tracker) {
      for (const ev of tracker.push(best)) {
        cache.evict(ev.start, ev.end);
        evictions++;
      }
    }
  }
  return { tokens: out, text: tok.decode(out), peakKvTokens: cache.peakResidentTokens, evictions };
}

/** Generation budget for a toy problem: its reference response with room for a model that writes a little more. */
export function toyMaxTokens(problem: Pick<ToyProblem, "rounds">): number {
  // A reference response is 9 + 75 k tokens (k rounds).
  return 64 + 100 * problem.rounds;
}

export interface ToyEvalResult {
  problems: number;
  accuracy: number;
  /** Fraction of responses that pass the Memento validator. */
  validFormat: number;
  meanPeakKvTokens: number;
  meanEvictions: number;
}

export function evaluateToy(
  model: Qwen3Model,
  tok: CharTokenizer,
  items: readonly ToyDatasetItem[],
  masking: Readonly<MaskingConfig> | undefined,
): ToyEvalResult {
  let correct = 0;
  let valid = 0;
  let peak = 0;
  let ev = 0;
  for (const item of items) {
    const r = generateGreedy(model, tok, item.prompt, masking, toyMaxTokens(item.problem));
    const g = gradeResponse(item.problem, r.text);
    if (g.correct) correct++;
    if (g.valid) valid++;
    peak += r.peakKvTokens;
    ev += r.evictions;
  }
  const n = Math.max(1, items.length);
  return {
    problems: items.length,
    accuracy: correct / n,
    validFormat: valid / n,
    meanPeakKvTokens: peak / n,
    meanEvictions: ev / n,
  };
}

/** What a response token of the toy task is, for the teacher-forced breakdown. */
export type ToyTokenRole = "format" | "a" | "b" | "sum" | "memento" | "answer";

/**
 * The role of each response token of a reference toy response (char tokenizer: one token per character):
 * in a step `a+b=r`, "a" (read 3 tokens back, or from the memento for a block's first steps), "b" (15 back),
 * "sum" (r = a + b mod 10); the digits of a memento; the answer's digits; everything else is "format".
 */
export function toyTokenRoles(tok: CharTokenizer, responseIds: ArrayLike<number>): ToyTokenRole[] {
  const text = Array.from(responseIds, (i) => tok.decode([i]));
  const roles: ToyTokenRole[] = [];
  let where: "block" | "memento" | "answer" | "other" = "other";
  for (let i = 0; i < text.length; i++) {
    const t = text[i];
    if (t === "<|block_start|>") where = "block";
    else if (t === "<|summary_start|>") where = "memento";
    else if (t === "</think>") where = "answer";
    else if (t === "<|block_end|>" || t === "<|summary_end|>") where = "other";
    if (!/^\d$/.test(t) || where === "other") roles.push("format");
    else if (where === "memento") roles.push("memento");
    else if (where === "answer") roles.push("answer");
    else {
      const prev = text[i - 1];
      roles.push(prev === "+" ? "b" : prev === "=" ? "sum" : "a");
    }
  }
  return roles;
}

/** Teacher-forced next-token accuracy (argmax) by role, over reference responses of `items`. */
export function toyRoleAccuracy(
  model: Qwen3Model,
  tok: CharTokenizer,
  items: readonly ToyDatasetItem[],
  stage: 1 | 2,
): Record<ToyTokenRole, { accuracy: number; tokens: number }> {
  const counts = new Map<ToyTokenRole, [number, number]>();
  const ids = trackerIdsOf(tok);
  const vocab = model.config.vocab_size;
  for (const item of items) {
    const ex = buildSftExample(tok, item.prompt, item.response);
    const { logits } = model.forward(ex.ids, stagePattern(ex, stage, ids));
    const roles = toyTokenRoles(tok, ex.ids.subarray(ex.promptLength));
    for (let t = ex.promptLength; t < ex.ids.length; t++) {
      if (ex.labels[t] === IGNORE_INDEX) continue;
      const best = argmax(logits.subarray((t - 1) * vocab, t * vocab));
      const c = counts.get(roles[t - ex.promptLength]) ?? [0, 0];
      c[0] += best === ex.ids[t] ? 1 : 0;
      c[1]++;
      counts.set(roles[t - ex.promptLength], c);
    }
  }
  const out = {} as Record<ToyTokenRole, { accuracy: number; tokens: number }>;
  for (const role of ["format", "a", "b", "sum", "memento", "answer"] as const) {
    const [ok, n] = counts.get(role) ?? [0, 0];
    out[role] = { accuracy: n === 0 ? 0 : ok / n, tokens: n };
  }
  return out;
}

export interface ToyTrainOptions {
  outDir: string;
  /** Aborted (Ctrl-C, SIGTERM): training stops after the step in progress with a checkpoint; rerun to resume. */
  signal?: AbortSignal;
  seed: number;
  trainExamples: number;
  testExamples: number;
  /**
   * Steps of a causal warm-up on the short training problems (at most SHORT_ROUNDS rounds) before stage 1.
   * Attention starts out uniform, so in a 700-token sequence the gradient toward "the token 3 back" is spread
   * over 700 keys; on 100-200-token problems the step rule is learned in a fraction of the time, and RoPE makes
   * the learned relative patterns carry over to long problems. Default 0.
   */
  shortSteps?: number;
  stage1Steps: number;
  stage2Steps: number;
  /**
   * Loss weight of the tokens that occur once per problem (see `toyLossWeights`) in stage 2. Default 1.
   * The warm-up and stage 1 stay unweighted: they must first learn the step rule, and its sums arrive by a
   * sudden transition (the loss falls from 0.40 to 0.14 within ~100 steps of stage 1) that weighting delayed:
   * with weight 10 in stage 1 too (and a 300-step stage 1), sums were still at chance after 1,400 steps, while
   * the unweighted run had them by ~1,100.
   */
  onceWeight?: number;
  /**
   * Fraction of the training examples that stage 2 keeps under causal attention (default 0: all memento
   * attention, the paper's recipe). With a share of causal examples the same weights also run with full
   * attention, so "masked vs full attention" compares two modes the model knows rather than one it never saw
   * in its last stage (with 0, full attention reads evicted-in-training blocks and drifts out of format).
   */
  stage2CausalFraction?: number;
  /**
   * Steps of a stage after stage 2 ("stage2-answer", own AdamW and cosine schedule, same examples causal as
   * stage 2) in which the answer's digits weigh `answerWeight` in the memento-attention examples, on the
   * training problems with the short ones three times over. Default 0. Why: the answer is a copy of the last
   * memento's four values, done once per problem; after stage 2 (answer at 10x for 500 steps) the model copied
   * three of the four digits and left the third at chance (teacher-forced 18% on 40 held-out problems, causal
   * 30%), which capped accuracy at ~20% in both modes. 300 steps at 30x took it to 98% under the memento mask
   * (43% causal).
   */
  answerSteps?: number;
  /** Loss weight of the answer's digits in the answer stages. Default 30. */
  answerWeight?: number;
  /** Peak learning rate of the answer stage. Default `lr` / 3. */
  answerLr?: number;
  /**
   * Steps of a stage after the answer stage ("stage2-answer-all": same examples) in which the answer's digits
   * weigh `answerWeight` in every example, the causal ones too. Default 0. Why: the answer stage teaches the
   * copy from the last memento, which the memento mask leaves as the only source, but under full attention that
   * copy stayed weak (third digit 43% teacher-forced on 40 held-out problems; our reading: the ~400 extra block
   * tokens in view dilute it). Weighting the causal answers from the start taught a copy off the last block
   * instead (100% causal, 68% masked); once the memento copy exists, 150 steps of both at 30x (lr 3e-4) took the
   * third digit to 100% in both modes (40 problems) and greedy accuracy to 99.0% masked, 94.5% full attention
   * (200 problems).
   */
  answerAllSteps?: number;
  /** Peak learning rate of that stage. Default `answerLr` * 0.3. */
  answerAllLr?: number;
  batchSize: number;
  lr: number;
  workers: number;
  /** The held-out problems' task parameters (default: the task's defaults, 4-9 rounds). */
  task?: Partial<ToyParams>;
  /**
   * Fewest rounds of a training problem (default 1). Short problems teach the step rule fast: a tiny model
   * learns to attend a few tokens back far sooner in a 100-token sequence than in a 700-token one.
   */
  trainMinBlocks?: number;
  config?: Partial<Qwen3Config>;
  checkpointEvery?: number;
  /** Stop after this many optimizer steps in this call, at a checkpoint (a snapshot mid-recipe; rerun to go on). */
  stopAfterSteps?: number;
  /** Move an existing output directory aside and start over (`--force-new`). */
  forceNew?: boolean;
  onLog?: (line: string) => void;
}

/** The file in the output directory that records the run's identity. */
export const TOY_MANIFEST_FILE = "manifest.json";

/**
 * The identity of a toy training run (io/manifest.ts): every option that changes the weights, with its default
 * resolved, under its flag (`config` and `task` have no flag: library callers only).
 */
export function toyIdentity(opts: ToyTrainOptions): JobIdentity {
  const answerLr = opts.answerLr ?? opts.lr / 3;
  return {
    options: {
      "--seed": opts.seed,
      "--train-examples": opts.trainExamples,
      "--train-min-blocks": opts.trainMinBlocks ?? 1,
      "--short-steps": opts.shortSteps ?? 0,
      "--stage1-steps": opts.stage1Steps,
      "--stage2-steps": opts.stage2Steps,
      "--once-weight": opts.onceWeight ?? 1,
      "--stage2-causal": opts.stage2CausalFraction ?? 0,
      "--answer-steps": opts.answerSteps ?? 0,
      "--answer-weight": opts.answerWeight ?? 30,
      "--answer-lr": answerLr,
      "--answer-all-steps": opts.answerAllSteps ?? 0,
      "--answer-all-lr": opts.answerAllLr ?? answerLr * 0.3,
      "--batch": opts.batchSize,
      "--lr": opts.lr,
      config: opts.config,
      task: opts.task,
    },
    input: {},
  };
}

/**
 * Checks the output directory against this run's identity (policy 2) and records it. A directory with a
 * checkpoint but no manifest (trained before identities were recorded) is adopted, with a log line.
 */
function checkToyResume(opts: ToyTrainOptions, log: (line: string) => void): void {
  if (opts.forceNew) {
    const aside = moveAside(opts.outDir);
    if (aside) log(`--force-new: moved the earlier run to ${aside}`);
  }
  const identity = toyIdentity(opts);
  const manifest = join(opts.outDir, TOY_MANIFEST_FILE);
  const verdict = checkJobIdentity(manifest, identity, { what: "training run", dirFlag: "--out" });
  const legacy = verdict === "new" && existsSync(join(opts.outDir, "checkpoint", "state.json"));
  if (verdict === "adopted" || legacy)
    log(`note: ${opts.outDir} had no recorded options; resuming it with these, recorded from now on`);
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(manifest, JSON.stringify({ ...identity, recordedAt: new Date().toISOString() }, null, 2) + "\n");
}

export interface ToyReport {
  seed: number;
  parameters: number;
  config: Qwen3Config;
  train: {
    examples: number;
    steps: { short: number; stage1: number; stage2: number; answer: number; answerAll: number };
    onceWeight: number;
    stage2CausalFraction: number;
    answerWeight: number;
    answerLr: number;
    answerAllLr: number;
    batchSize: number;
    lr: number;
    seconds: number;
    tokens: number;
    finalLoss: Record<string, number>;
  };
  heldOut: {
    problems: number;
    masked: ToyEvalResult;
    fullAttention: ToyEvalResult;
    /** Full-attention mean peak KV / masked mean peak KV. */
    peakKvReduction: number;
    /** masked - full accuracy, in points. */
    accuracyDeltaPoints: number;
    /** Teacher-forced argmax accuracy per token role (50 held-out problems, memento attention): which part is learned. */
    tokenAccuracy: Record<ToyTokenRole, { accuracy: number; tokens: number }>;
  };
}

/**
 * `memento train toy`: generate the toy task, train a ~1M-parameter Qwen3-architecture model with two-stage SFT
 * (stage 1 causal, stage 2 memento attention), save it in the Hugging Face layout with its tokenizer, and
 * evaluate held-out problems with block masking (keepLastNBlocks 0) and with full attention.
 */
/** A finished run (the model saved and evaluated), or one stopped at a checkpoint (`signal` or `stopAfterSteps`). */
export type ToyTrainOutcome =
  | { interrupted: false; report: ToyReport; result: TrainResult; modelDir: string }
  | { interrupted: true; result: TrainResult };

export async function trainToy(opts: ToyTrainOptions): Promise<ToyTrainOutcome> {
  const log = opts.onLog ?? (() => {});
  const tok = toyTokenizer();
  const config = toyConfig({ vocab_size: Math.ceil(tok.vocabSize / 8) * 8, ...opts.config });
  const model = Qwen3Model.random(config, { seed: opts.seed });
  log(
    `model: ${countParameters(config).toLocaleString("en-US")} parameters (${config.num_hidden_layers} layers, d=${config.hidden_size}, vocab ${config.vocab_size})`,
  );
  const trainItems = generateDataset(
    opts.seed,
    opts.trainExamples,
    { ...opts.task, minBlocks: opts.trainMinBlocks ?? 1 },
    "train",
  );
  const testItems = generateHeldOut(opts.testExamples, opts.task ?? {});
  const examples = trainItems.map((it) => buildSftExample(tok, it.prompt, it.response));
  const meanLen = examples.reduce((a, e) => a + e.ids.length, 0) / Math.max(1, examples.length);
  const shortSteps = opts.shortSteps ?? 0;
  const shortIdx = [...examples.keys()].filter((i) => trainItems[i].problem.rounds <= SHORT_ROUNDS);
  const shortExamples = shortIdx.map((i) => examples[i]);
  if (shortSteps > 0 && shortExamples.length === 0)
    throw new UserError(`toy training: no training problem has at most ${SHORT_ROUNDS} rounds for the short warm-up`);
  const onceWeight = opts.onceWeight ?? 1;
  const causalFraction = opts.stage2CausalFraction ?? 0;
  if (!(onceWeight > 0))
    throw new UserError(`toy training: the once-per-problem loss weight must be positive, got ${onceWeight}`);
  if (!(causalFraction >= 0 && causalFraction < 1))
    throw new UserError(`toy training: the stage-2 causal fraction must be in [0, 1), got ${causalFraction}`);
  const weights = onceWeight === 1 ? undefined : examples.map((ex) => toyLossWeights(tok, ex, onceWeight));
  const pick = makeRng((opts.seed ^ 0x2545f491) >>> 0);
  const causal = examples.map(() => pick() < causalFraction);
  const answerSteps = opts.answerSteps ?? 0;
  const answerWeight = opts.answerWeight ?? 30;
  const answerLr = opts.answerLr ?? opts.lr / 3;
  if (!(answerWeight > 0))
    throw new UserError(`toy training: the answer-stage loss weight must be positive, got ${answerWeight}`);
  if (!(answerLr > 0))
    throw new UserError(`toy training: the answer-stage learning rate must be positive, got ${answerLr}`);
  const answerAllSteps = opts.answerAllSteps ?? 0;
  const answerAllLr = opts.answerAllLr ?? answerLr * 0.3;
  if (!(answerAllLr > 0))
    throw new UserError(`toy training: the answer-all stage's learning rate must be positive, got ${answerAllLr}`);
  checkToyResume(opts, log); // after the values are known good: a bad value is reported as such, not as a change
  // The answer stages see the short problems three times (more answers per token of compute). The first
  // up-weights the answer only where the memento mask is on: in causal examples the answer can also be read off
  // the last block, and weighting those at 30x from the start taught that route instead (third digit 100% causal
  // but 68% masked; at 10x, both ~40%). The second ("all") up-weights it in every example, once the memento
  // route exists.
  const answerIdx = [...examples.keys(), ...shortIdx, ...shortIdx];
  const answerStage = (weightCausal: boolean) =>
    toyAnswerSequences(
      tok,
      answerIdx.map((i) => examples[i]),
      answerIdx.map((i) => causal[i]),
      answerWeight,
      weightCausal,
    );
  log(
    `data: ${examples.length} training examples (mean ${meanLen.toFixed(0)} tokens; ${shortExamples.length} of at most ${SHORT_ROUNDS} rounds), ${testItems.length} held-out problems`,
  );

  const result = await train({
    model,
    stages: [
      ...(shortSteps > 0
        ? [{ name: "stage1-short", sequences: toSequences(shortExamples, 1, tok), steps: shortSteps, lr: opts.lr }]
        : []),
      { name: "stage1", sequences: toSequences(examples, 1, tok), steps: opts.stage1Steps, lr: opts.lr },
      {
        name: "stage2",
        sequences: toSequences(examples, 2, tok, { weights, causal }),
        steps: opts.stage2Steps,
        lr: opts.lr,
      },
      ...(answerSteps > 0
        ? [{ name: "stage2-answer", sequences: answerStage(false), steps: answerSteps, lr: answerLr }]
        : []),
      ...(answerAllSteps > 0
        ? [{ name: "stage2-answer-all", sequences: answerStage(true), steps: answerAllSteps, lr: answerAllLr }]
        : []),
    ],
    batchSize: opts.batchSize,
    seed: opts.seed,
    outDir: opts.outDir,
    workers: opts.workers,
    checkpointEvery: opts.checkpointEvery ?? 50,
    onLog: log,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.stopAfterSteps !== undefined ? { stopAfterSteps: opts.stopAfterSteps } : {}),
  });
  if (result.stopped) {
    // The checkpoint is then a complete model directory (serve, train rl --start, rl compare take it as it is).
    tok.save(join(opts.outDir, "checkpoint"));
    return { interrupted: true, result };
  }

  const modelDir = join(opts.outDir, "model");
  mkdirSync(modelDir, { recursive: true });
  saveModel(modelDir, model);
  tok.save(modelDir);

  log(`evaluating ${testItems.length} held-out problems with block masking and with full attention`);
  const masked = evaluateToy(
    model,
    tok,
    testItems,
    resolveMasking({ keepLastNBlocks: 0, requireAssistantSection: true }),
  );
  const full = evaluateToy(model, tok, testItems, undefined);
  const report: ToyReport = {
    seed: opts.seed,
    parameters: countParameters(config),
    config,
    train: {
      examples: examples.length,
      steps: {
        short: shortSteps,
        stage1: opts.stage1Steps,
        stage2: opts.stage2Steps,
        answer: answerSteps,
        answerAll: answerAllSteps,
      },
      onceWeight,
      stage2CausalFraction: causalFraction,
      answerWeight,
      answerLr,
      answerAllLr,
      batchSize: opts.batchSize,
      lr: opts.lr,
      seconds: result.seconds,
      tokens: result.tokens,
      finalLoss: result.finalLoss,
    },
    heldOut: {
      problems: testItems.length,
      masked,
      fullAttention: full,
      peakKvReduction: full.meanPeakKvTokens / Math.max(1, masked.meanPeakKvTokens),
      accuracyDeltaPoints: 100 * (masked.accuracy - full.accuracy),
      tokenAccuracy: toyRoleAccuracy(model, tok, testItems.slice(0, 50), 2),
    },
  };
  writeFileSync(join(opts.outDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
  writeFileSync(join(modelDir, "memento_toy_report.json"), JSON.stringify(report, null, 2) + "\n");
  return { interrupted: false, report, result, modelDir };
}
