import { describe, expect, it } from "vitest";
import { causalPattern, mementoPattern } from "../src/masking/masks.js";
import { resolveMasking } from "../src/masking/config.js";
import type { CompactAttentionPattern } from "../src/masking/masks.js";
import { parseQwen3Config, parameterShapes, type Qwen3Config } from "../src/model/config.js";
import { Qwen3Model } from "../src/model/transformer.js";
import { IGNORE_INDEX, Rng, matmulABt, matmulABtTri, applyRope, ropeTables, crossEntropy } from "../src/model/ops.js";
import { IDS, stream } from "./helpers/stream.js";

/** A tiny GQA model (4 query heads over 2 KV heads) whose vocabulary holds the marker ids 101..106. */
function tinyConfig(tied: boolean): Qwen3Config {
  return parseQwen3Config({
    vocab_size: 108,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 4,
    rope_theta: 100,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: tied,
  });
}

/** Sum of all entries of the product, computed naively in float64. */
function naiveABt(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k] * b[j * K + k];
      out[i * N + j] = s;
    }
  return out;
}

describe("kernels", () => {
  const rng = new Rng(3);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

  it("matmulABt matches a naive product for odd shapes, with and without accumulation", () => {
    for (const [M, K, N] of [
      [1, 1, 1],
      [3, 5, 7],
      [5, 8, 4],
      [2, 3, 9],
      [7, 1, 6],
    ]) {
      const a = rand(M * K),
        b = rand(N * K);
      const ref = naiveABt(a, b, M, K, N);
      const out = new Float32Array(M * N).fill(1);
      matmulABt(out, a, b, M, K, N);
      for (let i = 0; i < M * N; i++) expect(Math.abs(out[i] - ref[i])).toBeLessThan(1e-5);
      matmulABt(out, a, b, M, K, N, true);
      for (let i = 0; i < M * N; i++) expect(Math.abs(out[i] - 2 * ref[i])).toBeLessThan(1e-5);
    }
  });

  it("triangular matmuls agree with the full product on triangular operands", () => {
    for (const n of [1, 2, 5, 8, 11]) {
      const D = 3;
      const a = rand(n * D),
        b = rand(n * D);
      const full = naiveABt(a, b, n, D, n);
      const lower = new Float32Array(n * n);
      matmulABtTri(lower, a, b, n, D, n, "lower");
      for (let i = 0; i < n; i++)
        for (let j = 0; j <= i; j++) expect(Math.abs(lower[i * n + j] - full[i * n + j])).toBeLessThan(1e-5);
      const low = rand(n * n),
        up = rand(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) (j > i ? low : up)[i * n + j] = 0;
      const bt = rand(D * n);
      for (const [m, mode] of [
        [low, "prefix"],
        [up, "suffix"],
      ] as const) {
        const out = new Float32Array(n * D);
        matmulABtTri(out, m, bt, n, n, D, mode);
        const ref = naiveABt(m, bt, n, n, D);
        for (let i = 0; i < n * D; i++) expect(Math.abs(out[i] - ref[i])).toBeLessThan(1e-5);
      }
    }
  });

  it("RoPE follows rotate_half, keeps norms, and its inverse undoes it", () => {
    const D = 8,
      n = 3;
    const x = rand(n * 2 * D);
    const y = Float32Array.from(x);
    const { cos, sin } = ropeTables([0, 5, 17], D, 10000);
    applyRope(y, cos, sin, n, 2, D);
    expect(Array.from(y.subarray(0, 2 * D))).toEqual(Array.from(x.subarray(0, 2 * D))); // position 0
    // position 5, pair 0 rotates by angle 5 (inv_freq[0] = 1)
    const base = 2 * D;
    expect(y[base]).toBeCloseTo(x[base] * Math.cos(5) - x[base + D / 2] * Math.sin(5), 5);
    expect(y[base + D / 2]).toBeCloseTo(x[base + D / 2] * Math.cos(5) + x[base] * Math.sin(5), 5);
    applyRope(y, cos, sin, n, 2, D, true);
    for (let i = 0; i < x.length; i++) expect(y[i]).toBeCloseTo(x[i], 5);
  });

  it("cross-entropy ignores -100 targets and averages the rest", () => {
    const logits = Float32Array.from([0, 0, 0, 0, Math.log(3), 0]);
    const { loss, count } = crossEntropy(logits, [IGNORE_INDEX, 1], 2, 3);
    expect(count).toBe(1);
    expect(loss).toBeCloseTo(-Math.log(3 / 5), 6);
  });

  it("weighted cross-entropy is the weighted mean, and its gradient matches finite differences", () => {
    const rng = new Rng(3);
    const logits = Float32Array.from({ length: 4 * 5 }, () => rng.normal());
    const targets = [2, IGNORE_INDEX, 0, 4];
    const weights = [3, 7, 1, 0.5];
    const per = (t: number) => crossEntropy(logits.subarray(t * 5, t * 5 + 5), [targets[t]], 1, 5).loss;
    const { loss, count } = crossEntropy(logits, targets, 4, 5, undefined, weights);
    expect(count).toBeCloseTo(4.5, 6); // the ignored token's weight does not count
    expect(loss).toBeCloseTo((3 * per(0) + per(2) + 0.5 * per(3)) / 4.5, 6);
    const d = new Float32Array(logits.length);
    crossEntropy(logits, targets, 4, 5, d, weights);
    const eps = 1e-3;
    for (const i of [0, 3, 7, 10, 14, 19]) {
      const x = logits[i];
      logits[i] = x + eps;
      const p = crossEntropy(logits, targets, 4, 5, undefined, weights).loss;
      logits[i] = x - eps;
      const m = crossEntropy(logits, targets, 4, 5, undefined, weights).loss;
      logits[i] = x;
      expect(d[i]).toBeCloseTo((p - m) / (2 * eps), 3);
    }
    // Weights of 1 are the unweighted loss.
    expect(crossEntropy(logits, targets, 4, 5, undefined, [1, 1, 1, 1]).loss).toBeCloseTo(
      crossEntropy(logits, targets, 4, 5).loss,
      6,
    );
  });
});

