/**
 * The workload of `memento bench engine` on llama.cpp: Memento traces as token ids, shortened by a factor so a
 * run fits a small machine, cycled into a stream of requests, and the KV pool they share.
 *
 * Traces: the reference outputs (`memento_output_*.json`, tokenized with the Qwen3 tokenizer) when present,
 * else synthetic Memento streams with the same shapes (prompt, block and memento lengths, total length).
 *
 * Scaling keeps the structure: every marker and chat token stays, and every run of ordinary tokens between
 * two of them keeps its first max(1, round(length x factor)) tokens. Blocks, mementos and prompts shrink by
 * the same factor, so the number of blocks and the ratio of block to memento lengths stay those of the full
 * traces; factor 1 replays them whole. The markers do not shrink, and the two that stay resident per evicted
 * block weigh more next to a short memento, so the ideal ratio drops a little with the factor (reference
 * traces: 2.58x whole, 2.48x at 0.3, 2.42x at 0.2, 2.38x at 0.15). It is always computed on the streams the
 * requests really replay.
 *
 * Ideal ratio: simulateKv on the very token streams the requests replay gives each request's KV AUC (the sum
 * over its completion tokens of the cells resident after each); vanilla AUC over Memento AUC, summed over the
 * requests, is the ratio of mean resident KV: the most a KV-bound server can gain from the evictions.
 */
import { existsSync } from "node:fs";
import { loadTokenizer, type SpecialTokenIds } from "../format/tokenizer.js";
import {
  BLOCK_END,
  BLOCK_START,
  IM_END,
  IM_START,
  SUMMARY_END,
  SUMMARY_START,
  THINK_END,
  THINK_START,
} from "../format/tokens.js";
import { simulateKv } from "../kv/simulate.js";
import { resolveMasking, trackerIdsOf, type MaskingConfig, type TrackerTokenIds } from "../masking/config.js";
import { UserError } from "../errors.js";
import { QWEN3_SPECIAL_IDS, VocabRemap, loadReferenceReplays, type ReplayTrace } from "./replay.js";
import { QWEN3_MEMENTO_IDS, syntheticMementoStream } from "./synthetic.js";

export const MEMENTO_MASKING: Partial<MaskingConfig> = Object.freeze({ keepLastNBlocks: 0 });
export const VANILLA_MASKING: Partial<MaskingConfig> = Object.freeze({ keepLastNBlocks: -1 });

/** Shapes of the three reference outputs (Qwen3 tokens): prompt, completion, mean block and memento lengths. */
export const REFERENCE_SHAPES = [
  { name: "synthetic-code", prompt: 435, completion: 2300, block: 426, memento: 127 },
  { name: "synthetic-response", prompt: 81, completion: 5460, block: 839, memento: 101 },
  { name: "synthetic-science", prompt: 69, completion: 2450, block: 464, memento: 75 },
] as const;

export interface WorkloadTrace extends ReplayTrace {
  /** simulateKv on this trace: peak and AUC with masking on and off. */
  memento: { peak: number; auc: number };
  vanilla: { peak: number; auc: number };
}

export interface Workload {
  source: "reference" | "synthetic";
  /** Length factor applied to the traces (1 = whole). */
  scale: number;
  /** The traces in their model vocabulary, scaled. */
  traces: WorkloadTrace[];
  /** The special ids of that vocabulary (for the engine's tracker and the model's token names). */
  specialTokens: SpecialTokenIds;
  /** Request i replays traces[i % traces.length]. */
  requests: WorkloadTrace[];
  /** Sum over requests of vanilla KV AUC / the same for Memento. */
  idealRatio: number;
}

export interface WorkloadOptions {
  referenceDir?: string;
  synthetic?: boolean;
  /** Length factor in (0, 1]. */
  scale: number;
  requests: number;
  /** The model's vocabulary: Qwen3 ids are used as they are when it holds them, else folded (VocabRemap). */
  vocabSize: number;
  seed?: number;
}

/** Ids that delimit runs: markers, chat tokens, think tags. */
function structuralIds(s: SpecialTokenIds): Set<number> {
  const ids = [
    s.blockStart,
    s.blockEnd,
    s.summaryStart,
    s.summaryEnd,
    s.thinkStart,
    s.thinkEnd,
    s.imStart,
    s.imEnd,
    s.assistant,
    s.eos,
    s.pad,
  ];
  return new Set(ids.filter((id): id is number => id !== undefined && id >= 0));
}

/** Keeps every structural id and the first max(1, round(n x factor)) tokens of each run between them. */
export function scaleRuns(tokens: readonly number[], factor: number, structural: ReadonlySet<number>): number[] {
  const out: number[] = [];
  let run: number[] = [];
  const flush = () => {
    if (run.length > 0) out.push(...run.slice(0, Math.max(1, Math.round(run.length * factor))));
    run = [];
  };
  for (const t of tokens) {
    if (!structural.has(t)) {
      run.push(t);
      continue;
    }
    flush();
    out.push(t);
  }
  flush();
  return out;
}

export function scaleTrace(t: ReplayTrace, factor: number, structural: ReadonlySet<number>): ReplayTrace {
  if (factor === 1) return t;
  return {
    name: t.name,
    promptTokens: scaleRuns(t.promptTokens, factor, structural),
    completionTokens: scaleRuns(t.completionTokens, factor, structural),
  };
}

