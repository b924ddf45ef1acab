/**
 * The restart ablation (the paper's Table 3, section 6.2.1) on any model directory and problem set: accuracy,
 * peak KV and recomputed tokens with memento attention, with memento attention + restart, and with full
 * attention.
 *
 * A memento carries its block's information twice: in its text, and in its KV entries, computed while the block
 * was still visible. Restart mode removes the second channel (evict the block, recompute the memento's KV
 * without it); the paper measures Qwen3-8B on AIME24 falling from 66.1% to 50.8%.
 *
 * 1. Same problems, same seeds: every mode runs every problem; sample j of problem i draws from the seed
 *    `sampleSeed(seed, i, j)` in every mode, so two modes differ only where their logits differ.
 * 2. Protocols: greedy (one generation per problem) and sampled (`samples` per problem at the paper's
 *    temperature 0.6, top-p 0.95, top-k 20 unless told otherwise); either may be switched off (not both).
 * 3. Headline: the sampled rows (the paper's pass@1 protocol) when there are any, else the greedy ones.
 * 4. Statistics (restart-stats.ts): accuracy with its standard error over problems and a Wilson 95% interval;
 *    restart - memento and full - memento as paired deltas over the same problems.
 * 5. KV: `peakKvTokens` is the mean over generations of each one's peak resident tokens (prompt included),
 *    `maxPeakKvTokens` the largest; `recomputedTokens` counts the memento rows restart mode recomputed, in all.
 * 6. Controls (on by default): restart mode changes two things at once, the evicted range (delimiters too) and
 *    the memento's KV. `mementoMaskDelimiters` and `restartKeepDelimiters` change one each, so that
 *    restart - mementoMaskDelimiters and restartKeepDelimiters - memento measure the KV channel alone.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../errors.js";
import { fnv1a } from "../train/toy-task.js";
import { PAPER_SAMPLING } from "../eval/types.js";
import { loadModel } from "../model/index.js";
import type { Qwen3Model } from "../model/transformer.js";
import {
  ABLATION_MODES,
  CONTROL_MODES,
  generateUnderMode,
  type AblationMode,
  type AblationSampling,
  type GenerationResult,
} from "./restart-generate.js";
import { estimateAccuracy, pairedDelta, type AccuracyEstimate, type PairedDelta } from "./restart-stats.js";
import type { AblationTask } from "./restart-tasks.js";

/** The bundled toy model (`memento train toy`), whatever the working directory. */
export const DEFAULT_RESTART_MODEL_DIR = fileURLToPath(new URL("../../models/toy", import.meta.url));
/** Where the command writes restart.json and restart.html. */
export const DEFAULT_RESTART_OUT_DIR = "runs/analyze-restart";
/** Problems of a --quick run (tests). */
export const DEFAULT_RESTART_QUICK_PROBLEMS = 2;
/** Sampled generations per problem (clause 2). Our choice: one keeps the 200-problem run near the greedy one's cost. */
export const DEFAULT_RESTART_SAMPLES = 1;
/** Base sampling seed (clause 1). */
export const DEFAULT_RESTART_SEED = 1;
/** The paper's evaluation sampling (eval's PAPER_SAMPLING), used by the sampled protocol. */
export const DEFAULT_RESTART_TEMPERATURE = PAPER_SAMPLING.temperature;
export const DEFAULT_RESTART_TOP_P = PAPER_SAMPLING.top_p;
export const DEFAULT_RESTART_TOP_K = PAPER_SAMPLING.top_k;

export type AblationProtocol = "greedy" | "sampled";

export interface RestartAblationOptions {
  model: Qwen3Model;
  /** Where the model came from (for the report). */
  modelDir: string;
  task: AblationTask;
  /** Run the greedy protocol (default true). */
  greedy?: boolean;
  /** Sampled generations per problem; 0 = no sampled protocol. Default DEFAULT_RESTART_SAMPLES. */
  samples?: number;
  seed?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Also run the two controls (clause 6; default true). */
  controls?: boolean;
  /** Called after each problem of each protocol. */
  onProgress?: (line: string) => void;
}

