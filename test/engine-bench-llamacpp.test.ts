/**
 * `memento bench engine` on llama.cpp, end to end at a tiny size: a generated Qwen3 GGUF (hidden 64, 2 layers,
 * vocabulary 512), synthetic Memento traces shortened 20x, 6 requests on a pool that holds about 2 with masking
 * on, one round, one overhead repeat. Checks that the result has every field and that they are sane, and that
 * the generated model is written once and reused. Skipped (with the reason printed) when the shared-pool addon
 * (native/llama-pool) is not built or cannot load here.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { llamaPoolUnavailableReason } from "../src/engine/backends/llama-pool.js";
import { benchEngineLlamaCpp, formatEngineBenchLlamaCpp } from "../src/bench/engine-llamacpp.js";
import { ensureBenchModel, BENCH_MODEL_CONFIG } from "../src/bench/bench-model.js";
import { QWEN3_VOCAB_SIZE } from "../src/bench/sampler.js";
import { buildWorkload, poolCells, scaleRuns } from "../src/bench/engine-workload.js";
import { countParameters, parseQwen3Config } from "../src/model/config.js";
import { readGguf } from "../src/model/gguf.js";

const unavailable = llamaPoolUnavailableReason();
if (unavailable) console.warn(`skipping the llama.cpp engine bench test: ${unavailable}`);

const TINY = {
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 32,
  max_position_embeddings: 8192,
};

const cacheDir = mkdtempSync(join(tmpdir(), "memento-bench-llamacpp-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

describe("bench engine workload", () => {
  it("scales runs between structural tokens and keeps the markers", () => {
    const s = new Set([1, 2]);
    expect(scaleRuns([1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 2, 7, 1], 0.2, s)).toEqual([1, 5, 5, 2, 7, 1]);
    expect(scaleRuns([5, 5, 5], 1, s)).toEqual([5, 5, 5]);
  });

  it("keeps the Memento KV shape of the traces when it shortens them", () => {
    const full = buildWorkload({ synthetic: true, scale: 1, requests: 3, vocabSize: QWEN3_VOCAB_SIZE });
    const small = buildWorkload({ synthetic: true, scale: 0.2, requests: 3, vocabSize: QWEN3_VOCAB_SIZE });
    expect(full.idealRatio).toBeGreaterThan(1.5);
    expect(Math.abs(small.idealRatio / full.idealRatio - 1)).toBeLessThan(0.15);
    const cells = poolCells(small, 8);
    expect(cells % 256).toBe(0);
    for (const t of small.requests) expect(cells).toBeGreaterThan(t.vanilla.peak);
  });

  it("the default model has Qwen3's shape at about 100M parameters", () => {
    expect(BENCH_MODEL_CONFIG.vocab_size).toBe(151_936);
    const n = countParameters(BENCH_MODEL_CONFIG);
    expect(n).toBeGreaterThan(90e6);
    expect(n).toBeLessThan(110e6);
  });
});

describe.skipIf(unavailable !== undefined)("bench engine on llama.cpp (tiny)", () => {
  it("writes the generated model once, as a GGUF llama.cpp's layout describes, and reuses it", () => {
    const spec = { config: parseQwen3Config(TINY), seed: 3, specialTokens: new Map([[0, "<|block_start|>"]]) };
    const first = ensureBenchModel(spec, cacheDir);
    const again = ensureBenchModel(spec, cacheDir);
    expect(first.reused).toBe(false);
    expect(again.reused).toBe(true);
    expect(again.path).toBe(first.path);
    const g = readGguf(first.path);
    expect(g.fileSize).toBe(first.bytes);
    expect(g.tensors.find((t) => t.name === "token_embd.weight")?.dims).toEqual([64, 512]);
    expect(g.metadata.get("tokenizer.ggml.tokens")?.value).toHaveLength(512);
  });

  it("runs both modes on one pool and reports sane ratios", async () => {
    const r = await benchEngineLlamaCpp({
      model: TINY,
      synthetic: true,
      scale: 0.05,
      concurrency: 2,
      requests: 6,
      rounds: 1,
      overheadRepeats: 1,
      threads: 1,
      cacheDir,
    });
    expect(r.kvUnified).toBe(true);
    expect(r.backend).toMatch(/llama\.cpp/);
    expect(r.modelParameters).toBe(countParameters(parseQwen3Config({ ...BENCH_MODEL_CONFIG, ...TINY })));
    expect(r.kvCells).toBeGreaterThan(0);
    expect(r.workload.requests).toBe(6);
    expect(r.rounds).toBe(1);
    expect(r.perRound).toHaveLength(1);
    const { memento, vanilla } = r.perRound[0];
    expect(memento.completionTokens).toBe(vanilla.completionTokens);
    expect(memento.completionTokens).toBe(r.workload.completionTokens);
    for (const side of [memento, vanilla]) expect(side.peakKvCells).toBeLessThanOrEqual(r.kvCells);
    for (const x of [r.throughputRatio, r.throughputRatioMin, r.completionTimeRatio, r.stepsRatio, r.overheadRatio]) {
      expect(Number.isFinite(x)).toBe(true);
      expect(x).toBeGreaterThan(0);
    }
    expect(r.throughputRatioMin).toBeLessThanOrEqual(r.throughputRatio);
    expect(r.preemptions.memento).toBeLessThanOrEqual(r.preemptions.vanilla);
    expect(r.meanConcurrency.memento).toBeGreaterThan(r.meanConcurrency.vanilla);
    expect(r.idealRatio).toBeGreaterThan(1);
    expect(r.overhead.plainSecondsPerToken).toBeGreaterThan(0);
    expect(r.batchCost.sweep[0].batch).toBe(1);
    expect(r.batchCost.sweep.every((x) => x.ms > 0)).toBe(true);
    // The run's step costs explain its throughput ratio: steps ratio / step cost ratio = throughput ratio.
    const round = r.perRound[0];
    expect(r.batchCost.stepCostRatio).toBeCloseTo(r.batchCost.stepMs.memento / r.batchCost.stepMs.vanilla, 10);
    expect(r.stepsRatio / r.batchCost.stepCostRatio).toBeCloseTo(round.throughputRatio, 1);
    console.log(formatEngineBenchLlamaCpp(r));
    expect(formatEngineBenchLlamaCpp(r)).toMatch(/physical limit/);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith(".gguf"))).toHaveLength(2);
  }, 60_000);
});
