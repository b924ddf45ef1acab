/**
 * The RL stage's objective and its plumbing: CISPO's gradient against finite differences, the clip at its
 * boundaries, group advantages, and the engine's recorded log pi_old against the trainer's forward under the
 * rollout's Stage-2 mask.
 */
import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { resolveMasking } from "../src/masking/config.js";
import { mementoPattern } from "../src/masking/masks.js";
import { parseQwen3Config } from "../src/model/config.js";
import { loadModel } from "../src/model/index.js";
import { Qwen3Model } from "../src/model/transformer.js";
import { Rng } from "../src/model/ops.js";
import { groupAdvantages } from "../src/rl/advantages.js";
import { cispoGrad, cispoTokenTerms, completionLogprobs, type RolloutSample } from "../src/rl/cispo.js";
import { generateRollouts } from "../src/rl/engine-rollouts.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { stagePattern, trackerIdsOf } from "../src/train/sft-data.js";
import { generateHeldOut } from "../src/train/toy-task.js";
import { IDS, stream } from "./helpers/stream.js";
import { repoRoot } from "./helpers/reference.js";

function tinyModel(seed: number): Qwen3Model {
  const config = parseQwen3Config({
    vocab_size: 108,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 4,
    rope_theta: 100,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
  });
  return Qwen3Model.random(config, { seed, std: 0.4, normJitter: 0.3 });
}

/** A Memento stream (prompt "xx", two blocks with mementos) with random content tokens. */
function sampleFor(model: Qwen3Model, ref: Qwen3Model, advantage: number, oldShift: number[]): RolloutSample {
  const rng = new Rng(5);
  const ids = Int32Array.from(stream("xxSxxxExMxxNSxxxxEMxNxx").map((t) => (t === 7 ? rng.int(100) : t)));
  const P = 2;
  const pattern = mementoPattern(ids, P, IDS, resolveMasking({ keepLastNBlocks: 0 }));
  const now = completionLogprobs(model, ids, P, pattern);
  // pi_old a little off the current policy, so ratios spread on both sides of the clip.
  const oldLogprobs = now.map((lp, j) => lp - oldShift[j % oldShift.length]);
  const counted = new Uint8Array(now.length).fill(1);
  counted[3] = 0; // a forced token: no loss
  return {
    ids,
    promptLength: P,
    pattern,
    oldLogprobs,
    refLogprobs: completionLogprobs(ref, ids, P, pattern),
    counted,
    advantage,
  };
}

