/**
 * `memento bench engine` on llama.cpp: what block eviction buys a KV-bound server, measured on a real inference
 * stack. The engine serves through LlamaPoolBackend (our addon: ONE unified KV pool shared by every sequence,
 * one llama_decode per batched step) a model of realistic shape (bench-model.ts: Qwen3, ~100M parameters, the
 * 151,936-token vocabulary, F16), generated and cached on first use.
 *
 * Method:
 *   - workload (engine-workload.ts): Memento traces (reference outputs, else synthetic ones of the same shape)
 *     shortened by a factor that keeps their block/memento structure, cycled into a stream of 3x more requests
 *     than the pool holds at once with masking on, all submitted at t = 0 and teacher-forced (replayTokens),
 *     so both modes compute exactly the same tokens;
 *   - modes: masking on (keepLastNBlocks 0) and off (-1) on the SAME backend, i.e. the same pool of KV cells
 *     and the same engine budget; runs interleaved (memento, vanilla, vanilla, memento, ...) over the rounds,
 *     so slow drifts of a shared machine hit both; each round gives one ratio, the median and min are reported;
 *   - physical limit: idealRatio, the ratio of mean resident KV (vanilla over Memento, simulateKv on the same
 *     token streams): what throughput would gain if it were proportional to requests in flight per cell;
 *   - engine overhead: one request alone through the engine vs the same tokens through the same backend called
 *     directly (one prefill, then one decode call per token: the addon's ctx.decode with its logits copied out,
 *     no engine around it; same model, context and threads), measured in the same run: overheadRatio = engine
 *     seconds per token / plain seconds per token. (src/bench may not load the addon itself: only the engine's
 *     backends do, test/layers.test.ts; the backend's wrapper is within noise of ctx.decode alone: 27.5 vs
 *     27.4 ms per 6-row step, measured once on this model.)
 *
 * What it measures: tokens per second of the whole engine (scheduling, admission, preemption and recompute,
 * tracker, evictions, logits copy) on CPU threads (default: the backends' own, every core but the event
 * loop's; on this project's 2-core machine 1 thread decodes as fast as 2, and 2 made single-token decoding
 * noisier and slower, 12-16 vs 8-9 ms per token). CPU batching saturates sooner than a GPU's, so the ratio
 * is a lower bound for what the same engine gains where a decode step costs about the same for 1 or 64
 * sequences; stepsRatio (batched steps, vanilla / memento) is reported for that reason.
 *
 * Duration of the defaults (24 requests, traces x0.15, 3 rounds) on a quiet 2-core machine: about 9 minutes
 * (memento ~200 tokens/s, vanilla ~120-135 tokens/s, 12.9K completion tokens per mode and round); `--full`
 * replays the traces whole: at least 7x longer (longer contexts, a larger pool).
 */
import { createEngine } from "../engine/engine.js";
import { LlamaPoolBackend, defaultLlamaCppThreads } from "../engine/backends/llama-pool.js";
import { DEFAULT_LLAMACPP_GPU } from "../engine/backends/llamacpp.js";
import {
  DEFAULT_MAX_STEP_TOKENS,
  type Backend,
  type CompletionResult,
  type EngineTokenizer,
  type StepInput,
} from "../engine/types.js";
import type { MaskingConfig } from "../masking/config.js";
import { countParameters, parseQwen3Config, type Qwen3Config } from "../model/config.js";
import { UserError } from "../errors.js";
import { median } from "../util/stats.js";
import { BENCH_MODEL_CONFIG, ensureBenchModel, type BenchModelFile } from "./bench-model.js";
import {
  MEMENTO_MASKING,
  VANILLA_MASKING,
  buildWorkload,
  minimumPoolCells,
  poolCells,
  specialTokenNames,
  type Workload,
  type WorkloadTrace,
} from "./engine-workload.js";

