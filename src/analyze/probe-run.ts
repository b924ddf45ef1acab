/**
 * `memento analyze probe` as a library call: make sure the probe-task model exists (train it, resumably, when its
 * directory lacks a planned checkpoint), run the probe analysis, write `probe.json` and `probe.html`.
 *
 * 1. Reuse: a model directory holding every checkpoint of the plan is used as is (the bundled models/probe);
 *    one missing some is trained into, resuming its working checkpoint; a complete one is never retrained.
 * 2. Quick mode (tests): a 2-layer d=32 model, 6 steps, 300 probe sequences, a 16-unit probe, in `outDir/model`
 *    unless a model directory is given; seconds, and its numbers mean nothing.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_PROBE_MLP, type ProbeMlpOptions } from "./probe-mlp.js";
import { renderProbePage } from "./probe-page.js";
import {
  DEFAULT_CHECKPOINT_SAMPLES,
  DEFAULT_PROBE_SAMPLES,
  DEFAULT_TASK_SAMPLES,
  runProbeAnalysis,
  type ProbeReport,
} from "./probe.js";
import {
  DEFAULT_PROBE_TRAIN,
  probeModelComplete,
  QUICK_PROBE_TRAIN,
  trainProbeModel,
  type ProbeTrainPlan,
} from "./probe-task.js";

/** The bundled probe-task model (models/probe next to src/ and dist/), whatever the working directory. */
export function bundledProbeModelDir(): string {
  return fileURLToPath(new URL("../../models/probe", import.meta.url));
}

export interface AnalyzeProbeOptions {
  /** Where probe.json and probe.html go. */
  outDir: string;
  /** The probe-task model's directory; default the bundled one (quick mode: outDir/model). */
  modelDir?: string;
  quick?: boolean;
  samples?: number;
  checkpointSamples?: number;
  taskSamples?: number;
  /** Gradient worker threads if the model must be trained. */
  workers?: number;
  log?: (line: string) => void;
}

/** The settings of quick mode (clause 2). */
export const QUICK_PROBE_SETTINGS = Object.freeze({
  samples: 300,
  checkpointSamples: 150,
  taskSamples: 4,
  mlp: { hidden: [16], epochs: 3 } satisfies Partial<ProbeMlpOptions>,
});

export interface AnalyzeProbeResult {
  report: ProbeReport;
  jsonPath: string;
  htmlPath: string;
  /** Whether this call trained (part of) the model. */
  trained: boolean;
}

export async function analyzeProbe(opts: AnalyzeProbeOptions): Promise<AnalyzeProbeResult> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick === true;
  const plan: ProbeTrainPlan = { ...(quick ? QUICK_PROBE_TRAIN : DEFAULT_PROBE_TRAIN) };
  if (opts.workers !== undefined) plan.workers = opts.workers;
  const modelDir = opts.modelDir ?? (quick ? join(opts.outDir, "model") : bundledProbeModelDir());
  const trained = !probeModelComplete(modelDir, plan);
  if (trained) {
    log(`training the probe-task model into ${modelDir} (resumable)`);
    await trainProbeModel(modelDir, plan, log);
  } else {
    log(`reusing the probe-task model in ${modelDir}`);
  }
  const report = runProbeAnalysis({
    modelDir,
    samples: opts.samples ?? (quick ? QUICK_PROBE_SETTINGS.samples : DEFAULT_PROBE_SAMPLES),
    checkpointSamples:
      opts.checkpointSamples ?? (quick ? QUICK_PROBE_SETTINGS.checkpointSamples : DEFAULT_CHECKPOINT_SAMPLES),
    taskSamples: opts.taskSamples ?? (quick ? QUICK_PROBE_SETTINGS.taskSamples : DEFAULT_TASK_SAMPLES),
    mlp: quick ? { ...DEFAULT_PROBE_MLP, ...QUICK_PROBE_SETTINGS.mlp } : { ...DEFAULT_PROBE_MLP },
    log,
  });
  mkdirSync(opts.outDir, { recursive: true });
  const jsonPath = join(opts.outDir, "probe.json");
  const htmlPath = join(opts.outDir, "probe.html");
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(htmlPath, renderProbePage(report));
  return { report, jsonPath, htmlPath, trained };
}