describe("CISPO", () => {
  it("its gradient equals finite differences of the objective with the ratio weights frozen (stop-gradient)", () => {
    const model = tinyModel(7);
    const ref = tinyModel(8);
    // Ratios exp(shift): 0.5 and 1.5 are clipped, 1.1 and 0.9 are inside.
    const sample = sampleFor(model, ref, -0.7, [Math.log(0.5), Math.log(1.1), Math.log(1.5), Math.log(0.9)]);
    const opts = { epsLow: 0.2, epsHigh: 0.2, beta: 0.05 };
    const N = 30;
    const { grads, stats } = cispoGrad(model, sample, N, opts);
    expect(stats.clipped).toBeGreaterThan(0);
    expect(stats.clipped).toBeLessThan(stats.tokens);
    // The weights at theta_0, then held fixed: L(theta) = (1/N) sum_t [-w_t A lp_t(theta) + beta KL_t(theta)].
    const term0 = cispoTokenTerms(sample, opts);
    const lp0 = completionLogprobs(model, sample.ids, sample.promptLength, sample.pattern);
    const w0 = Array.from(lp0, (lp, j) => term0(j, lp).w);
    const objective = () => {
      const lp = completionLogprobs(model, sample.ids, sample.promptLength, sample.pattern);
      let sum = 0;
      for (let j = 0; j < lp.length; j++) {
        if (!sample.counted[j]) continue;
        const lr = (sample.refLogprobs as Float32Array)[j] - lp[j];
        sum += -w0[j] * sample.advantage * lp[j] + opts.beta * (Math.exp(lr) - lr - 1);
      }
      return sum / N;
    };
    const eps = 1e-2;
    const rng = new Rng(3);
    let worst = 0;
    for (const [name, w] of model.params) {
      const g = grads.get(name) as Float32Array;
      const u = Float32Array.from({ length: w.length }, () => rng.normal());
      const norm = Math.hypot(...u);
      let analytic = 0;
      for (let i = 0; i < w.length; i++) analytic += (g[i] * u[i]) / norm;
      const saved = Float32Array.from(w);
      for (let i = 0; i < w.length; i++) w[i] = saved[i] + (eps * u[i]) / norm;
      const up = objective();
      for (let i = 0; i < w.length; i++) w[i] = saved[i] - (eps * u[i]) / norm;
      const down = objective();
      w.set(saved);
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(numeric - analytic) / Math.max(1e-4, Math.abs(numeric) + Math.abs(analytic));
      worst = Math.max(worst, err);
      expect(err, `${name}: ${analytic} vs ${numeric}`).toBeLessThan(2e-2);
    }
    expect(worst).toBeLessThan(1e-2);
  });

  it("clips the ratio weight at 1 - epsLow and 1 + epsHigh, and never zeroes the token's gradient", () => {
    const s = { oldLogprobs: Float32Array.of(0, 0, 0, 0, 0), advantage: 2 };
    const term = cispoTokenTerms(s, { epsLow: 0.2, epsHigh: 0.3, beta: 0 });
    // ratio 3 (far above): weight 1.3; ratio 0.1 (far below): weight 0.8; both still move lp.
    expect(term(0, Math.log(3)).w).toBeCloseTo(1.3, 12);
    expect(term(0, Math.log(3)).dLossDLogprob).toBeCloseTo(-1.3 * 2, 12);
    expect(term(0, Math.log(3)).clipped).toBe(true);
    expect(term(0, Math.log(0.1)).w).toBeCloseTo(0.8, 12);
    expect(term(0, Math.log(0.1)).dLossDLogprob).toBeCloseTo(-0.8 * 2, 12);
    // Exactly at the boundaries: not counted as clipped, weight = the ratio.
    expect(term(0, Math.log(1.3)).clipped).toBe(false);
    expect(term(0, Math.log(1.3)).w).toBeCloseTo(1.3, 12);
    expect(term(0, Math.log(0.8)).clipped).toBe(false);
    // Inside: the ratio itself.
    expect(term(0, Math.log(1.1)).w).toBeCloseTo(1.1, 12);
    // A negative advantage pushes lp down with the same bounded weight (PPO would drop this token's gradient).
    const neg = cispoTokenTerms({ ...s, advantage: -1 }, { epsLow: 0.2, epsHigh: 0.2, beta: 0 });
    expect(neg(0, Math.log(5)).dLossDLogprob).toBeCloseTo(1.2, 12);
  });

  it("the KL term is k3: zero with zero gradient at the reference, positive away from it", () => {
    const term = cispoTokenTerms(
      { oldLogprobs: Float32Array.of(-1), refLogprobs: Float32Array.of(-1), advantage: 0 },
      { epsLow: 0.2, epsHigh: 0.2, beta: 0.5 },
    );
    expect(term(0, -1).kl).toBe(0);
    expect(term(0, -1).dLossDLogprob).toBe(0);
    expect(term(0, -0.5).kl).toBeGreaterThan(0);
    expect(term(0, -1.5).kl).toBeGreaterThan(0);
    // Above the reference the penalty pushes lp down (positive d loss / d lp), below it up.
    expect(term(0, -0.5).dLossDLogprob).toBeGreaterThan(0);
    expect(term(0, -1.5).dLossDLogprob).toBeLessThan(0);
  });

  it("forced tokens carry no gradient: zeroing every counted token leaves all gradients zero", () => {
    const model = tinyModel(7);
    const sample = sampleFor(model, model, 1, [0.3]);
    sample.counted.fill(0);
    const { grads, stats } = cispoGrad(model, sample, 10, { epsLow: 0.2, epsHigh: 0.2, beta: 0.1 });
    expect(stats.tokens).toBe(0);
    for (const g of grads.values()) expect(g.every((x) => x === 0)).toBe(true);
  });
});

