/**
 * `memento bench engine`: the same requests (teacher-forced replays of Memento responses) through the same
 * small random model under the SAME KV budget, with block eviction (keepLastNBlocks 0) and without (-1),
 * interleaved in one run. With eviction each request holds fewer cells, so more of them run at once and fewer
 * are preempted and recomputed.
 *
 * CPU caveat: the reference backend's "batch" is a loop over sequences, so a step costs the sum of its
 * sequences' work; wall-clock gains here come from less attention work and no preemption recompute. On a GPU a
 * decode step costs about the same for 1 or 64 sequences, so the number of engine steps (batched forward
 * passes) needed for the whole batch is reported too: its ratio is what batching hardware turns into throughput.
 */
import { existsSync } from "node:fs";
import { Qwen3Model, toyConfig, type Qwen3Config } from "../model/index.js";
import { simulateKv } from "../kv/simulate.js";
import { resolveMasking, type MaskingConfig } from "../masking/config.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { createEngine } from "../engine/engine.js";
import { ReferenceBackend } from "../engine/backends/reference.js";
import { QWEN3_SPECIAL_IDS, VocabRemap, loadReferenceReplays, syntheticReplays, type ReplayTrace } from "./replay.js";

export interface EngineBenchOptions {
  /** Concurrent requests (the traces are cycled). */
  requests?: number;
  /**
   * Shared KV budget in cells; default: 1.1x the largest single-request peak without eviction (so every request
   * can finish either way), which lets about two vanilla requests run at once but all Memento ones.
   */
  kvBudgetTokens?: number;
  /** Directory with memento_output_*.json; synthetic Memento-shaped traces when absent. */
  referenceDir?: string;
  /** Force synthetic traces. */
  synthetic?: boolean;
  /** memento/vanilla pairs to run (order alternates); the best of each side is reported. */
  rounds?: number;
  /** Model size (a random Qwen3 with a folded vocabulary). */
  model?: Partial<Qwen3Config>;
  seed?: number;
  onProgress?: (line: string) => void;
}

export interface EngineBenchSide {
  label: "memento" | "vanilla";
  masking: Partial<MaskingConfig>;
  completionTokens: number;
  seconds: number;
  tokensPerSec: number;
  /** Most cells in use at once over all requests. */
  peakKvTokens: number;
  /** Largest single-request peak. */
  maxRequestPeakKvTokens: number;
  peakRunning: number;
  /** Mean sequences per decode step. */
  meanConcurrency: number;
  steps: number;
  preemptions: number;
  recomputedTokens: number;
  evictions: number;
}

export interface EngineBenchResult {
  model: { hiddenSize: number; layers: number; vocab: number; parameters: string };
  traces: {
    name: string;
    promptTokens: number;
    completionTokens: number;
    simulatedPeakMemento: number;
    simulatedPeakVanilla: number;
  }[];
  source: "reference" | "synthetic";
  requests: number;
  kvBudgetTokens: number;
  rounds: number;
  memento: EngineBenchSide;
  vanilla: EngineBenchSide;
  /** memento tokens/s over vanilla tokens/s. */
  throughputRatio: number;
  /** vanilla batch time over memento batch time. */
  completionTimeRatio: number;
  /** vanilla engine steps over memento engine steps (the batched-hardware proxy). */
  stepsRatio: number;
}

const MEMENTO: Partial<MaskingConfig> = { keepLastNBlocks: 0 };
const VANILLA: Partial<MaskingConfig> = { keepLastNBlocks: -1 };