/** Defaults of the llama.cpp bench (sized to finish in about 9 minutes on a quiet 2-core machine). */
export const LLAMACPP_BENCH_DEFAULTS = Object.freeze({
  /** Requests the pool holds at once with masking on (sets the pool size). */
  concurrency: 8,
  /** Requests in the stream per unit of concurrency. */
  requestsPerSlot: 3,
  /** Trace length factor. */
  scale: 0.15,
  rounds: 3,
  /** Engine and plain runs of the overhead measurement (best of each). */
  overheadRepeats: 5,
  /** Most rows per llama_decode (prefill chunks). */
  batchSize: 512,
  seed: 1,
});

export interface LlamaCppEngineBenchOptions {
  /** Requests in the stream (default 3 x concurrency). */
  requests?: number;
  /** Requests the pool should hold at once with masking on (default 8): sets kvCells. */
  concurrency?: number;
  /** KV cells of the shared pool (default from concurrency; llama.cpp rounds up to a multiple of 256). */
  kvCells?: number;
  /** Trace length factor in (0, 1] (default 0.15; 1 replays the traces whole). */
  scale?: number;
  rounds?: number;
  referenceDir?: string;
  synthetic?: boolean;
  /** Over BENCH_MODEL_CONFIG (tests use a tiny model). */
  model?: Partial<Qwen3Config>;
  /** llama.cpp threads, for the engine and the plain baseline alike (default: the backends', cores - 1). */
  threads?: number;
  /** Where the generated model is cached (default os.tmpdir()). */
  cacheDir?: string;
  overheadRepeats?: number;
  /** Cells an admission must leave free beyond its need (the engine's admissionReserveTokens; default 16). */
  admissionReserve?: number;
  /** Tokens per engine step (the engine's maxStepTokens; default DEFAULT_MAX_STEP_TOKENS). */
  maxStepTokens?: number;
  /** "auto" (default): node-llama-cpp's GPU build when the machine has a GPU; false: the CPU. */
  gpu?: false | "auto";
  seed?: number;
  onProgress?: (line: string) => void;
}

type Label = "memento" | "vanilla";

export interface LlamaCppBenchSide {
  label: Label;
  seconds: number;
  completionTokens: number;
  tokensPerSec: number;
  /** Mean over requests of submit -> done, in seconds. */
  meanCompletionSeconds: number;
  /** Engine steps (one batched decode each). */
  steps: number;
  /** Tokens decoded per step. */
  meanConcurrency: number;
  peakRunning: number;
  peakKvCells: number;
  preemptions: number;
  recomputedTokens: number;
  evictions: number;
}

export interface LlamaCppBenchRound {
  round: number;
  order: Label[];
  memento: LlamaCppBenchSide;
  vanilla: LlamaCppBenchSide;
  /** memento tokens/s over vanilla tokens/s. */
  throughputRatio: number;
}

export interface EngineOverhead {
  /** What the engine is compared with. */
  baseline: string;
  masking: "vanilla";
  trace: string;
  promptTokens: number;
  completionTokens: number;
  /** Best of the repeats, seconds per completion token (prefill included on both sides). */
  engineSecondsPerToken: number;
  plainSecondsPerToken: number;
}

export interface BatchCost {
  /** Milliseconds per engine step in the run, median over rounds. */
  stepMs: { memento: number; vanilla: number };
  /** stepMs.memento / stepMs.vanilla. */
  stepCostRatio: number;
  contextTokens: number;
  sweep: { batch: number; ms: number }[];
}

