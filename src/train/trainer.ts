import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import type { Qwen3Model } from "../model/transformer.js";
import { lineChart } from "../util/charts.js";
import { AdamW, clipGradNorm, cosineLr } from "./optim.js";
import { loadCheckpoint, restoreOptimizer, saveCheckpoint } from "./checkpoint.js";
import { dealByCost, gradSum, modelOverShared, sharedParams, type GradSum, type TrainSequence } from "./grad-job.js";
import { makeRng } from "./toy-task.js";

export interface StageSpec {
  /** "stage1" (full causal attention) or "stage2" (memento attention); used in logs and checkpoints. */
  name: string;
  /** The sequences of this stage, each with its attention pattern. */
  sequences: TrainSequence[];
  steps: number;
  lr: number;
}

export interface TrainOptions {
  model: Qwen3Model;
  stages: StageSpec[];
  /** Sequences per optimizer step. */
  batchSize: number;
  seed: number;
  /** Where checkpoints, loss.csv and loss.svg go. */
  outDir: string;
  /** Gradient worker threads (1 = in this thread). */
  workers?: number;
  checkpointEvery?: number;
  clip?: number;
  warmupFrac?: number;
  /** Stop after this many optimizer steps in this call, leaving a checkpoint (time-boxing; rerun to go on). */
  stopAfterSteps?: number;
  /** Aborted (Ctrl-C, SIGTERM): stop after the step in progress, leaving a checkpoint; rerun to go on. */
  signal?: AbortSignal;
  onLog?: (line: string) => void;
}

export interface TrainResult {
  model: Qwen3Model;
  steps: number;
  finalLoss: Record<string, number>;
  seconds: number;
  tokens: number;
  /** True when `stopAfterSteps` or `signal` ended the call before the plan was done. */
  stopped: boolean;
}

interface CheckpointState {
  stage: number;
  /** The next step to run in `stage`. */
  step: number;
  t: number;
  seed: number;
  tokens: number;
  seconds: number;
}

/**
 * Example indices for one step: an epoch-wise seeded permutation of the stage's sequences, so the batch at
 * (stage, step) depends only on the seed and resuming needs nothing but the step number.
 */
export function batchIndices(n: number, batchSize: number, seed: number, stage: number, step: number): number[] {
  const out: number[] = [];
  const perms = new Map<number, number[]>();
  for (let k = step * batchSize; k < (step + 1) * batchSize; k++) {
    const epoch = Math.floor(k / n);
    let perm = perms.get(epoch);
    if (!perm) {
      const rng = makeRng(seed * 7919 + stage * 104_729 + epoch);
      perm = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      perms.set(epoch, perm);
    }
    out.push(perm[k % n]);
  }
  return out;
}

/** Computes gradient sums, split across worker threads that read the shared weights. */
class GradPool {
  private workers: Worker[] = [];
  private local: Qwen3Model;
  private sequences: TrainSequence[] = [];

  private constructor(readonly model: Qwen3Model) {
    this.local = model;
  }

  static async create(model: Qwen3Model, workers: number): Promise<{ pool: GradPool; model: Qwen3Model }> {
    // Workers run the compiled file; from sources (tests) the pool computes in this thread.
    const script = fileURLToPath(new URL("./grad-worker.js", import.meta.url));
    if (workers <= 1 || !existsSync(script)) return { pool: new GradPool(model), model };
    const buffers = sharedParams(model);
    const shared = modelOverShared(model.config, buffers);
    const pool = new GradPool(shared);
    for (let i = 0; i < workers; i++) {
      const w = new Worker(script);
      pool.workers.push(w);
      await pool.call(w, { type: "init", config: model.config, params: [...buffers] });
    }
    return { pool, model: shared };
  }