describe("group advantages", () => {
  it("a group with equal rewards has advantage exactly zero (both scales)", () => {
    expect(groupAdvantages([1, 1, 1, 1])).toEqual([0, 0, 0, 0]);
    expect(groupAdvantages([0.3, 0.3, 0.3], "none")).toEqual([0, 0, 0]);
    expect(groupAdvantages([0.1 + 0.2, 0.3, 0.30000000000000004])).toEqual([0, 0, 0]);
  });

  it("centres on the group mean and divides by its std (GRPO), or only centres (none)", () => {
    const a = groupAdvantages([1, 0, 0, 0]);
    expect(a.reduce((x, y) => x + y, 0)).toBeCloseTo(0, 9);
    // mean 0.25, population std sqrt(3)/4.
    expect(a[0]).toBeCloseTo(0.75 / (Math.sqrt(3) / 4), 4);
    expect(groupAdvantages([1, 0, 0, 0], "none")).toEqual([0.75, -0.25, -0.25, -0.25]);
  });

  it("refuses a reward that is not a finite number", () => {
    expect(() => groupAdvantages([1, Number.NaN])).toThrow(/finite/);
  });
});

const bundled = join(repoRoot, "models", "toy");

describe.skipIf(!existsSync(join(bundled, "model.safetensors")))("engine log pi_old vs the trainer", () => {
  it("the engine's recorded log-probabilities equal the trainer's forward under the rollout's Stage-2 mask (1e-4)", async () => {
    const model = loadModel(bundled);
    const tok = toyTokenizer();
    // Two blocks and their mementos fit in 200 tokens: the engine evicts the first block before the end.
    const items = generateHeldOut(2, { minBlocks: 4, maxBlocks: 4 });
    const groups = await generateRollouts(model, tok, items, 2, {
      temperature: 1,
      seed: 3,
      step: 0,
      maxTokens: 200,
      masking: { maxBlockTokens: 40 },
    });
    let compared = 0;
    let forced = 0;
    let evicted = 0;
    let worst = 0;
    for (const r of groups.flat()) {
      const ids = Int32Array.from([...r.promptIds, ...r.completionIds]);
      const pattern = stagePattern({ ids, promptLength: r.promptIds.length }, 2, trackerIdsOf(tok));
      const lp = completionLogprobs(model, ids, r.promptIds.length, pattern);
      expect(r.logprobs.length).toBe(r.completionIds.length);
      for (let j = 0; j < lp.length; j++) {
        worst = Math.max(worst, Math.abs(lp[j] - r.logprobs[j]));
        compared++;
      }
      forced += r.forced.length;
      for (const f of r.forced) expect(r.completionIds[f]).toBe(tok.specialTokens.blockEnd);
      if (pattern.visibleUntil.some((v) => v < ids.length)) evicted++;
    }
    // Masks that are not causal: blocks were evicted while these rollouts were generated.
    expect(evicted).toBeGreaterThan(0);
    // A 40-token cap on 59-token blocks forces block ends, which rollouts mark.
    expect(forced).toBeGreaterThan(0);
    expect(compared).toBeGreaterThan(400);
    expect(worst).toBeLessThan(1e-4);
    console.log(
      `engine vs trainer: ${compared} tokens, ${evicted}/4 rollouts with evictions, ${forced} forced, worst |diff| ${worst.toExponential(2)}`,
    );
  });
});