export interface LlamaCppEngineBenchResult {
  backend: string;
  kvUnified: boolean;
  /** Where the weights ran: "CPU", or the GPU gpu "auto" found. */
  device: string;
  /** gpu "auto" found no GPU: why (each GPU backend tried). */
  noGpuReason?: string;
  threads: number;
  /** The engine's per-step token budget (decode rows, then prefill chunks). */
  maxStepTokens: number;
  model: {
    path: string;
    reused: boolean;
    bytes: number;
    hiddenSize: number;
    layers: number;
    heads: number;
    kvHeads: number;
    headDim: number;
    vocab: number;
    dtype: "F16";
  };
  modelParameters: number;
  /** Cells of the shared pool, the same for both modes (= the engine's KV budget). */
  kvCells: number;
  /** Sequence ids of the context (the most requests running at once, beyond the KV limit). */
  sequences: number;
  workload: {
    source: Workload["source"];
    scale: number;
    requests: number;
    traces: {
      name: string;
      promptTokens: number;
      completionTokens: number;
      peakMemento: number;
      peakVanilla: number;
      meanResidentMemento: number;
      meanResidentVanilla: number;
    }[];
    completionTokens: number;
  };
  rounds: number;
  /** Median over rounds of memento tokens/s / vanilla tokens/s. */
  throughputRatio: number;
  throughputRatioMin: number;
  throughputRatioMax: number;
  /** Median over rounds of the mean request completion time, vanilla / memento. */
  completionTimeRatio: number;
  /** Median over rounds of engine steps, vanilla / memento. */
  stepsRatio: number;
  tokensPerSec: { memento: number; vanilla: number };
  meanConcurrency: { memento: number; vanilla: number };
  preemptions: { memento: number; vanilla: number };
  /** Mean resident KV, vanilla / memento, over the same requests (simulateKv): the physical limit. */
  idealRatio: number;
  /** Engine seconds per token at one request / plain llama.cpp decoding of the same tokens. */
  overheadRatio: number;
  overhead: EngineOverhead;
  /**
   * Why the throughput ratio is what it is on this machine. The run's own cost of an engine step per mode
   * (seconds / steps, median over rounds; a Memento step decodes more sequences at once), and the bound it sets:
   * stepsRatio / stepCostRatio is the throughput ratio (up to rounding); on hardware where a step costs about the
   * same for 1 or 64 sequences (a GPU) stepCostRatio is ~1 and the throughput ratio approaches stepsRatio. The
   * sweep shows one decode step of the backend alone by batch size (every sequence holding contextTokens cells).
   */
  batchCost: BatchCost;
  perRound: LlamaCppBenchRound[];
  seconds: number;
}

// ---------------------------------------------------------------------------------------------------------
// Pieces
// ---------------------------------------------------------------------------------------------------------

/** The engine's tokenizer: the workload's special ids; text is never needed (teacher-forced replay). */
function replayTokenizer(w: Workload): EngineTokenizer {
  return { specialTokens: w.specialTokens, decode: () => "" };
}

/** The backend without its close(), so every engine of the run shares one context (one pool, warm). */
function borrowed(b: Backend): Backend {
  return {
    name: b.name,
    capabilities: b.capabilities,
    vocabSize: b.vocabSize,
    maxSequences: b.maxSequences,
    kvCapacityTokens: b.kvCapacityTokens,
    maxStepTokens: b.maxStepTokens,
    device: b.device,
    ...(b.step
      ? { step: (inputs: readonly StepInput[]) => (b.step as NonNullable<Backend["step"]>).call(b, inputs) }
      : {}),
    allocate: () => b.allocate(),
    prefill: (s, t, p) => b.prefill(s, t, p),
    decode: (batch) => b.decode(batch),
    evict: (s, start, end) => b.evict(s, start, end),
    recompute: (s, t, p) => b.recompute(s, t, p),
    free: (s) => b.free(s),
    residentTokens: (s) => b.residentTokens(s),
  };
}

/** Engine settings the benchmark passes through (each undefined: the engine's default). */
type EngineKnobs = Pick<LlamaCppEngineBenchOptions, "admissionReserve" | "maxStepTokens">;

