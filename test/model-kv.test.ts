import { describe, expect, it } from "vitest";
import { BlockTracker } from "../src/masking/tracker.js";
import { mementoPattern, causalPattern, NEVER, type CompactAttentionPattern } from "../src/masking/masks.js";
import { resolveMasking, type MaskingConfig } from "../src/masking/config.js";
import { parseQwen3Config, kvBytesPerToken, type Qwen3Config } from "../src/model/config.js";
import { Qwen3Model, type ForwardCache } from "../src/model/transformer.js";
import { KVCache } from "../src/model/kv-cache.js";
import { Rng } from "../src/model/ops.js";
import { IDS, stream } from "./helpers/stream.js";

const TOL = 1e-4;

function smallConfig(seed: number): Qwen3Config {
  // Vary the shape a little between seeds: GQA 4/2 or MHA 2/2, tied or not.
  return parseQwen3Config({
    vocab_size: 110,
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: seed % 2 === 0 ? 4 : 2,
    num_key_value_heads: 2,
    head_dim: 6,
    rope_theta: 1000,
    tie_word_embeddings: seed % 3 === 0,
  });
}

/**
 * Random Memento token streams: well-formed traces (prompt, blocks with mementos, answer) mixed with
 * fragments and stray markers (nested blocks, unmatched ends, orphan mementos); ordinary tokens are random
 * ids below 100, markers are 101..106 as in the stream helper.
 */
function randomStream(rng: Rng): { tokens: number[]; promptLength: number } {
  const parts: string[] = [];
  const prompt = "x".repeat(1 + rng.int(5));
  parts.push(prompt);
  const wellFormed = rng.next() < 0.6;
  const pieces = 3 + rng.int(6);
  for (let i = 0; i < pieces; i++) {
    if (wellFormed) {
      parts.push(
        "S" + "x".repeat(1 + rng.int(6)) + "E" + (rng.next() < 0.3 ? "x" : "") + "M" + "x".repeat(rng.int(4)) + "N",
      );
    } else {
      const r = rng.next();
      if (r < 0.4) parts.push("x".repeat(1 + rng.int(3)));
      else if (r < 0.8) parts.push(["Sxx", "xE", "MxN", "SxxExMxxN", "SxSxExEMxNMxN", "SxExMN"][rng.int(6)]);
      else parts.push(["S", "E", "M", "N", "I", "A"][rng.int(6)]);
    }
  }
  parts.push("x".repeat(rng.int(4)));
  const tokens = stream(parts.join("")).map((t) => (t === 7 ? rng.int(100) : t));
  return { tokens, promptLength: prompt.length };
}

interface Incremental {
  logits: Float32Array;
  /** Logits each token was computed with when it was appended (before any recompute). */
  sampled: Float32Array;
  recomputed: Set<number>;
  cache: KVCache;
}

/** The engine loop: prefill the prompt, then step token by token, evicting (and recomputing) after each trigger. */
function runIncremental(model: Qwen3Model, tokens: number[], promptLength: number, config: MaskingConfig): Incremental {
  const V = model.vocab;
  const n = tokens.length;
  const cache = new KVCache(model, 4);
  const tracker = new BlockTracker(config, IDS);
  const logits = new Float32Array(n * V);
  const sampled = new Float32Array(n * V);
  const recomputed = new Set<number>();
  const recomputedLogits = new Float32Array(n * V);
  sampled.set(cache.prefill(tokens.slice(0, promptLength)), 0);
  for (let q = 0; q < promptLength; q++) expect(tracker.push(tokens[q], true)).toHaveLength(0);
  for (let q = promptLength; q < n; q++) {
    sampled.set(cache.step(tokens[q]), q * V);
    for (const ev of tracker.push(tokens[q], false)) {
      expect(ev.trigger).toBe(q);
      cache.evict(ev.start, ev.end);
      if (ev.recomputeFrom !== undefined) {
        const positions: number[] = [];
        for (let r = ev.recomputeFrom; r <= q; r++) positions.push(r);
        const re = cache.recompute(
          positions.map((r) => tokens[r]),
          positions,
        );
        positions.forEach((r) => {
          recomputed.add(r);
        });
        recomputedLogits.set(re, ev.recomputeFrom * V);
      }
    }
  }
  logits.set(sampled);
  for (const r of recomputed) logits.set(recomputedLogits.subarray(r * V, (r + 1) * V), r * V);
  return { logits, sampled, recomputed, cache };
}