export async function benchEngine(opts: EngineBenchOptions = {}): Promise<EngineBenchResult> {
  const n = opts.requests ?? 8;
  const rounds = Math.max(1, opts.rounds ?? 1);
  const remap = new VocabRemap(QWEN3_SPECIAL_IDS, 512);
  let source: "reference" | "synthetic" = "synthetic";
  let base: ReplayTrace[];
  if (!opts.synthetic && opts.referenceDir && existsSync(opts.referenceDir)) {
    base = loadReferenceReplays(opts.referenceDir, loadTokenizer());
    source = "reference";
  } else {
    base = syntheticReplays(3, 4000, opts.seed ?? 1, 400, 60); // shapes like the reference outputs: ~9 blocks of ~400 tokens
  }
  if (base.length === 0) throw new Error("no traces to replay");
  const traces = base.map((t) => remap.trace(t));
  const markers = remap.tokenizer.specialTokens;
  const ids = {
    blockStart: markers.blockStart,
    blockEnd: markers.blockEnd,
    summaryStart: markers.summaryStart,
    summaryEnd: markers.summaryEnd,
  };
  const sim = traces.map((t) => {
    const all = [...t.promptTokens, ...t.completionTokens];
    return {
      memento: simulateKv(all, t.promptTokens.length, ids, resolveMasking(MEMENTO)).peakTokens,
      vanilla: simulateKv(all, t.promptTokens.length, ids, resolveMasking(VANILLA)).peakTokens,
    };
  });
  const reqTraces = Array.from({ length: n }, (_, i) => traces[i % traces.length]);
  const reqSim = Array.from({ length: n }, (_, i) => sim[i % sim.length]);
  const budget = opts.kvBudgetTokens ?? Math.ceil(1.1 * Math.max(...reqSim.map((s) => s.vanilla))) + 16;

  const config = toyConfig({
    vocab_size: remap.vocabSize,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    max_position_embeddings: 65536,
    ...opts.model,
  });
  const model = Qwen3Model.random(config, { seed: opts.seed ?? 1 });
  let params = 0;
  for (const p of model.params.values()) params += p.length;

  const runSide = async (label: "memento" | "vanilla"): Promise<EngineBenchSide> => {
    const masking = label === "memento" ? MEMENTO : VANILLA;
    const engine = createEngine({
      backend: new ReferenceBackend(model),
      tokenizer: remap.tokenizer,
      kvBudgetTokens: budget,
      admissionReserveTokens: 16,
    });
    const t0 = performance.now();
    const results = await Promise.all(
      reqTraces.map((t, i) =>
        engine
          .submit({
            id: `${label}-${i}`,
            promptTokens: t.promptTokens,
            replayTokens: t.completionTokens,
            sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: t.completionTokens.length },
            masking,
          })
          .result(),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    const s = engine.stats();
    await engine.close();
    for (const r of results)
      if (r.finishReason !== "stop") throw new Error(`${r.id} ended with ${r.finishReason}: ${r.message ?? ""}`);
    const completionTokens = results.reduce((a, r) => a + r.stats.completionTokens, 0);
    return {
      label,
      masking,
      completionTokens,
      seconds,
      tokensPerSec: completionTokens / seconds,
      peakKvTokens: s.peakKvUsedTokens,
      maxRequestPeakKvTokens: Math.max(...results.map((r) => r.stats.peakKvTokens)),
      peakRunning: s.peakRunning,
      meanConcurrency: s.decodedTokens / Math.max(1, s.steps),
      steps: s.steps,
      preemptions: s.preemptions,
      recomputedTokens: results.reduce((a, r) => a + r.stats.recomputedTokens, 0),
      evictions: s.evictions,
    };
  };

  let best: { memento?: EngineBenchSide; vanilla?: EngineBenchSide } = {};
  for (let r = 0; r < rounds; r++) {
    const order: ("memento" | "vanilla")[] = r % 2 === 0 ? ["memento", "vanilla"] : ["vanilla", "memento"];
    for (const label of order) {
      const side = await runSide(label);
      opts.onProgress?.(
        `round ${r + 1}/${rounds} ${label}: ${side.tokensPerSec.toFixed(0)} tok/s, ${side.seconds.toFixed(1)} s, ${side.preemptions} preemptions`,
      );
      const prev = best[label];
      if (!prev || side.seconds < prev.seconds) best = { ...best, [label]: side };
    }
  }
  const memento = best.memento as EngineBenchSide;
  const vanilla = best.vanilla as EngineBenchSide;
  return {
    model: {
      hiddenSize: config.hidden_size,
      layers: config.num_hidden_layers,
      vocab: config.vocab_size,
      parameters: `${(params / 1e6).toFixed(2)}M`,
    },
    traces: traces.map((t, i) => ({
      name: t.name,
      promptTokens: t.promptTokens.length,
      completionTokens: t.completionTokens.length,
      simulatedPeakMemento: sim[i].memento,
      simulatedPeakVanilla: sim[i].vanilla,
    })),
    source,
    requests: n,
    kvBudgetTokens: budget,
    rounds,
    memento,
    vanilla,
    throughputRatio: memento.tokensPerSec / vanilla.tokensPerSec,
    completionTimeRatio: vanilla.seconds / memento.seconds,
    stepsRatio: vanilla.steps / memento.steps,
  };
}

export function formatEngineBench(r: EngineBenchResult): string {
  const row = (s: EngineBenchSide) =>
    `${s.label.padEnd(8)} ${s.tokensPerSec.toFixed(0).padStart(7)} tok/s  ${s.seconds.toFixed(1).padStart(6)} s  peak KV ${String(s.peakKvTokens).padStart(6)}  ` +
    `concurrency ${s.meanConcurrency.toFixed(1).padStart(5)} (max ${s.peakRunning})  steps ${String(s.steps).padStart(6)}  preemptions ${s.preemptions} (recomputed ${s.recomputedTokens} tokens)`;
  return [
    `engine bench: ${r.requests} concurrent replays of ${r.source} Memento traces (${r.traces.map((t) => `${t.name} ${t.promptTokens}+${t.completionTokens}`).join(", ")})`,
    `model: random Qwen3, hidden ${r.model.hiddenSize}, ${r.model.layers} layers, vocab ${r.model.vocab} (${r.model.parameters} params), reference backend; shared KV budget ${r.kvBudgetTokens} cells`,
    row(r.memento),
    row(r.vanilla),
    `throughput ratio (memento / vanilla): ${r.throughputRatio.toFixed(2)}x; completion time ratio: ${r.completionTimeRatio.toFixed(2)}x; engine steps ratio: ${r.stepsRatio.toFixed(2)}x`,
    "",
  ].join("\n");
}