/** Replays `traces` as concurrent requests through a fresh engine on `backend`; every request must finish. */
async function runRequests(
  backend: LlamaPoolBackend,
  w: Workload,
  traces: readonly WorkloadTrace[],
  masking: Partial<MaskingConfig>,
  label: string,
  knobs: EngineKnobs = {},
): Promise<{ seconds: number; results: CompletionResult[]; engine: ReturnType<typeof createEngine> }> {
  const engine = createEngine({
    backend: borrowed(backend),
    tokenizer: replayTokenizer(w),
    kvBudgetTokens: backend.kvCapacityTokens,
    maxRunning: backend.maxSequences,
    admissionReserveTokens: knobs.admissionReserve,
    maxStepTokens: knobs.maxStepTokens,
  });
  const t0 = performance.now();
  const results = await Promise.all(
    traces.map((t, i) =>
      engine
        .submit({
          id: `${label}-${i}`,
          promptTokens: t.promptTokens,
          replayTokens: t.completionTokens,
          replayLogits: true, // every row pays the lm_head and the logit copy, as when generating
          sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: Math.max(1, t.completionTokens.length) },
          masking,
        })
        .result(),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  await engine.close();
  for (const r of results)
    if (r.finishReason !== "stop") throw new Error(`${r.id} ended with ${r.finishReason}: ${r.message ?? ""}`);
  if (backend.usedCells !== 0) throw new Error(`${backend.usedCells} cells still held after the ${label} run`);
  return { seconds, results, engine };
}

async function runSide(
  backend: LlamaPoolBackend,
  w: Workload,
  label: Label,
  knobs: EngineKnobs,
): Promise<LlamaCppBenchSide> {
  const masking = label === "memento" ? MEMENTO_MASKING : VANILLA_MASKING;
  const { seconds, results, engine } = await runRequests(backend, w, w.requests, masking, label, knobs);
  const s = engine.stats();
  const completionTokens = results.reduce((a, r) => a + r.stats.completionTokens, 0);
  return {
    label,
    seconds,
    completionTokens,
    tokensPerSec: completionTokens / seconds,
    meanCompletionSeconds: results.reduce((a, r) => a + r.stats.totalMs, 0) / results.length / 1000,
    steps: s.steps,
    meanConcurrency: s.decodedTokens / Math.max(1, s.steps),
    peakRunning: s.peakRunning,
    peakKvCells: s.peakKvUsedTokens,
    preemptions: s.preemptions,
    recomputedTokens: results.reduce((a, r) => a + r.stats.recomputedTokens, 0),
    evictions: s.evictions,
  };
}

/**
 * One request's tokens straight through the backend, no engine: the prompt in one prefill (the backend sends
 * batchSize chunks), then one decode call per token, each copying its logit row out, as the engine's would.
 */
async function plainDecode(backend: LlamaPoolBackend, t: WorkloadTrace): Promise<number> {
  const seq = await backend.allocate();
  const p = t.promptTokens;
  const t0 = performance.now();
  try {
    await backend.prefill(
      seq,
      p,
      p.map((_, i) => i),
    );
    const row = [{ seq, token: 0, position: 0 }];
    for (let j = 0; j < t.completionTokens.length; j++) {
      row[0].token = t.completionTokens[j];
      row[0].position = p.length + j;
      await backend.decode(row);
    }
    return (performance.now() - t0) / 1000;
  } finally {
    await backend.free(seq);
  }
}

/**
 * Engine vs plain on one request alone, the workload's shortest trace, on the same backend (vanilla: no
 * evictions, so both compute the same attention). After an untimed warm-up (the first decodes of a fresh
 * context page the weights in), runs alternate which goes first; the best of each is kept.
 */
async function measureOverhead(backend: LlamaPoolBackend, w: Workload, repeats: number): Promise<EngineOverhead> {
  const t = w.traces.reduce((a, b) => (b.completionTokens.length < a.completionTokens.length ? b : a)); // shortest
  await plainDecode(backend, { ...t, completionTokens: t.completionTokens.slice(0, 32) }); // warm-up, untimed
  let engine = Infinity;
  let direct = Infinity;
  const engineRun = async () => (await runRequests(backend, w, [t], VANILLA_MASKING, "overhead")).seconds;
  for (let r = 0; r < repeats; r++) {
    // Alternating which goes first, so a drift in the machine's speed favours neither.
    if (r % 2 === 0) {
      direct = Math.min(direct, await plainDecode(backend, t));
      engine = Math.min(engine, await engineRun());
    } else {
      engine = Math.min(engine, await engineRun());
      direct = Math.min(direct, await plainDecode(backend, t));
    }
  }
  const n = t.completionTokens.length;
  return {
    baseline: "the backend called directly, one decode call per token, no engine (LlamaPoolBackend -> ctx.decode)",
    masking: "vanilla",
    trace: t.name,
    promptTokens: t.promptTokens.length,
    completionTokens: n,
    engineSecondsPerToken: engine / n,
    plainSecondsPerToken: direct / n,
  };
}

/**
 * Milliseconds of one decode step of `batch` sequences, each holding `contextTokens` cells: the backend called
 * directly, the median of `steps` timed steps after one untimed step.
 */
async function decodeStepMs(
  backend: LlamaPoolBackend,
  batch: number,
  contextTokens: number,
  steps = 5,
): Promise<number> {
  const seqs: number[] = [];
  try {
    const token = (i: number) => 1 + (i % (backend.vocabSize - 1)); // any in-vocabulary ids: the cost is the same
    const prompt = Array.from({ length: contextTokens }, (_, i) => token(i));
    for (let b = 0; b < batch; b++) {
      const seq = await backend.allocate();
      seqs.push(seq);
      await backend.prefill(
        seq,
        prompt,
        prompt.map((_, i) => i),
      );
    }
    const times: number[] = [];
    for (let k = 0; k <= steps; k++) {
      const rows = seqs.map((seq) => ({ seq, token: token(k), position: contextTokens + k }));
      const t0 = performance.now();
      await backend.decode(rows);
      if (k > 0) times.push(performance.now() - t0);
    }
    return median(times);
  } finally {
    for (const seq of seqs) await backend.free(seq);
  }
}

/** The run's cost per engine step by mode, and a sweep of decode step cost by batch size (1, 2, 4, ...). */
async function measureBatchCost(backend: LlamaPoolBackend, rounds: LlamaCppBenchRound[]): Promise<BatchCost> {
  const per = (label: Label, f: (x: LlamaCppBenchSide) => number) => median(rounds.map((r) => f(r[label])));
  const stepMsOf = (label: Label) => per(label, (x) => (1000 * x.seconds) / x.steps);
  const stepMs = { memento: stepMsOf("memento"), vanilla: stepMsOf("vanilla") };
  const most = Math.max(
    per("memento", (x) => x.meanConcurrency),
    per("vanilla", (x) => x.meanConcurrency),
  );
  // Batches up to twice the larger concurrency, each sequence with the context that lets the largest fit.
  const largest = 2 ** Math.ceil(Math.log2(Math.max(2, most * 2)));
  const contextTokens = Math.max(16, Math.min(256, Math.floor(backend.kvCapacityTokens / largest) - 8));
  const sweep: { batch: number; ms: number }[] = [];
  const fits = (b: number) => b <= backend.maxSequences && b * (contextTokens + 8) <= backend.kvCapacityTokens;
  for (let b = 1; b <= largest && fits(b); b *= 2)
    sweep.push({ batch: b, ms: await decodeStepMs(backend, b, contextTokens) });
  return { stepMs, stepCostRatio: stepMs.memento / stepMs.vanilla, contextTokens, sweep };
}

// ---------------------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------------------

function positive(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1) throw new UserError(`${name}: expected a positive integer, got ${x}`);
  return x;
}