function maxAbsDiff(a: Float32Array, b: Float32Array, from = 0, to = a.length): number {
  let m = 0;
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Max difference between the cache's resident K/V and the full forward's K/V at the same positions. */
function kvDiff(inc: KVCache, full: ForwardCache): number {
  const d = inc.model.kvDim;
  let m = 0;
  for (const p of inc.residentPositions()) {
    for (let l = 0; l < full.layers.length; l++) {
      m = Math.max(m, maxAbsDiff(inc.keyAt(l, p) as Float32Array, full.layers[l].k.subarray(p * d, (p + 1) * d)));
      m = Math.max(m, maxAbsDiff(inc.valueAt(l, p) as Float32Array, full.layers[l].v.subarray(p * d, (p + 1) * d)));
    }
  }
  return m;
}

function residentFromPattern(p: CompactAttentionPattern): number[] {
  const out: number[] = [];
  for (let k = 0; k < p.length; k++) if (p.visibleUntil[k] === NEVER) out.push(k);
  return out;
}

describe("KV cache with physical eviction == one full forward with the memento pattern", () => {
  const configs: Array<Partial<MaskingConfig>> = [];
  for (const keepLastNBlocks of [0, 1, 2])
    for (const maskDelimiters of [false, true]) configs.push({ keepLastNBlocks, maskDelimiters });
  configs.push({ keepLastNBlocks: 0, keepLastBlockForAnswer: true });

  for (const partial of configs) {
    it(`logits and resident KV match (${JSON.stringify(partial)})`, () => {
      const config = resolveMasking(partial);
      const rng = new Rng(1000 + configs.indexOf(partial));
      let evictions = 0;
      let worst = 0;
      for (let trial = 0; trial < 6; trial++) {
        const model = Qwen3Model.random(smallConfig(trial), { seed: trial, std: 0.3, normJitter: 0.2 });
        const { tokens, promptLength } = randomStream(rng);
        const pattern = mementoPattern(tokens, promptLength, IDS, config);
        const { logits, cache } = model.forward(tokens, pattern);
        const inc = runIncremental(model, tokens, promptLength, config);
        const diff = maxAbsDiff(inc.logits, logits);
        worst = Math.max(worst, diff);
        expect(diff, `stream ${tokens.join(",")}`).toBeLessThanOrEqual(TOL);
        expect(Array.from(inc.cache.residentPositions())).toEqual(residentFromPattern(pattern));
        expect(kvDiff(inc.cache, cache)).toBeLessThanOrEqual(TOL);
        evictions += tokens.length - inc.cache.residentTokens;
      }
      expect(evictions).toBeGreaterThan(0); // the streams really evicted something
      expect(worst).toBeLessThanOrEqual(TOL);
    });
  }

  it("the memento pattern is not the causal one: without eviction the incremental logits would differ", () => {
    const config = resolveMasking({ keepLastNBlocks: 0 });
    const model = Qwen3Model.random(smallConfig(0), { seed: 1, std: 0.3 });
    const tokens = stream("xxSxxxExMxxNSxxExMxNxxx").map((t, i) => (t === 7 ? (i * 7) % 100 : t));
    const inc = runIncremental(model, tokens, 2, config);
    const causal = model.forward(tokens, causalPattern(tokens.length)).logits;
    expect(maxAbsDiff(inc.logits, causal)).toBeGreaterThan(1e-3);
  });

  it("restart mode: recomputed mementos and everything after them match the restart pattern", () => {
    let dualStreamGap = 0;
    for (const maskDelimiters of [false, true])
      for (const keepLastNBlocks of [0, 1, 2]) {
        const config = resolveMasking({ keepLastNBlocks, maskDelimiters, restartMode: true });
        const rng = new Rng(77 + keepLastNBlocks);
        for (let trial = 0; trial < 4; trial++) {
          const model = Qwen3Model.random(smallConfig(trial + 1), { seed: 10 + trial, std: 0.3, normJitter: 0.2 });
          const { tokens, promptLength } = randomStream(rng);
          const pattern = mementoPattern(tokens, promptLength, IDS, config);
          const full = model.forward(tokens, pattern);
          // inc.sampled: logits as each token was appended (the memento rows still saw their block);
          // inc.logits: the same with the recomputed rows' logits in place of the sampled ones.
          const V = model.vocab;
          const inc = runIncremental(model, tokens, promptLength, config);
          const stepOnly = inc.sampled;
          for (let q = 0; q < tokens.length; q++) {
            const row = [q * V, (q + 1) * V] as const;
            if (inc.recomputed.has(q)) {
              // Recomputed rows equal the full forward's rows (mementos without their block) ...
              expect(maxAbsDiff(inc.logits, full.logits, ...row)).toBeLessThanOrEqual(TOL);
              // ... and generally differ from what was sampled while the block was visible.
              dualStreamGap = Math.max(dualStreamGap, maxAbsDiff(stepOnly, full.logits, ...row));
            } else {
              // Every other position, including all after each summary end, matches exactly.
              expect(maxAbsDiff(stepOnly, full.logits, ...row)).toBeLessThanOrEqual(TOL);
            }
          }
          expect(kvDiff(inc.cache, full.cache)).toBeLessThanOrEqual(TOL);
          expect(Array.from(inc.cache.residentPositions())).toEqual(residentFromPattern(pattern));
        }
      }
    expect(dualStreamGap).toBeGreaterThan(1e-3);
  });
});

describe("KV cache bookkeeping", () => {
  const model = Qwen3Model.random(smallConfig(0), { seed: 3, std: 0.3 });
  const tokens = [5, 9, 13, 2, 7, 44, 61, 3, 8, 21, 30];

  it("prefill equals stepping token by token", () => {
    const a = new KVCache(model);
    const b = new KVCache(model, 1);
    const la = a.prefill(tokens);
    for (let i = 0; i < tokens.length; i++)
      expect(maxAbsDiff(b.step(tokens[i]), la.subarray(i * model.vocab, (i + 1) * model.vocab))).toBeLessThanOrEqual(
        1e-5,
      );
    expect(b.capacity).toBeGreaterThanOrEqual(tokens.length);
  });

  it("positions do not drift after an eviction: the next token uses logical position p, not p - evicted", () => {
    const cache = new KVCache(model);
    cache.prefill(tokens.slice(0, 10));
    expect(cache.evict(2, 6)).toBe(4);
    expect(cache.nextPosition).toBe(10);
    const logits = cache.step(tokens[10]);
    expect(Array.from(cache.residentPositions())).toEqual([0, 1, 6, 7, 8, 9, 10]);
    // Full forward: keys 2..5 are visible up to token 9, then gone; row 10 at position 10.
    const visibleUntil = new Int32Array(11).fill(NEVER);
    for (let k = 2; k < 6; k++) visibleUntil[k] = 9;
    const viewAt = Int32Array.from({ length: 11 }, (_, i) => i);
    const pattern = { length: 11, visibleUntil, viewAt };
    const V = model.vocab;
    const full = model.forward(tokens, pattern).logits;
    expect(maxAbsDiff(logits, full.subarray(10 * V, 11 * V))).toBeLessThanOrEqual(TOL);
    // A drifting engine would have put the new token at 10 - 4 = 6: different logits.
    const drifted = model.forward(tokens, pattern, Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 6])).logits;
    expect(maxAbsDiff(logits, drifted.subarray(10 * V, 11 * V))).toBeGreaterThan(1e-3);
  });

  it("accounts memory in resident slots, frees evicted ones, and rejects positions that go backwards", () => {
    const cache = new KVCache(model);
    cache.prefill(tokens);
    expect(cache.residentTokens).toBe(11);
    expect(cache.residentBytes()).toBe(11 * kvBytesPerToken(model.config));
    expect(cache.evict(3, 8)).toBe(5);
    expect(cache.evict(3, 8)).toBe(0); // already gone
    expect(cache.residentTokens).toBe(6);
    expect(cache.peakResidentTokens).toBe(11);
    expect(cache.has(2) && !cache.has(3) && cache.has(8)).toBe(true);
    expect(() => cache.step(1, 5)).toThrow(/increase/);
    cache.step(1, 20); // gaps are allowed
    expect(cache.nextPosition).toBe(21);
    expect(cache.keyAt(0, 20)).toHaveLength(model.kvDim);
    expect(cache.keyAt(0, 4)).toBeUndefined();
  });
});

