import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ProbeMlp, type ProbeDataset } from "../src/analyze/probe-mlp.js";
import { wilsonInterval } from "../src/analyze/probe-stats.js";
import { probeAccuracy, probeSamples } from "../src/analyze/probe.js";
import {
  MEMENTO_TOKENS,
  PROBE_DIGITS,
  PROBE_TOKENS,
  probePattern,
  probeSequence,
  probeTrainSequence,
} from "../src/analyze/probe-task.js";
import { isVisible } from "../src/masking/masks.js";
import { makeRng } from "../src/train/toy-task.js";
import { runInProcess as run } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const dir = tempDir("memento-probe-");

/** Features [n, dim] of uniform noise; digit h of a row adds `strength` to feature 10 h + digit (a planted code). */
function planted(n: number, strength: number, seed: number, given?: Int32Array): ProbeDataset {
  const rng = makeRng(seed);
  const dim = 60;
  const labels = given ?? new Int32Array(n * PROBE_DIGITS);
  const features = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    if (!given) for (let h = 0; h < PROBE_DIGITS; h++) labels[i * PROBE_DIGITS + h] = Math.floor(rng() * 10);
    for (let j = 0; j < dim; j++) features[i * dim + j] = rng() * 2 - 1;
    for (let h = 0; h < PROBE_DIGITS; h++) features[i * dim + 10 * h + labels[i * PROBE_DIGITS + h]] += strength;
  }
  return { n, dim, features, heads: PROBE_DIGITS, labels };
}

const FAST = { hidden: [32], epochs: 20, lr: 3e-3, batchSize: 32 };

describe("probe MLP", () => {
  it("recovers a planted signal on held-out rows", () => {
    const probe = ProbeMlp.fit(planted(1500, 2, 1), FAST);
    const { correct, total } = probe.score(planted(500, 2, 2));
    expect(correct / total).toBeGreaterThan(0.6);
  });

  it("stays at chance on shuffled labels (the interval contains 10%)", () => {
    const train = planted(1500, 1.5, 3);
    const rng = makeRng(9);
    // Labels drawn afresh: the features carry nothing about them.
    for (let i = 0; i < train.labels.length; i++) train.labels[i] = Math.floor(rng() * 10);
    const test = planted(1000, 1.5, 4);
    for (let i = 0; i < test.labels.length; i++) test.labels[i] = Math.floor(rng() * 10);
    const { correct, total } = ProbeMlp.fit(train, FAST).score(test);
    const [lo, hi] = wilsonInterval(correct, total);
    expect(lo).toBeLessThan(0.1);
    expect(hi).toBeGreaterThan(0.1);
  });
});

describe("Wilson interval", () => {
  it("matches the closed form at 20 of 100 and stays inside [0, 1]", () => {
    const [lo, hi] = wilsonInterval(20, 100);
    expect(lo).toBeCloseTo(0.1333, 3);
    expect(hi).toBeCloseTo(0.2888, 3);
    expect(wilsonInterval(0, 10)[0]).toBe(0);
    expect(wilsonInterval(10, 10)[1]).toBe(1);
  });
});