/** Synthetic streams with the reference outputs' shapes (Qwen3 ids). */
export function syntheticReferenceReplays(seed = 1): ReplayTrace[] {
  return REFERENCE_SHAPES.map((s, i) => {
    const { tokens, promptLength } = syntheticMementoStream(
      s.prompt + s.completion,
      seed + i,
      QWEN3_MEMENTO_IDS,
      s.block,
      s.memento,
      s.prompt,
    );
    const all = Array.from(tokens);
    return { name: s.name, promptTokens: all.slice(0, promptLength), completionTokens: all.slice(promptLength) };
  });
}

function loadTraces(opts: WorkloadOptions): { traces: ReplayTrace[]; source: Workload["source"] } {
  if (!opts.synthetic && opts.referenceDir && existsSync(opts.referenceDir)) {
    const traces = loadReferenceReplays(opts.referenceDir, loadTokenizer());
    if (traces.length > 0) return { traces, source: "reference" };
  }
  return { traces: syntheticReferenceReplays(opts.seed ?? 1), source: "synthetic" };
}

/** Peak and AUC of one trace under one masking. */
function simulate(
  t: ReplayTrace,
  ids: TrackerTokenIds,
  masking: Partial<MaskingConfig>,
): { peak: number; auc: number } {
  const r = simulateKv([...t.promptTokens, ...t.completionTokens], t.promptTokens.length, ids, resolveMasking(masking));
  return { peak: r.peakTokens, auc: r.aucTokens };
}

/** Qwen3's special ids, with `<|endoftext|>` as the pad token (as in its tokenizer_config.json). */
const QWEN3_IDS: SpecialTokenIds = { ...QWEN3_SPECIAL_IDS, pad: 151643 };

/** Qwen3 ids as they are when the vocabulary holds them all, else folded into it. */
function inVocabulary(traces: ReplayTrace[], vocabSize: number): { traces: ReplayTrace[]; special: SpecialTokenIds } {
  let maxId = 0;
  for (const t of traces) for (const id of [...t.promptTokens, ...t.completionTokens]) maxId = Math.max(maxId, id);
  if (maxId < vocabSize && QWEN3_IDS.pad! < vocabSize) return { traces, special: QWEN3_IDS };
  const remap = new VocabRemap(QWEN3_IDS, vocabSize);
  return { traces: traces.map((t) => remap.trace(t)), special: remap.tokenizer.specialTokens as SpecialTokenIds };
}

export function buildWorkload(opts: WorkloadOptions): Workload {
  if (!(opts.scale > 0 && opts.scale <= 1))
    throw new UserError(`--scale: expected a number in (0, 1], got ${opts.scale}`);
  if (!Number.isInteger(opts.requests) || opts.requests < 1)
    throw new UserError(`--requests: expected a positive integer, got ${opts.requests}`);
  const { traces: raw, source } = loadTraces(opts);
  const { traces: vocabTraces, special } = inVocabulary(raw, opts.vocabSize);
  const structural = structuralIds(special);
  const ids = trackerIdsOf({ specialTokens: special });
  const traces = vocabTraces.map((t) => {
    const s = scaleTrace(t, opts.scale, structural);
    return { ...s, memento: simulate(s, ids, MEMENTO_MASKING), vanilla: simulate(s, ids, VANILLA_MASKING) };
  });
  const requests = Array.from({ length: opts.requests }, (_, i) => traces[i % traces.length]);
  const sum = (f: (t: WorkloadTrace) => number) => requests.reduce((a, t) => a + f(t), 0);
  return {
    source,
    scale: opts.scale,
    traces,
    specialTokens: special,
    requests,
    idealRatio: sum((t) => t.vanilla.auc) / sum((t) => t.memento.auc),
  };
}

/** Mean cells a request holds over its completion with masking on (its Memento AUC / completion length). */
export function meanMementoResident(w: Workload): number {
  const perRequest = w.requests.map((t) => t.memento.auc / Math.max(1, t.completionTokens.length));
  return perRequest.reduce((a, b) => a + b, 0) / perRequest.length;
}

/** The fewest cells that let the largest request finish alone without eviction (+ the admission reserve). */
export function minimumPoolCells(w: Workload, reserve = 16): number {
  return Math.max(...w.requests.map((t) => t.vanilla.peak)) + reserve + 1;
}

/**
 * Cells of the shared pool: `concurrency` requests at their mean Memento residency, and never less than what
 * the largest request needs alone without eviction (its vanilla peak + the admission reserve), so every
 * request can finish in both modes. Rounded up to llama.cpp's multiple of 256.
 */
export function poolCells(w: Workload, concurrency: number, reserve = 16): number {
  const largest = minimumPoolCells(w, reserve);
  const cells = Math.max(Math.ceil(concurrency * meanMementoResident(w)), largest);
  return Math.ceil(cells / 256) * 256;
}

/** The names of the special ids, for the model file's vocabulary. */
export function specialTokenNames(s: SpecialTokenIds): Map<number, string> {
  const names = new Map<number, string>();
  const put = (id: number | undefined, text: string) => {
    if (id !== undefined && id >= 0 && !names.has(id)) names.set(id, text);
  };
  put(s.blockStart, BLOCK_START);
  put(s.blockEnd, BLOCK_END);
  put(s.summaryStart, SUMMARY_START);
  put(s.summaryEnd, SUMMARY_END);
  put(s.thinkStart, THINK_START);
  put(s.thinkEnd, THINK_END);
  put(s.imStart, IM_START);
  put(s.imEnd, IM_END);
  put(s.pad, "<|endoftext|>");
  return names;
}