async function runRounds(
  backend: LlamaPoolBackend,
  w: Workload,
  rounds: number,
  progress: (line: string) => void,
  knobs: EngineKnobs,
): Promise<LlamaCppBenchRound[]> {
  const out: LlamaCppBenchRound[] = [];
  for (let r = 0; r < rounds; r++) {
    const order: Label[] = r % 2 === 0 ? ["memento", "vanilla"] : ["vanilla", "memento"];
    const sides: Partial<Record<Label, LlamaCppBenchSide>> = {};
    for (const label of order) {
      const s = await runSide(backend, w, label, knobs);
      sides[label] = s;
      progress(
        `round ${r + 1}/${rounds} ${label.padEnd(7)}: ${s.tokensPerSec.toFixed(1)} tok/s, ${s.seconds.toFixed(1)} s, ` +
          `concurrency ${s.meanConcurrency.toFixed(2)}, ${s.preemptions} preemptions`,
      );
    }
    const memento = sides.memento as LlamaCppBenchSide;
    const vanilla = sides.vanilla as LlamaCppBenchSide;
    out.push({ round: r + 1, order, memento, vanilla, throughputRatio: memento.tokensPerSec / vanilla.tokensPerSec });
  }
  return out;
}

function traceSummary(t: WorkloadTrace): LlamaCppEngineBenchResult["workload"]["traces"][number] {
  const n = Math.max(1, t.completionTokens.length);
  return {
    name: t.name,
    promptTokens: t.promptTokens.length,
    completionTokens: t.completionTokens.length,
    peakMemento: t.memento.peak,
    peakVanilla: t.vanilla.peak,
    meanResidentMemento: t.memento.auc / n,
    meanResidentVanilla: t.vanilla.auc / n,
  };
}

