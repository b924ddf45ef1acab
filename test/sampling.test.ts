/**
 * The sampler against a naive reference (fullSortKept / fullSortSample in src/bench/sampler.ts, also the bench's
 * baseline): every logit weighed, the candidates fully sorted, then min_p, top_k and top_p in vLLM's order. Both
 * must keep the same tokens and draw the same token from the same uniform number (up to float summation order,
 * which random logits never put on a boundary).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { argmax, type KeptTokens, keptTokens, Sampler, sampleToken } from "../src/engine/sampling.js";
import type { SamplingParams } from "../src/engine/types.js";
import { benchSampler, formatSamplerBench, fullSortKept, fullSortSample } from "../src/bench/sampler.js";

const params = fc.record({
  temperature: fc.constantFrom(0.3, 0.6, 1, 1.7),
  topP: fc.constantFrom(1, 0.95, 0.8, 0.5, 0.1),
  topK: fc.constantFrom(0, -1, 1, 5, 20, 300),
  minP: fc.constantFrom(0, 0.01, 0.1, 0.5),
  maxTokens: fc.constant(1),
});

const logitsArb = fc.integer({ min: 1, max: 2000 }).chain((n) =>
  fc.tuple(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(1, 4, 12)).map(([seed, scale]) => {
    // Seeded pseudo-random logits with a few ties (rounded) and a peaked head (scaled).
    let x = seed || 1;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      out[i] = Math.round(((x / 2 ** 32) * 2 - 1) * scale * 8) / 8;
    }
    return out;
  }),
);

describe("sampler", () => {
  it("draws the same token as a full sort would, for the same uniform number", () => {
    fc.assert(
      fc.property(logitsArb, params, fc.double({ min: 0, max: 0.999999, noNaN: true }), (logits, p, u) => {
        expect(sampleToken(logits, p, () => u)).toBe(fullSortSample(logits, p, u));
      }),
      { numRuns: 400 },
    );
  });

  it("keeps exactly the tokens a full sort keeps, in the same order (top-k, top-p, min-p, ties by id)", () => {
    fc.assert(
      fc.property(logitsArb, params, (logits, p) => {
        const kept = keptTokens(logits, p);
        expect(kept).not.toBeNull();
        const { ids, count } = kept as KeptTokens;
        expect(Array.from(ids.subarray(0, count))).toEqual(fullSortKept(logits, p).ids);
      }),
      { numRuns: 400 },
    );
  });

  it("is greedy at temperature 0 and reproducible per seed", () => {
    const logits = Float32Array.from([0.5, 2, 2, -1]);
    expect(sampleToken(logits, { temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: 1 }, Math.random)).toBe(1);
    expect(argmax(logits)).toBe(1);
    const p: SamplingParams = { temperature: 1, topP: 0.9, topK: 0, minP: 0, maxTokens: 1 };
    const a = new Sampler(p, 7);
    const b = new Sampler(p, 7);
    const draws = (s: Sampler) => Array.from({ length: 50 }, () => s.sample(logits));
    expect(draws(a)).toEqual(draws(b));
  });

  it("never draws a token whose weight underflows to zero", () => {
    const logits = new Float32Array(1000).fill(-1e30);
    logits[3] = 0;
    logits[500] = -0.5;
    const p: SamplingParams = { temperature: 1, topP: 1, topK: 0, minP: 0, maxTokens: 1 };
    for (let s = 0; s < 100; s++) expect([3, 500]).toContain(sampleToken(logits, p, () => s / 100));
  });
});

describe("bench sampler", () => {
  it("measures each case against the full-sort sampler, which draws the same tokens", () => {
    const r = benchSampler({ vocab: 5000, repeats: 2, tokens: 5 });
    expect(r.cases.map((c) => c.name)).toHaveLength(4);
    for (const c of r.cases) {
      expect(c.agreement).toBe(1);
      expect(c.msMin).toBeGreaterThan(0);
      expect(c.msMin).toBeLessThanOrEqual(c.msMedian);
      expect(c.fullSortMsMin).toBeLessThanOrEqual(c.fullSortMsMedian);
    }
    expect(formatSamplerBench(r)).toContain("vocabulary 5,000");
  });
});
