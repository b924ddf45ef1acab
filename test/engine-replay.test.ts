import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { Qwen3Model, toyConfig } from "../src/model/index.js";
import { simulateKv } from "../src/kv/simulate.js";
import { resolveMasking, type MaskingConfig, type TrackerTokenIds } from "../src/masking/config.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { createEngine } from "../src/engine/engine.js";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import {
  QWEN3_SPECIAL_IDS,
  VocabRemap,
  engineReplay,
  referenceReplay,
  syntheticReplays,
  type ReplayTrace,
} from "../src/bench/replay.js";
import type { EngineTokenizer } from "../src/engine/types.js";
import { describeWithReference, referencePath } from "./helpers/reference.js";
import { ONE_LAYER_CONFIG } from "./helpers/random-model.js";

const remap = new VocabRemap(QWEN3_SPECIAL_IDS, 96);
const model = Qwen3Model.random(toyConfig({ ...ONE_LAYER_CONFIG, vocab_size: remap.vocabSize }), { seed: 3 });

function markers(tok: EngineTokenizer): TrackerTokenIds {
  const s = tok.specialTokens;
  return {
    blockStart: s.blockStart,
    blockEnd: s.blockEnd,
    summaryStart: s.summaryStart,
    summaryEnd: s.summaryEnd,
    imStart: s.imStart,
    assistant: s.assistant,
  };
}

async function replayPeak(trace: ReplayTrace, masking: Partial<MaskingConfig>) {
  const engine = createEngine({
    backend: new ReferenceBackend(model),
    tokenizer: remap.tokenizer,
    kvBudgetTokens: 1_000_000,
  });
  const r = await engine
    .submit({
      promptTokens: trace.promptTokens,
      replayTokens: trace.completionTokens,
      sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: 1_000_000 },
      masking,
    })
    .result();
  await engine.close();
  return r;
}

const CONFIGS: Partial<MaskingConfig>[] = [
  { keepLastNBlocks: 0 },
  { keepLastNBlocks: -1 },
  { keepLastNBlocks: 1 },
  { keepLastNBlocks: 2, maskDelimiters: true },
  { keepLastNBlocks: 0, keepLastBlockForAnswer: true },
  { keepLastNBlocks: 0, restartMode: true },
  { keepLastNBlocks: 0, requireAssistantSection: true },
];

function checkAgainstSimulation(trace: ReplayTrace) {
  for (const masking of CONFIGS) {
    it(`${trace.name}: peak KV equals simulateKv with ${JSON.stringify(masking)}`, async () => {
      const r = await replayPeak(trace, masking);
      const all = [...trace.promptTokens, ...trace.completionTokens];
      const sim = simulateKv(all, trace.promptTokens.length, markers(remap.tokenizer), resolveMasking(masking));
      expect(r.finishReason).toBe("stop");
      expect(r.tokens).toEqual(trace.completionTokens);
      expect(r.stats.peakKvTokens).toBe(sim.peakTokens);
      expect(r.stats.aucKvTokens).toBe(sim.aucTokens);
      expect(r.stats.evictions).toBe(sim.compactions.length);
      expect(r.evictions.map((e) => [e.start, e.end])).toEqual(sim.compactions);
      expect(r.stats.evictedTokens).toBe(sim.evictedTokens);
      expect(r.stats.blocks).toBe(sim.blocks);
      expect(r.stats.currentKvTokens).toBe(0);
    });
  }
}

describe("engine replay vs simulateKv (synthetic Memento-shaped traces)", () => {
  for (const t of syntheticReplays(2, 1500, 7, 200, 40)) checkAgainstSimulation(remap.trace(t));

  it("a Memento-shaped replay peaks 2-3x lower with keepLastNBlocks 0 than with -1", async () => {
    const [t] = syntheticReplays(1, 6000, 11, 600, 100).map((x) => remap.trace(x));
    const memento = await replayPeak(t, { keepLastNBlocks: 0 });
    const vanilla = await replayPeak(t, { keepLastNBlocks: -1 });
    expect(vanilla.stats.peakKvTokens).toBe(t.promptTokens.length + t.completionTokens.length);
    const ratio = vanilla.stats.peakKvTokens / memento.stats.peakKvTokens;
    expect(ratio).toBeGreaterThan(2);
    expect(memento.stats.aucKvTokens).toBeLessThan(vanilla.stats.aucKvTokens / 2);
  });
});

describeWithReference("engine replay vs simulateKv (reference Memento outputs, Qwen3 tokenizer)", () => {
  const tokenizer = loadTokenizer();
  const traces = ["response", "code", "science"].map((n) =>
    referenceReplay(JSON.parse(readFileSync(referencePath(`memento_output_${n}.json`), "utf8")), tokenizer, n),
  );

  it("the Qwen3 ids of the markers are the ones the remap folds", () => {
    const st = tokenizer.specialTokens;
    for (const k of ["blockStart", "blockEnd", "summaryStart", "summaryEnd", "imStart", "assistant", "eos"] as const)
      expect(st[k]).toBe(QWEN3_SPECIAL_IDS[k]);
  });

  for (const t of traces) checkAgainstSimulation(remap.trace(t));

  it("real traces: keepLastNBlocks 0 peaks well below -1", async () => {
    for (const t of traces.map((x) => remap.trace(x))) {
      const memento = await replayPeak(t, { keepLastNBlocks: 0 });
      const vanilla = await replayPeak(t, { keepLastNBlocks: -1 });
      expect(vanilla.stats.peakKvTokens / memento.stats.peakKvTokens).toBeGreaterThan(1.8);
    }
  });
});

describe("engineReplay (memento engine replay)", () => {
  it("measures the same KV as simulateKv on Qwen3-id tokens, folding the vocabulary", async () => {
    const [t] = syntheticReplays(1, 1200, 3, 150, 30);
    const tokens = [...t.promptTokens, ...t.completionTokens];
    const ids = {
      blockStart: QWEN3_SPECIAL_IDS.blockStart,
      blockEnd: QWEN3_SPECIAL_IDS.blockEnd,
      summaryStart: QWEN3_SPECIAL_IDS.summaryStart,
      summaryEnd: QWEN3_SPECIAL_IDS.summaryEnd,
    };
    for (const masking of [{}, { keepLastNBlocks: -1 }, { restartMode: true }]) {
      const r = await engineReplay(tokens, t.promptTokens.length, ids, masking);
      expect(r.match).toBe(true);
      expect(r.engine.peakTokens).toBe(r.simulated.peakTokens);
      expect(r.engine.finalTokens).toBe(r.simulated.finalTokens);
    }
  });

  it("the vocabulary remap keeps marker roles and folds the rest above them", () => {
    const m = new VocabRemap(QWEN3_SPECIAL_IDS, 64);
    const st = m.tokenizer.specialTokens;
    expect(m.map(QWEN3_SPECIAL_IDS.blockStart)).toBe(st.blockStart);
    expect(m.map(QWEN3_SPECIAL_IDS.summaryEnd)).toBe(st.summaryEnd);
    expect(st.eos).toBe(st.imEnd); // Qwen3: eos is <|im_end|>
    const specials = new Set(Object.values(st).filter((v) => v !== undefined && v >= 0));
    for (let id = 0; id < 5000; id += 7) {
      if (Object.values(QWEN3_SPECIAL_IDS).includes(id)) continue;
      const x = m.map(id);
      expect(x).toBeLessThan(64);
      expect(specials.has(x)).toBe(false);
    }
  });
});