function summarize(
  base: Omit<
    LlamaCppEngineBenchResult,
    | "throughputRatio"
    | "throughputRatioMin"
    | "throughputRatioMax"
    | "completionTimeRatio"
    | "stepsRatio"
    | "tokensPerSec"
    | "meanConcurrency"
    | "preemptions"
  >,
): LlamaCppEngineBenchResult {
  const rs = base.perRound;
  const med = (f: (r: LlamaCppBenchRound) => number) => median(rs.map(f));
  const ratios = rs.map((r) => r.throughputRatio);
  return {
    ...base,
    throughputRatio: median(ratios),
    throughputRatioMin: Math.min(...ratios),
    throughputRatioMax: Math.max(...ratios),
    completionTimeRatio: med((r) => r.vanilla.meanCompletionSeconds / r.memento.meanCompletionSeconds),
    stepsRatio: med((r) => r.vanilla.steps / r.memento.steps),
    tokensPerSec: { memento: med((r) => r.memento.tokensPerSec), vanilla: med((r) => r.vanilla.tokensPerSec) },
    meanConcurrency: { memento: med((r) => r.memento.meanConcurrency), vanilla: med((r) => r.vanilla.meanConcurrency) },
    preemptions: { memento: med((r) => r.memento.preemptions), vanilla: med((r) => r.vanilla.preemptions) },
  };
}

interface Prepared {
  config: Qwen3Config;
  w: Workload;
  file: BenchModelFile;
  cells: number;
  rounds: number;
  threads: number;
}

/** Checks the options, builds the workload, sizes the pool and makes (or finds) the model. */
function prepare(opts: LlamaCppEngineBenchOptions, progress: (line: string) => void): Prepared {
  const D = LLAMACPP_BENCH_DEFAULTS;
  const concurrency = positive("concurrency", opts.concurrency, D.concurrency);
  const rounds = positive("rounds", opts.rounds, D.rounds);
  const threads = positive("threads", opts.threads, defaultLlamaCppThreads());
  const config = parseQwen3Config({ ...BENCH_MODEL_CONFIG, ...opts.model });
  const w = buildWorkload({
    referenceDir: opts.referenceDir,
    synthetic: opts.synthetic,
    scale: opts.scale ?? D.scale,
    requests: positive("requests", opts.requests, D.requestsPerSlot * concurrency),
    vocabSize: config.vocab_size,
    seed: opts.seed ?? D.seed,
  });
  const cells = opts.kvCells ?? poolCells(w, concurrency);
  const least = minimumPoolCells(w);
  if (cells < least)
    throw new UserError(`--kv-budget: ${cells} cells cannot hold the largest request alone; give at least ${least}`);
  return { config, w, file: ensureModel(config, w, opts, progress), cells, rounds, threads };
}