describe("batched decode (KVCache.stepMany)", () => {
  it("gives each sequence the logits its own step would, with its own evictions and positions", () => {
    const model = Qwen3Model.random(smallConfig(2), { seed: 5, std: 0.3, normJitter: 0.2 });
    const rng = new Rng(9);
    const prefixes = [5, 12, 30].map((n) => Array.from({ length: n }, () => rng.int(100)));
    const make = () =>
      prefixes.map((p, i) => {
        const c = new KVCache(model);
        c.prefill(p);
        if (i === 2) c.evict(4, 20); // a gap: the next position is still 30
        return c;
      });
    const alone = make();
    const batched = make();
    for (let step = 0; step < 4; step++) {
      const tokens = prefixes.map(() => rng.int(100));
      const one = alone.map((c, i) => c.step(tokens[i]));
      const many = KVCache.stepMany(
        batched,
        tokens,
        batched.map((c) => c.nextPosition),
      );
      for (let i = 0; i < one.length; i++) {
        let worst = 0;
        for (let v = 0; v < one[i].length; v++) worst = Math.max(worst, Math.abs(one[i][v] - many[i][v]));
        expect(worst, `sequence ${i}, step ${step}`).toBeLessThan(1e-5);
        expect(batched[i].residentTokens).toBe(alone[i].residentTokens);
      }
    }
    expect(() => KVCache.stepMany([batched[0], batched[0]], [1, 2], [50, 51])).toThrow(/twice/);
  });
});