describe("probe task", () => {
  it("each block is five digits, = and the running sum, and its memento restates the sum", () => {
    const seq = probeSequence([
      [9, 9, 9, 9, 9],
      [1, 2, 3, 4, 5],
    ]);
    const T = PROBE_TOKENS;
    // prettier-ignore
    expect(Array.from(seq.ids)).toEqual([
      T.bos,
      T.blockStart,
      9,
      9,
      9,
      9,
      9,
      T.eq,
      0,
      4,
      5,
      T.blockEnd,
      T.summaryStart,
      0,
      4,
      5,
      T.summaryEnd,
      T.blockStart,
      1,
      2,
      3,
      4,
      5,
      T.eq,
      0,
      6,
      0,
      T.blockEnd,
      T.summaryStart,
      0,
      6,
      0,
      T.summaryEnd,
    ]);
    expect(seq.mementoStart).toEqual([12, 28]);
  });

  it("a memento sees its own block and the next memento does not (keep-last-0)", () => {
    const seq = probeSequence([
      [1, 1, 1, 1, 1],
      [2, 2, 2, 2, 2],
      [3, 3, 3, 3, 3],
    ]);
    const p = probePattern(seq.ids);
    const firstDigitOfBlock1 = seq.mementoStart[0] + MEMENTO_TOKENS + 1;
    const lastOfMemento1 = seq.mementoStart[1] + MEMENTO_TOKENS - 1;
    expect(isVisible(p, lastOfMemento1, firstDigitOfBlock1)).toBe(true);
    expect(isVisible(p, seq.mementoStart[2], firstDigitOfBlock1)).toBe(false);
    // The memento of block 1 stays visible to everything after it.
    expect(isVisible(p, seq.ids.length - 1, seq.mementoStart[1] + 1)).toBe(true);
  });

  it("puts no loss on the random digits", () => {
    const seq = probeSequence([[4, 4, 4, 4, 4]]);
    const t = probeTrainSequence(seq);
    // targets[i] predicts token i + 1; tokens 2..6 are the random digits.
    expect(Array.from(t.targets.subarray(1, 6))).toEqual([-100, -100, -100, -100, -100]);
    expect(t.targets[6]).toBe(PROBE_TOKENS.eq);
  });

  it("splits probe samples label-unique: no passcode is in both the training and the test set", () => {
    const s = probeSamples(2000, 5, 4);
    const code = (i: number) => Array.from(s.labels.subarray(i * PROBE_DIGITS, (i + 1) * PROBE_DIGITS)).join("");
    const train = new Set(s.test.flatMap((t, i) => (t ? [] : [code(i)])));
    const test = s.test.flatMap((t, i) => (t ? [code(i)] : []));
    expect(test.length).toBeGreaterThan(200);
    for (const c of test) expect(train.has(c)).toBe(false);
  });

  it("probeAccuracy trains on the training split and scores the test split, with its interval", () => {
    const s = probeSamples(1500, 6, 2);
    const data = planted(1500, 2, 7, s.labels);
    const acc = probeAccuracy(data.features, s, FAST);
    expect(acc.total).toBe(s.test.filter(Boolean).length * PROBE_DIGITS);
    expect(acc.ci95[0]).toBeGreaterThan(0.5);
    expect(acc.ci95[0]).toBeLessThan(acc.accuracy);
    expect(acc.ci95[1]).toBeGreaterThan(acc.accuracy);
  });
});

describe("memento analyze probe --quick", () => {
  it("prints one JSON object with every figure of Figure 13 and writes the page", async () => {
    const out = join(dir, "quick");
    const r = await run(["analyze", "probe", "--quick", "--out", out, "--json"]);
    expect(r.err).not.toMatch(/memento: /);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.chance).toBe(0.1);
    for (const name of ["direct", "masked", "causal"]) {
      const c = report[name];
      expect(c.samples).toBeGreaterThan(0);
      expect(c.byLayer.map((a: { layer: number }) => a.layer)).toEqual([1, 2]);
      for (const a of c.byLayer) {
        expect(a.ci95[0]).toBeLessThanOrEqual(a.accuracy);
        expect(a.ci95[1]).toBeGreaterThanOrEqual(a.accuracy);
      }
    }
    expect(report.maskedByDistance.map((d: { distance: number }) => d.distance)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(report.maskedByCheckpoint.map((c: { step: number }) => c.step)).toEqual([3, 6]);
    for (const c of report.maskedByCheckpoint) expect(c.taskAccuracy).toBeGreaterThanOrEqual(0);
    const html = readFileSync(join(out, "probe.html"), "utf8");
    expect(html.match(/<svg/g)?.length).toBe(3);
    expect(html).not.toMatch(/<script|src="http/);
    expect(existsSync(join(out, "probe.json"))).toBe(true);
  }, 120_000);

  it("refuses a bad --samples in one line", async () => {
    const r = await run(["analyze", "probe", "--quick", "--samples", "3", "--out", join(dir, "bad")]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^memento: .*--samples/);
  });
});