export async function benchEngineLlamaCpp(opts: LlamaCppEngineBenchOptions = {}): Promise<LlamaCppEngineBenchResult> {
  const t0 = performance.now();
  const progress = opts.onProgress ?? (() => {});
  const { config, w, file, cells, rounds, threads } = prepare(opts, progress);
  const backend = await LlamaPoolBackend.create({
    modelPath: file.path,
    cells,
    sequences: Math.min(w.requests.length, 256),
    batchSize: LLAMACPP_BENCH_DEFAULTS.batchSize,
    threads,
    gpu: opts.gpu ?? DEFAULT_LLAMACPP_GPU,
  });
  try {
    progress(
      `pool: ${backend.kvCapacityTokens} KV cells shared by up to ${backend.maxSequences} sequences ` +
        `(${backend.name}) on ${backend.device}, ${threads} threads; ${w.requests.length} requests ` +
        `(${w.source} traces x ${w.scale})`,
    );
    const repeats = positive("overheadRepeats", opts.overheadRepeats, LLAMACPP_BENCH_DEFAULTS.overheadRepeats);
    const overhead = await measureOverhead(backend, w, repeats);
    progress(
      `overhead: engine ${(overhead.engineSecondsPerToken * 1e3).toFixed(2)} ms/token vs plain ` +
        `${(overhead.plainSecondsPerToken * 1e3).toFixed(2)} ms/token at one request`,
    );
    const maxStepTokens = positive("maxStepTokens", opts.maxStepTokens, DEFAULT_MAX_STEP_TOKENS);
    const perRound = await runRounds(backend, w, rounds, progress, {
      admissionReserve: opts.admissionReserve,
      maxStepTokens,
    });
    const batchCost = await measureBatchCost(backend, perRound);
    progress(
      `decode step cost by batch (${batchCost.contextTokens} cells each): ` +
        batchCost.sweep.map((x) => `${x.batch}: ${x.ms.toFixed(1)} ms`).join(", "),
    );
    return summarize({
      batchCost,
      backend: backend.name,
      kvUnified: backend.capabilities.unifiedKvPool,
      device: backend.device,
      ...(backend.deviceChoice.noGpuReason ? { noGpuReason: backend.deviceChoice.noGpuReason } : {}),
      threads,
      maxStepTokens: Math.min(maxStepTokens, backend.maxStepTokens),
      model: modelSummary(config, file),
      modelParameters: countParameters(config),
      kvCells: backend.kvCapacityTokens,
      sequences: backend.maxSequences,
      workload: workloadSummary(w),
      rounds,
      idealRatio: w.idealRatio,
      overheadRatio: overhead.engineSecondsPerToken / overhead.plainSecondsPerToken,
      overhead,
      perRound,
      seconds: (performance.now() - t0) / 1000,
    });
  } finally {
    await backend.close();
  }
}

function workloadSummary(w: Workload): LlamaCppEngineBenchResult["workload"] {
  return {
    source: w.source,
    scale: w.scale,
    requests: w.requests.length,
    traces: w.traces.map(traceSummary),
    completionTokens: w.requests.reduce((a, t) => a + t.completionTokens.length, 0),
  };
}

function ensureModel(
  config: Qwen3Config,
  w: Workload,
  opts: LlamaCppEngineBenchOptions,
  progress: (line: string) => void,
): BenchModelFile {
  const spec = {
    config,
    seed: opts.seed ?? LLAMACPP_BENCH_DEFAULTS.seed,
    specialTokens: specialTokenNames(w.specialTokens),
  };
  const file = ensureBenchModel(spec, opts.cacheDir);
  const what = file.reused ? "cached" : `generated in ${file.seconds.toFixed(1)} s`;
  progress(`model: ${file.path} (${(file.parameters / 1e6).toFixed(1)}M parameters, F16, ${what})`);
  return file;
}

function modelSummary(c: Qwen3Config, file: BenchModelFile): LlamaCppEngineBenchResult["model"] {
  return {
    path: file.path,
    reused: file.reused,
    bytes: file.bytes,
    hiddenSize: c.hidden_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads,
    headDim: c.head_dim,
    vocab: c.vocab_size,
    dtype: "F16",
  };
}

