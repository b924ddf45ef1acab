import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Qwen3Model } from "../src/model/transformer.js";
import { toyConfig } from "../src/model/config.js";
import { saveModel } from "../src/model/index.js";
import { evaluateBundledModel, runModelDemo } from "../src/demo/model-demo.js";
import { TINY_MODEL_CONFIG } from "./helpers/random-model.js";

describe("model demo", () => {
  const config = toyConfig({ ...TINY_MODEL_CONFIG, num_hidden_layers: 1 });
  const dir = mkdtempSync(join(tmpdir(), "model-demo-"));
  saveModel(dir, Qwen3Model.random(config, { seed: 3 }));

  it("runs a model on a handful of held-out problems and reports answers, accuracy and KV in both modes", () => {
    const text = runModelDemo({ dir, problems: 2 });
    expect(text).toMatch(/^Bundled model/);
    expect(text).toContain("Problem 2: ");
    expect(text.match(/ {2}answer .*: (correct|wrong); mementos right \d+\/\d+/g)).toHaveLength(2);
    expect(text).toMatch(
      /Accuracy: \d\/2 with block masking, \d\/2 with full attention\. Mean peak KV: [\d.]+ vs [\d.]+ tokens/,
    );
  });

  it("--json evaluation reports both modes and checks the targets it states", () => {
    const r = evaluateBundledModel({ dir, problems: 2 });
    expect(r.problems).toBe(2);
    expect([r.accuracyMasked, r.accuracyFull]).toEqual([r.masked.accuracy, r.fullAttention.accuracy]);
    expect(r.targets.peakKvAtLeast2x).toBe(r.peakKvReduction >= 2);
    expect(r.targets.accuracyWithin5Points).toBe(Math.abs(r.accuracyDeltaPoints) <= 5);
    expect(r.fullAttention.meanPeakKvTokens).toBeGreaterThan(0);
    expect(Object.keys(r.tokenAccuracy)).toEqual(["format", "a", "b", "sum", "memento", "answer"]);
    expect(r.tokenAccuracy.sum.tokens).toBeGreaterThan(0);
  });
});