/** One row of the table: one mode under one protocol. */
export interface ModeRow extends AccuracyEstimate {
  mode: AblationMode;
  protocol: AblationProtocol;
  /** Mean over generations of the peak resident KV, tokens (clause 5). */
  peakKvTokens: number;
  maxPeakKvTokens: number;
  /** Memento rows recomputed without their block, over all generations (restart mode only; 0 otherwise). */
  recomputedTokens: number;
  recomputedTokensPerGeneration: number;
  evictionsPerGeneration: number;
  completionTokensPerGeneration: number;
  /** Correct generations per problem, parallel to the report's `problemIds`. */
  correctPerProblem: number[];
}

export interface ProtocolResult {
  protocol: AblationProtocol;
  temperature: number;
  topP: number;
  topK: number;
  samplesPerProblem: number;
  memento: ModeRow;
  restart: ModeRow;
  full: ModeRow;
  /** restart - memento, paired over problems (negative: restart loses). */
  restartVsMemento: PairedDelta;
  /** full - memento, paired over problems. */
  fullVsMemento: PairedDelta;
  /** The controls' rows and deltas (clause 6), when run. */
  controls?: ControlResult;
  wallMs: number;
}

export interface ControlResult {
  mementoMaskDelimiters: ModeRow;
  restartKeepDelimiters: ModeRow;
  /** mementoMaskDelimiters - memento: evicting the delimiters too, KV unchanged. */
  maskDelimitersVsMemento: PairedDelta;
  /** restart - mementoMaskDelimiters: the KV channel, with restart's evicted range. */
  restartVsMaskDelimiters: PairedDelta;
  /** restartKeepDelimiters - memento: the KV channel, with memento's evicted range. */
  restartKeepDelimitersVsMemento: PairedDelta;
}

export interface RestartReport {
  model: string;
  task: string;
  problems: number;
  problemIds: string[];
  seed: number;
  /** Which protocol the top-level rows are (clause 3). */
  headline: AblationProtocol;
  memento: ModeRow;
  restart: ModeRow;
  full: ModeRow;
  restartVsMemento: PairedDelta;
  greedy?: ProtocolResult;
  sampled?: ProtocolResult;
  wallMs: number;
}

/**
 * The model of a directory: `config.json` + `model.safetensors` there, else the last `step-<n>/` checkpoint in it
 * (the layout of models/probe). A UserError when there is neither.
 */
export function loadAblationModel(dir: string): { model: Qwen3Model; dir: string } {
  const has = (d: string) => existsSync(join(d, "config.json")) && existsSync(join(d, "model.safetensors"));
  let chosen = dir;
  if (!has(dir)) {
    const steps = existsSync(dir)
      ? readdirSync(dir)
          .map((name) => ({ name, step: /^step-(\d+)$/.exec(name)?.[1] }))
          .filter((e) => e.step !== undefined && has(join(dir, e.name)))
          .sort((a, b) => Number(a.step) - Number(b.step))
      : [];
    if (steps.length === 0) throw new UserError(`--model ${dir}: no config.json and model.safetensors there`);
    chosen = join(dir, steps[steps.length - 1].name);
  }
  return { model: loadModel(chosen), dir: chosen };
}

/** The seed of sample `sample` of problem `problem` (clause 1): a hash, so nearby seeds give unrelated streams. */
export function sampleSeed(seed: number, problem: number, sample: number): number {
  return fnv1a(`restart-ablation:${seed}:${problem}:${sample}`);
}

/** Sums over the generations of one mode, then its row. */
class ModeTally {
  private readonly correct: number[];
  private peakSum = 0;
  private peakMax = 0;
  private recomputed = 0;
  private evictions = 0;
  private completionTokens = 0;
  private generations = 0;

  constructor(
    readonly mode: AblationMode,
    problems: number,
  ) {
    this.correct = new Array<number>(problems).fill(0);
  }

  /** Correct generations so far. */
  get correctSoFar(): number {
    return this.correct.reduce((a, b) => a + b, 0);
  }

  add(problem: number, r: GenerationResult): void {
    if (r.correct) this.correct[problem]++;
    this.peakSum += r.peakKvTokens;
    this.peakMax = Math.max(this.peakMax, r.peakKvTokens);
    this.recomputed += r.recomputedTokens;
    this.evictions += r.evictions;
    this.completionTokens += r.completion.length;
    this.generations++;
  }