// ---------------------------------------------------------------------------------------------------------
// Human-readable output
// ---------------------------------------------------------------------------------------------------------

function sideLine(label: Label, r: LlamaCppEngineBenchResult): string {
  const rows = r.perRound.map((x) => x[label]);
  const med = (f: (s: LlamaCppBenchSide) => number) => median(rows.map(f));
  const max = (f: (s: LlamaCppBenchSide) => number) => Math.max(...rows.map(f));
  return [
    `${label.padEnd(8)} ${r.tokensPerSec[label].toFixed(1).padStart(8)} tok/s`,
    `${med((s) => s.seconds)
      .toFixed(1)
      .padStart(7)} s`,
    `concurrency ${r.meanConcurrency[label].toFixed(2).padStart(5)} (max ${max((s) => s.peakRunning)})`,
    `steps ${med((s) => s.steps)
      .toFixed(0)
      .padStart(6)}`,
    `preemptions ${r.preemptions[label]} (recomputed ${med((s) => s.recomputedTokens).toFixed(0)} tokens)`,
    `peak KV ${max((s) => s.peakKvCells)}`,
  ].join("  ");
}

export function formatEngineBenchLlamaCpp(r: LlamaCppEngineBenchResult): string {
  const m = r.model;
  const o = r.overhead;
  const w = r.workload;
  const traces = w.traces.map((t) => `${t.name} ${t.promptTokens}+${t.completionTokens}`).join(", ");
  const ms = (s: number) => `${(s * 1e3).toFixed(2)} ms/token`;
  return [
    `engine bench on ${r.backend}, kv_unified ${r.kvUnified}, device ${r.device}, threads: ${r.threads}, ` +
      `${r.maxStepTokens} tokens per step at most`,
    `model: random Qwen3, ${(r.modelParameters / 1e6).toFixed(1)}M parameters (hidden ${m.hiddenSize}, ` +
      `${m.layers} layers, ${m.heads}/${m.kvHeads} heads of ${m.headDim}, vocab ${m.vocab}, ${m.dtype})`,
    `workload: ${w.requests} requests at once, ${w.source} traces scaled x${w.scale} (${traces}), ` +
      `${w.completionTokens} completion tokens per mode; ${r.kvCells} KV cells for both modes`,
    sideLine("memento", r),
    sideLine("vanilla", r),
    `throughput ratio (memento / vanilla): ${r.throughputRatio.toFixed(2)}x, median of ${r.rounds} rounds ` +
      `(min ${r.throughputRatioMin.toFixed(2)}x, max ${r.throughputRatioMax.toFixed(2)}x)`,
    `physical limit (mean resident KV, vanilla / memento, same requests): ${r.idealRatio.toFixed(2)}x`,
    `completion time ratio ${r.completionTimeRatio.toFixed(2)}x; engine steps ratio ${r.stepsRatio.toFixed(2)}x`,
    `cost per engine step: ${r.batchCost.stepMs.memento.toFixed(1)} ms with masking vs ` +
      `${r.batchCost.stepMs.vanilla.toFixed(1)} ms without (${r.batchCost.stepCostRatio.toFixed(2)}x; a step decodes ` +
      `every running sequence and prefills what preemptions made it recompute): steps ratio / step cost ratio = ` +
      `${(r.stepsRatio / r.batchCost.stepCostRatio).toFixed(2)}x`,
    `decode step alone by batch (${r.batchCost.contextTokens} cells each): ` +
      r.batchCost.sweep.map((x) => `${x.batch} -> ${x.ms.toFixed(1)} ms`).join(", "),
    `engine overhead at one request: ${ms(o.engineSecondsPerToken)} vs ${ms(o.plainSecondsPerToken)} plain ` +
      `(${o.baseline}): ${r.overheadRatio.toFixed(2)}x`,
    `(${r.seconds.toFixed(0)} s in all)`,
    "",
  ].join("\n");
}
