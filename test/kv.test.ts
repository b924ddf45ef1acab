import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { simulateKv } from "../src/kv/simulate.js";
import { KvLedger } from "../src/kv/ledger.js";
import { ARCHITECTURE_PRESETS, architectureFromHfConfig, bytesPerToken, kvBytes } from "../src/kv/architecture.js";
import { resolveMasking } from "../src/masking/config.js";
import { IDS, stream } from "./helpers/stream.js";
import { runCli } from "./helpers/cli.js";

const memento = resolveMasking({ keepLastNBlocks: 0 });
const vanilla = resolveMasking({ keepLastNBlocks: -1 });

describe("simulateKv", () => {
  it("counts peak before the removal, AUC after it, over output tokens only", () => {
    //                 012345678
    const tokens = stream("pSxxEMyNz");
    const r = simulateKv(tokens, 1, IDS, memento);
    expect(r.compactions).toEqual([[2, 4]]);
    expect(r.peakTokens).toBe(8); // all 8 resident when <|summary_end|> arrives
    expect(r.finalTokens).toBe(7);
    // Resident after each output token: 2,3,4,5,6,7,(8-2)=6,7
    expect(r.aucTokens).toBe(2 + 3 + 4 + 5 + 6 + 7 + 6 + 7);
    expect(r.evictedTokens).toBe(2);
  });

  it("vanilla keeps everything: peak = final = length, AUC = sum of prefix lengths", () => {
    const tokens = stream("pqSxxEMyNz");
    const r = simulateKv(tokens, 2, IDS, vanilla);
    expect(r).toMatchObject({
      peakTokens: 10,
      finalTokens: 10,
      aucTokens: 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10,
      compactions: [],
    });
  });

  it("prompt tokens count toward peak but not AUC, and prompt blocks are not evicted during the prompt", () => {
    const tokens = stream("SxxEMxNSxEMN");
    const r = simulateKv(tokens, 7, IDS, memento);
    expect(r.compactions).toEqual([[1, 3]]); // the oldest (prompt) block, triggered by the output's summary end
    expect(r.peakTokens).toBe(12);
    expect(r.finalTokens).toBe(10);
  });

  it("a position removed twice counts once (nested blocks)", () => {
    const tokens = stream("SxSxxExEMNMN");
    const r = simulateKv(tokens, 0, IDS, memento);
    expect(r.compactions).toEqual([
      [3, 5],
      [1, 7],
    ]);
    expect(r.evictedTokens).toBe(6); // 1..6, of which 3 and 4 were already gone
    expect(r.finalTokens).toBe(12 - 6);
  });

  it("sawtooth: many blocks keep the peak near one block while vanilla grows linearly", () => {
    const body = "S" + "x".repeat(100) + "EM" + "y".repeat(10) + "N";
    const tokens = stream("p".repeat(20) + body.repeat(10) + "answer");
    const m = simulateKv(tokens, 20, IDS, memento);
    const v = simulateKv(tokens, 20, IDS, vanilla);
    expect(m.compactions).toHaveLength(10);
    expect(v.peakTokens).toBe(tokens.length);
    // prompt + 10 x (delimiters + memento + summary markers) + one full block in flight
    expect(m.peakTokens).toBe(20 + 9 * 14 + 114);
    expect(v.peakTokens / m.peakTokens).toBeGreaterThan(4);
  });

  it("the trajectory ends at finalTokens, sums to aucTokens and peaks at most at peakTokens", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("x", "S", "E", "M", "N", "xxx", "SxxEMxN"), { maxLength: 60 }),
        fc.nat(),
        (parts, seed) => {
          const tokens = stream(parts.join(""));
          const promptLength = seed % (tokens.length + 1);
          const r = simulateKv(tokens, promptLength, IDS, memento, { trajectory: true });
          const t = r.trajectory!;
          expect(t.length).toBe(tokens.length - promptLength);
          expect(t.reduce((a, b) => a + b, 0)).toBe(r.aucTokens);
          if (t.length) expect(t[t.length - 1]).toBe(r.finalTokens);
          expect(Math.max(0, ...t)).toBeLessThanOrEqual(r.peakTokens);
          expect(r.finalTokens).toBe(tokens.length - r.evictedTokens);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("rejects a promptLength beyond the tokens", () => {
    expect(() => simulateKv([1, 2], 3, IDS, memento)).toThrow(/promptLength/);
  });
});

describe("KV bytes", () => {
  it("matches the paper's per-token sizes", () => {
    expect(bytesPerToken(ARCHITECTURE_PRESETS["qwen3-8b"])).toBe(147_456);
    expect(bytesPerToken(ARCHITECTURE_PRESETS["qwen3-32b"])).toBe(256 * 1024);
    expect(bytesPerToken(ARCHITECTURE_PRESETS["phi-4-reasoning"])).toBe(200 * 1024);
  });

  it("sliding-window layers hold only the resident tokens inside the window", () => {
    const ledger = new KvLedger(4);
    for (let i = 0; i < 10; i++) ledger.add();
    expect(ledger.resident).toBe(10);
    expect(ledger.residentInWindow).toBe(4); // positions 6..9
    ledger.remove(5, 8); // 5 is outside the window, 6 and 7 inside
    expect(ledger.resident).toBe(7);
    expect(ledger.residentInWindow).toBe(2);
    ledger.add(); // position 10; 6 slides out but was already removed
    expect(ledger.residentInWindow).toBe(3);
    ledger.add(); // 11; 7 slides out (removed)
    ledger.add(); // 12; 8 slides out (resident)
    expect(ledger.residentInWindow).toBe(4);
    const olmo = ARCHITECTURE_PRESETS["olmo-3-7b"];
    expect(kvBytes(olmo, 1000, 100)).toBe(2 * 32 * 128 * 2 * (8 * 1000 + 24 * 100));
  });

  it("Olmo-3 long vanilla trace: sliding layers cap at the window", () => {
    const tokens = stream("x".repeat(10_000));
    const r = simulateKv(tokens, 0, IDS, vanilla, { architecture: ARCHITECTURE_PRESETS["olmo-3-7b"] });
    expect(r.bytes!.peakBytes).toBe(2 * 32 * 128 * 2 * (8 * 10_000 + 24 * 4096));
  });

  it("reads Hugging Face config.json: GQA, head_dim, dtype and sliding-window layers", () => {
    const qwen = architectureFromHfConfig({
      num_hidden_layers: 36,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 128,
      hidden_size: 4096,
      torch_dtype: "bfloat16",
      use_sliding_window: false,
      max_window_layers: 36,
      sliding_window: null,
    });
    expect(bytesPerToken(qwen)).toBe(147_456);
    expect(qwen.slidingWindow).toBeUndefined();
    const olmo = architectureFromHfConfig({
      num_hidden_layers: 8,
      num_attention_heads: 4,
      hidden_size: 256,
      torch_dtype: "float32",
      sliding_window: 16,
      layer_types: [
        "sliding_attention",
        "sliding_attention",
        "sliding_attention",
        "full_attention",
        "sliding_attention",
        "sliding_attention",
        "sliding_attention",
        "full_attention",
      ],
    });
    expect(olmo).toMatchObject({
      layers: 8,
      kvHeads: 4,
      headDim: 64,
      bytesPerElement: 4,
      slidingWindow: { layers: 6, window: 16 },
    });
    expect(() => architectureFromHfConfig({ num_hidden_layers: 2 })).toThrow(/num_attention_heads/);
  });
});

describe("memento kv simulate (CLI)", () => {
  const input = {
    tokens: stream("pSxxEMyNz"),
    promptLength: 1,
    specialTokens: { blockStart: 101, blockEnd: 102, summaryStart: 103, summaryEnd: 104 },
    masking: { keepLastNBlocks: 0, maskDelimiters: true },
  };
  it("reads one JSON object and writes one", () => {
    const r = runCli(["kv", "simulate"], JSON.stringify(input));
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ compactions: [[1, 5]], peakTokens: 8, finalTokens: 5 });
  });
  it("adds bytes for an architecture", () => {
    const r = runCli(["kv", "simulate", "--architecture", "qwen3-8b"], JSON.stringify(input));
    expect(JSON.parse(r.stdout).bytes.peakBytes).toBe(8 * 147_456);
  });
  it("bad input: one line on stderr, exit 2", () => {
    for (const bad of [
      "{",
      JSON.stringify({ ...input, promptLength: 99 }),
      JSON.stringify({ ...input, masking: { keepLastNBlocks: "all" } }),
    ]) {
      const r = runCli(["kv", "simulate"], bad);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/^memento: /);
    }
  });
});