/**
 * Finite-difference gradient check of every parameter tensor. The forward runs in float32 (accumulations in
 * float64), so a central difference with eps 1e-2 has ~1e-5 noise; we check (a) the directional derivative
 * along a random unit direction of each tensor and (b) a few individual entries, including the largest.
 */
function gradCheck(model: Qwen3Model, tokens: number[], targets: Int32Array, pattern: CompactAttentionPattern) {
  const { loss, grads } = model.lossAndGrad(tokens, targets, pattern);
  expect(Number.isFinite(loss)).toBe(true);
  const f = () => model.loss(tokens, targets, pattern);
  const eps = 1e-2;
  const rng = new Rng(11);
  const worst = { dir: 0, entry: 0 };
  for (const [name] of parameterShapes(model.config)) {
    const w = model.params.get(name) as Float32Array;
    const g = grads.get(name) as Float32Array;
    // (a) random direction
    const u = Float32Array.from({ length: w.length }, () => rng.normal());
    let norm = 0;
    for (const x of u) norm += x * x;
    norm = Math.sqrt(norm);
    let analytic = 0;
    for (let i = 0; i < w.length; i++) {
      u[i] /= norm;
      analytic += g[i] * u[i];
    }
    const saved = Float32Array.from(w);
    for (let i = 0; i < w.length; i++) w[i] = saved[i] + eps * u[i];
    const lp = f();
    for (let i = 0; i < w.length; i++) w[i] = saved[i] - eps * u[i];
    const lm = f();
    w.set(saved);
    const numeric = (lp - lm) / (2 * eps);
    const err = Math.abs(numeric - analytic) / Math.max(1e-3, Math.abs(numeric) + Math.abs(analytic));
    worst.dir = Math.max(worst.dir, err);
    expect(err, `${name}: directional ${analytic} vs ${numeric}`).toBeLessThan(2e-2);
    // (b) entries: the largest gradient and two random ones
    let imax = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[imax])) imax = i;
    for (const i of [imax, rng.int(w.length), rng.int(w.length)]) {
      const x0 = w[i];
      w[i] = x0 + eps;
      const p = f();
      w[i] = x0 - eps;
      const m = f();
      w[i] = x0;
      const num = (p - m) / (2 * eps);
      const e = Math.abs(num - g[i]) / Math.max(1e-3, Math.abs(num) + Math.abs(g[i]));
      worst.entry = Math.max(worst.entry, e);
      expect(e, `${name}[${i}]: ${g[i]} vs ${num}`).toBeLessThan(2e-2);
    }
  }
  return worst;
}

describe("backward", () => {
  // A Memento stream: prompt "xx", then blocks with mementos; markers use ids 101..104.
  const base = stream("xxSxxxExMxxNSxxxxEMxNSxxExMxxNxx");
  const rng = new Rng(5);
  const tokens = base.map((t) => (t === 7 ? rng.int(100) : t));
  const targets = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) targets[i] = i < 2 || i + 1 === tokens.length ? IGNORE_INDEX : tokens[i + 1];
  const memento = mementoPattern(tokens, 2, IDS, resolveMasking({ keepLastNBlocks: 0 }));
  const restart = mementoPattern(tokens, 2, IDS, resolveMasking({ keepLastNBlocks: 0, restartMode: true }));
  const cases: Array<[string, boolean, CompactAttentionPattern]> = [
    ["causal, untied head", false, causalPattern(tokens.length)],
    ["memento, untied head", false, memento],
    ["memento, tied head", true, memento],
    ["restart-mode memento, untied head", false, restart],
  ];
  for (const [label, tied, pattern] of cases) {
    it(`finite differences match every parameter's gradient (${label})`, () => {
      const model = Qwen3Model.random(tinyConfig(tied), { seed: 7, std: 0.4, normJitter: 0.3 });
      const worst = gradCheck(model, tokens, targets, pattern);
      // Measured worst relative errors: ~1e-3 directional, ~6e-3 single entry.
      expect(worst.dir).toBeLessThan(5e-3);
      expect(worst.entry).toBeLessThan(2e-2);
    });
  }

  it("the memento pattern really changes the loss (masking reaches the attention)", () => {
    const model = Qwen3Model.random(tinyConfig(false), { seed: 7, std: 0.4 });
    expect(
      Math.abs(model.loss(tokens, targets, memento) - model.loss(tokens, targets, causalPattern(tokens.length))),
    ).toBeGreaterThan(1e-4);
  });
});