  row(protocol: AblationProtocol, samplesPerProblem: number): ModeRow {
    const n = Math.max(1, this.generations);
    return {
      mode: this.mode,
      protocol,
      ...estimateAccuracy(this.correct, samplesPerProblem),
      peakKvTokens: this.peakSum / n,
      maxPeakKvTokens: this.peakMax,
      recomputedTokens: this.recomputed,
      recomputedTokensPerGeneration: this.recomputed / n,
      evictionsPerGeneration: this.evictions / n,
      completionTokensPerGeneration: this.completionTokens / n,
      correctPerProblem: [...this.correct],
    };
  }
}

/** Per-problem accuracies of a row. */
function perProblem(row: ModeRow, samplesPerProblem: number): number[] {
  return row.correctPerProblem.map((c) => c / samplesPerProblem);
}

function runProtocol(
  options: RestartAblationOptions,
  protocol: AblationProtocol,
  sampling: Omit<AblationSampling, "seed">,
  samplesPerProblem: number,
  seed: number,
): ProtocolResult {
  const started = Date.now();
  const { task, model } = options;
  const modes: AblationMode[] = [...ABLATION_MODES, ...(options.controls === false ? [] : CONTROL_MODES)];
  const tallies = modes.map((mode) => new ModeTally(mode, task.problems.length));
  task.problems.forEach((problem, i) => {
    for (let j = 0; j < samplesPerProblem; j++) {
      const s: AblationSampling = { ...sampling, seed: sampleSeed(seed, i, j) };
      for (const t of tallies) t.add(i, generateUnderMode(model, task, problem, t.mode, s));
    }
    const counts = tallies.map((t) => `${t.mode} ${t.correctSoFar}`).join(", ");
    options.onProgress?.(
      `${protocol} ${i + 1}/${task.problems.length} problems, correct: ${counts} (${Date.now() - started} ms)`,
    );
  });
  const [memento, restart, full, maskDelimiters, keepDelimiters] = tallies.map((t) =>
    t.row(protocol, samplesPerProblem),
  );
  const m = perProblem(memento, samplesPerProblem);
  const controls: ControlResult | undefined = maskDelimiters &&
    keepDelimiters && {
      mementoMaskDelimiters: maskDelimiters,
      restartKeepDelimiters: keepDelimiters,
      maskDelimitersVsMemento: pairedDelta(m, perProblem(maskDelimiters, samplesPerProblem)),
      restartVsMaskDelimiters: pairedDelta(
        perProblem(maskDelimiters, samplesPerProblem),
        perProblem(restart, samplesPerProblem),
      ),
      restartKeepDelimitersVsMemento: pairedDelta(m, perProblem(keepDelimiters, samplesPerProblem)),
    };
  return {
    protocol,
    ...sampling,
    samplesPerProblem,
    memento,
    restart,
    full,
    restartVsMemento: pairedDelta(m, perProblem(restart, samplesPerProblem)),
    fullVsMemento: pairedDelta(m, perProblem(full, samplesPerProblem)),
    controls,
    wallMs: Date.now() - started,
  };
}

/** Runs the ablation (clauses 1-5). Throws on misuse: no problem, or neither protocol. */
export function runRestartAblation(options: RestartAblationOptions): RestartReport {
  const started = Date.now();
  const samples = options.samples ?? DEFAULT_RESTART_SAMPLES;
  const wantGreedy = options.greedy ?? true;
  if (options.task.problems.length === 0) throw new Error("restart ablation: no problems");
  if (!wantGreedy && samples <= 0) throw new Error("restart ablation: neither greedy nor sampled generations");
  const seed = options.seed ?? DEFAULT_RESTART_SEED;
  const greedy = wantGreedy ? runProtocol(options, "greedy", { temperature: 0, topP: 1, topK: 0 }, 1, seed) : undefined;
  const sampled =
    samples > 0
      ? runProtocol(
          options,
          "sampled",
          {
            temperature: options.temperature ?? DEFAULT_RESTART_TEMPERATURE,
            topP: options.topP ?? DEFAULT_RESTART_TOP_P,
            topK: options.topK ?? DEFAULT_RESTART_TOP_K,
          },
          samples,
          seed,
        )
      : undefined;
  const head = (sampled ?? greedy) as ProtocolResult;
  return {
    model: options.modelDir,
    task: options.task.name,
    problems: options.task.problems.length,
    problemIds: options.task.problems.map((p) => p.id),
    seed,
    headline: head.protocol,
    memento: head.memento,
    restart: head.restart,
    full: head.full,
    restartVsMemento: head.restartVsMemento,
    greedy,
    sampled,
    wallMs: Date.now() - started,
  };
}