  private call<T>(w: Worker, msg: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      w.once("error", onError);
      w.once("message", (m: T) => {
        w.off("error", onError);
        resolve(m);
      });
      w.postMessage(msg);
    });
  }

  async setSequences(sequences: TrainSequence[]): Promise<void> {
    this.sequences = sequences;
    await Promise.all(this.workers.map((w) => this.call(w, { type: "sequences", sequences })));
  }

  async run(indices: number[]): Promise<GradSum> {
    if (this.workers.length === 0) return gradSum(this.local, this.sequences, indices);
    const lengths = indices.map((i) => this.sequences[i].ids.length);
    const parts = dealByCost(lengths, this.workers.length).map((part) => part.map((k) => indices[k]));
    type Reply = { grads: [string, Float32Array][]; lossSum: number; count: number; tokens: number };
    const replies = await Promise.all(
      this.workers.map((w, k) => this.call<Reply>(w, { type: "step", indices: parts[k] })),
    );
    const total: GradSum = { grads: new Map(replies[0].grads), lossSum: 0, count: 0, tokens: 0 };
    for (const [r, reply] of replies.entries()) {
      total.lossSum += reply.lossSum;
      total.count += reply.count;
      total.tokens += reply.tokens;
      if (r === 0) continue;
      for (const [name, g] of reply.grads) {
        const acc = total.grads.get(name)!;
        for (let i = 0; i < g.length; i++) acc[i] += g[i];
      }
    }
    return total;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Writes the loss curve as SVG from loss.csv (stage, step, loss, ...). */
export function writeLossSvg(outDir: string): void {
  const csv = join(outDir, "loss.csv");
  if (!existsSync(csv)) return;
  const series = new Map<string, [number, number][]>();
  let offset = 0;
  let lastStage = "";
  let lastStep = 0;
  for (const line of readFileSync(csv, "utf8").trim().split("\n").slice(1)) {
    const [stage, step, loss] = line.split(",");
    if (stage !== lastStage) {
      offset += lastStep;
      lastStage = stage;
    }
    lastStep = Number(step) + 1;
    if (!series.has(stage)) series.set(stage, []);
    series.get(stage)!.push([offset + Number(step), Number(loss)]);
  }
  const svg = lineChart(
    [...series].map(([name, points]) => ({ name, points })),
    {
      title: "Training loss",
      x: { label: "optimizer step" },
      y: { label: "cross-entropy (nats/token)", min: 0 },
      width: 720,
      height: 360,
    },
  );
  writeFileSync(join(outDir, "loss.svg"), svg);
}

/**
 * Supervised fine-tuning, stage after stage (two-stage SFT: causal, then memento attention), each with its own
 * AdamW (0.9, 0.999, no weight decay) and cosine schedule with warmup, gradient clipping, seeded batches,
 * checkpoints every `checkpointEvery` steps and at each stage end. Rerunning with the same outDir resumes.
 */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  mkdirSync(opts.outDir, { recursive: true });
  const log = opts.onLog ?? (() => {});
  const csv = join(opts.outDir, "loss.csv");
  let startStage = 0;
  let startStep = 0;
  let moments: Map<string, Float32Array> | undefined;
  let t = 0;
  let tokens = 0;
  let secondsBefore = 0;
  const ck = loadCheckpoint<CheckpointState>(opts.outDir);
  if (ck) {
    for (const [name, p] of opts.model.params) p.set(ck.model.params.get(name)!);
    ({ stage: startStage, step: startStep, t, tokens, seconds: secondsBefore } = ck.state);
    moments = ck.moments;
    log(`resuming ${opts.stages[startStage]?.name ?? "(done)"} at step ${startStep}`);
    // Keep loss.csv consistent with the checkpoint: drop rows logged after it was written.
    if (existsSync(csv)) {
      const keep = readFileSync(csv, "utf8")
        .trim()
        .split("\n")
        .filter((l, i) => {
          if (i === 0) return true;
          const [stage, step] = l.split(",");
          const si = opts.stages.findIndex((s) => s.name === stage);
          return si < startStage || (si === startStage && Number(step) < startStep);
        });
      writeFileSync(csv, keep.join("\n") + "\n");
    }
  } else {
    writeFileSync(csv, "stage,step,loss,lr,grad_norm,tokens,tokens_per_s,elapsed_s\n");
  }

  const { pool, model } = await GradPool.create(opts.model, opts.workers ?? 1);
  const started = performance.now();
  const finalLoss: Record<string, number> = {};
  let steps = 0;
  let stopped = false;
  try {
    for (let si = startStage; si < opts.stages.length; si++) {
      const stage = opts.stages[si];
      await pool.setSequences(stage.sequences);
      const opt = new AdamW(model.params);
      if (si === startStage && startStep > 0 && moments) {
        restoreOptimizer(opt, moments, t);
      }
      let ema = NaN;
      for (let step = si === startStage ? startStep : 0; step < stage.steps; step++) {
        const t0 = performance.now();
        const indices = batchIndices(stage.sequences.length, opts.batchSize, opts.seed, si, step);
        // One event-loop turn per step: with workers 1 the gradient is computed on this thread, and a signal
        // handler (Ctrl-C sets `signal`) could otherwise not run until training ended.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const g = await pool.run(indices);
        for (const arr of g.grads.values()) for (let i = 0; i < arr.length; i++) arr[i] /= Math.max(1, g.count);
        const norm = clipGradNorm(g.grads, opts.clip ?? 1.0);
        const lr = cosineLr(step, stage.steps, stage.lr, opts.warmupFrac ?? 0.05);
        opt.step(model.params, g.grads, lr);
        const loss = g.lossSum / Math.max(1, g.count);
        ema = Number.isNaN(ema) ? loss : 0.9 * ema + 0.1 * loss;
        tokens += g.tokens;
        steps++;
        const dt = (performance.now() - t0) / 1000;
        const elapsed = secondsBefore + (performance.now() - started) / 1000;
        appendFileSync(
          csv,
          `${stage.name},${step},${loss.toFixed(5)},${lr.toExponential(3)},${norm.toFixed(4)},${g.tokens},${(g.tokens / dt).toFixed(0)},${elapsed.toFixed(1)}\n`,
        );
        if (step % 10 === 0 || step === stage.steps - 1) {
          log(
            `${stage.name} step ${step + 1}/${stage.steps} loss ${loss.toFixed(4)} (ema ${ema.toFixed(4)}) lr ${lr.toExponential(2)} |g| ${norm.toFixed(3)} ${(g.tokens / dt).toFixed(0)} tok/s`,
          );
        }
        const next = step + 1;
        const last = next === stage.steps;
        stopped =
          !last &&
          ((opts.stopAfterSteps !== undefined && steps >= opts.stopAfterSteps) || opts.signal?.aborted === true);
        if ((opts.checkpointEvery && next % opts.checkpointEvery === 0) || last || stopped) {
          const state: CheckpointState = last
            ? { stage: si + 1, step: 0, t: 0, seed: opts.seed, tokens, seconds: elapsed }
            : { stage: si, step: next, t: opt.t, seed: opts.seed, tokens, seconds: elapsed };
          saveCheckpoint(opts.outDir, model, opt, state);
          writeLossSvg(opts.outDir);
        }
        if (stopped) break;
      }
      if (stopped) break;
      finalLoss[stage.name] = ema;
    }
  } finally {
    await pool.close();
  }
  // The caller's model gets the trained weights (the pool may have trained a shared-memory copy).
  if (model !== opts.model) for (const [name, p] of opts.model.params) p.set(model.params.get(name)!);
  writeLossSvg(opts.outDir);
  return {
    model: opts.model,
    steps,
    finalLoss,
    seconds: secondsBefore + (performance.now() - started) / 1000,
    tokens,
    stopped,
  };
}
