import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdamW, clipGradNorm, cosineLr } from "../src/train/optim.js";
import { batchIndices, train } from "../src/train/trainer.js";
import { Qwen3Model } from "../src/model/transformer.js";
import { toyConfig } from "../src/model/config.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { buildSftExample } from "../src/train/sft-data.js";
import { generateDataset } from "../src/train/toy-task.js";
import { toSequences, shiftLabels } from "../src/train/toy.js";
import { TINY_MODEL_CONFIG } from "./helpers/random-model.js";

describe("optimizer and schedule", () => {
  it("AdamW's first step moves each weight by lr against the gradient's sign (bias-corrected)", () => {
    const p = new Map([["w", Float32Array.from([1, -2, 3])]]);
    const g = new Map([["w", Float32Array.from([0.5, -0.1, 0])]]);
    new AdamW(p).step(p, g, 0.1);
    const w = p.get("w")!;
    expect(w[0]).toBeCloseTo(0.9, 5);
    expect(w[1]).toBeCloseTo(-1.9, 5);
    expect(w[2]).toBe(3);
  });
  it("clips the global norm", () => {
    const g = new Map([
      ["a", Float32Array.from([3, 0])],
      ["b", Float32Array.from([0, 4])],
    ]);
    expect(clipGradNorm(g, 1)).toBeCloseTo(5, 6);
    expect([...g.get("a")!, ...g.get("b")!].map((x) => +x.toFixed(6))).toEqual([0.6, 0, 0, 0.8]);
  });
  it("cosine schedule: linear warmup over 5%, peak, decays to 0", () => {
    expect(cosineLr(0, 100, 1)).toBeCloseTo(0.2, 9);
    expect(cosineLr(4, 100, 1)).toBeCloseTo(1, 9);
    expect(cosineLr(52, 100, 1)).toBeCloseTo(0.5, 1);
    expect(cosineLr(99, 100, 1)).toBeLessThan(0.01);
  });
  it("batches are a seeded permutation per epoch", () => {
    const all = [0, 1, 2, 3].flatMap((s) => batchIndices(10, 5, 3, 0, s));
    expect([...all.slice(0, 10)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(batchIndices(10, 5, 3, 0, 1)).toEqual(batchIndices(10, 5, 3, 0, 1));
    expect(batchIndices(10, 5, 4, 0, 1)).not.toEqual(batchIndices(10, 5, 3, 0, 1));
  });
  it("targets are the labels shifted by one", () => {
    expect([...shiftLabels(Int32Array.from([-100, -100, 5, 6, 7]))]).toEqual([-100, 5, 6, 7, -100]);
  });
});

describe("two-stage SFT trainer", () => {
  const tok = toyTokenizer();
  const config = toyConfig(TINY_MODEL_CONFIG);
  const examples = generateDataset(3, 24, { minBlocks: 1, maxBlocks: 2, stepsPerBlock: 3 }).map((d) =>
    buildSftExample(tok, d.prompt, d.response),
  );
  const stages = (s1: number, s2: number) => [
    { name: "stage1", sequences: toSequences(examples, 1, tok), steps: s1, lr: 1e-2 },
    { name: "stage2", sequences: toSequences(examples, 2, tok), steps: s2, lr: 3e-3 },
  ];

  it("lowers the loss, logs loss.csv and loss.svg, and a resumed run ends with the same weights as an uninterrupted one", async () => {
    const a = Qwen3Model.random(config, { seed: 5 });
    const dirA = mkdtempSync(join(tmpdir(), "train-a-"));
    const r = await train({
      model: a,
      stages: stages(30, 6),
      batchSize: 4,
      seed: 1,
      outDir: dirA,
      checkpointEvery: 100,
    });
    const rows = readFileSync(join(dirA, "loss.csv"), "utf8")
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.split(","));
    expect(rows).toHaveLength(36);
    const first = Number(rows[0][2]);
    const lastStage1 = Number(rows[29][2]);
    expect(lastStage1).toBeLessThan(first * 0.8);
    expect(existsSync(join(dirA, "loss.svg"))).toBe(true);
    expect(r.steps).toBe(36);

    // The same plan stopped after 7 steps (a checkpoint is left), then resumed by rerunning the same call.
    const dirB = mkdtempSync(join(tmpdir(), "train-b-"));
    const b1 = Qwen3Model.random(config, { seed: 5 });
    const part = await train({
      model: b1,
      stages: stages(30, 6),
      batchSize: 4,
      seed: 1,
      outDir: dirB,
      checkpointEvery: 100,
      stopAfterSteps: 7,
    });
    expect(part.stopped).toBe(true);
    expect(part.steps).toBe(7);
    const b2 = Qwen3Model.random(config, { seed: 99 }); // its weights come from the checkpoint
    const rest = await train({
      model: b2,
      stages: stages(30, 6),
      batchSize: 4,
      seed: 1,
      outDir: dirB,
      checkpointEvery: 100,
    });
    expect(rest.steps).toBe(29);
    for (const [name, p] of a.params) expect(b2.params.get(name), name).toEqual(p);
    // The loss log is continuous across the interruption: same steps, same losses (timings aside).
    const cols = (d: string) =>
      readFileSync(join(d, "loss.csv"), "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(",").slice(0, 6).join(","));
    expect(cols(dirB)).toEqual(cols(dirA));
  });
});
