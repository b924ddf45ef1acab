import { performance } from "node:perf_hooks";
import { existsSync, readFileSync } from "node:fs";
import { loadTokenizer } from "../format/tokenizer.js";
import { naiveSplit, splitSentences } from "../data/split.js";
import { segmentBlocks, segmentBlocksApprox } from "../data/segment.js";
import { scoreBoundariesHeuristic } from "../data/providers/offline.js";
import { createProvider } from "../data/providers/index.js";
import { processTrace } from "../data/pipeline.js";
import { extractTrace } from "../data/seed.js";
import type { SeedTrace } from "../data/types.js";
import { syntheticTraceRecord } from "./traces.js";

export interface DataBenchResult {
  traces: number;
  source: string;
  meanChars: number;
  meanSentences: number;
  /** Structure-aware split, ms per trace (best of repeats), and the naive split measured in the same run. */
  splitMs: number;
  naiveSplitMs: number;
  /** Exact segmentation, ms per trace, and the approximate one-best-state DP in the same run. */
  segmentMs: number;
  approxSegmentMs: number;
  /** Mean objective gain of exact over approximate segmentation (>= 0). */
  meanObjectiveGain: number;
  /** Full offline pipeline per trace (split, tokenise, score, segment, mementos, validate), traces per second. */
  buildTracesPerSecond: number;
}

function best(repeats: number, fn: () => void): number {
  let min = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

/** Traces for the benchmark: the reference raw trace when given and present, plus synthetic ones. */
function benchTraces(count: number, referenceFile?: string): { traces: SeedTrace[]; source: string } {
  const traces: SeedTrace[] = [];
  let source = `${count} synthetic traces`;
  if (referenceFile && existsSync(referenceFile)) {
    const rec = JSON.parse(readFileSync(referenceFile, "utf8").split("\n")[0]) as Record<string, unknown>;
    const r = extractTrace(rec);
    if (r.ok) {
      traces.push(r.trace);
      source = `the reference raw trace + ${count - 1} synthetic traces`;
    }
  }
  for (let i = 0; traces.length < count; i++) {
    const r = extractTrace(syntheticTraceRecord(i, 120));
    if (r.ok) traces.push(r.trace);
  }
  return { traces, source };
}

export async function benchData(count = 8, repeats = 5, referenceFile?: string): Promise<DataBenchResult> {
  const { traces, source } = benchTraces(count, referenceFile);
  const tok = loadTokenizer();
  const count1 = (t: string) => tok.count(t);

  const splitMs =
    best(repeats, () => {
      for (const t of traces) splitSentences(t.reasoning, { countTokens: count1 });
    }) / traces.length;
  const naiveSplitMs =
    best(repeats, () => {
      for (const t of traces) naiveSplit(t.reasoning);
    }) / traces.length;

  const inputs = traces.map((t) => {
    const sentences = splitSentences(t.reasoning, { countTokens: count1 }).sentences;
    return {
      seg: { tokenCounts: sentences.map(count1), scores: scoreBoundariesHeuristic(sentences) },
      sentences: sentences.length,
      chars: t.reasoning.length,
    };
  });
  const segmentMs =
    best(repeats, () => {
      for (const x of inputs) segmentBlocks(x.seg);
    }) / traces.length;
  const approxSegmentMs =
    best(repeats, () => {
      for (const x of inputs) segmentBlocksApprox(x.seg);
    }) / traces.length;
  const gains = inputs.map((x) => segmentBlocks(x.seg).objective - segmentBlocksApprox(x.seg).objective);

  const provider = createProvider({ provider: "offline", countTokens: count1 });
  const t0 = performance.now();
  for (const t of traces) await processTrace(t, { tokenizer: tok, provider });
  const buildMs = performance.now() - t0;

  return {
    traces: traces.length,
    source,
    meanChars: inputs.reduce((a, x) => a + x.chars, 0) / inputs.length,
    meanSentences: inputs.reduce((a, x) => a + x.sentences, 0) / inputs.length,
    splitMs,
    naiveSplitMs,
    segmentMs,
    approxSegmentMs,
    meanObjectiveGain: gains.reduce((a, b) => a + b, 0) / gains.length,
    buildTracesPerSecond: (traces.length * 1000) / buildMs,
  };
}
