/**
 * The RL loop (`trainRl`) end to end on a tiny model: it updates the weights, logs what it did, resumes
 * bitwise-exactly from its checkpoint, and refuses to resume with other options.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toyConfig } from "../src/model/config.js";
import { saveModel } from "../src/model/index.js";
import { Qwen3Model } from "../src/model/transformer.js";
import { DEFAULT_RL_OPTIONS, trainRl, type RlMetric, type RlTrainOptions } from "../src/rl/train-rl.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { UserError } from "../src/errors.js";
import { ONE_LAYER_CONFIG } from "./helpers/random-model.js";

function startCheckpoint(): string {
  const dir = mkdtempSync(join(tmpdir(), "rl-start-"));
  const tok = toyTokenizer();
  // The tokenizer's size exactly: a random model would sample the padding ids a trained one never does.
  const config = toyConfig({ ...ONE_LAYER_CONFIG, vocab_size: tok.vocabSize });
  saveModel(dir, Qwen3Model.random(config, { seed: 3, std: 0.5 }));
  return dir;
}

/** A reward a random model's samples differ on: the share of digits among the characters it wrote. */
const digitShare = (_item: unknown, text: string) =>
  text.length ? (text.match(/[0-9]/g)?.length ?? 0) / text.length : 0;

function options(startDir: string, outDir: string, over: Partial<RlTrainOptions> = {}): RlTrainOptions {
  return {
    ...DEFAULT_RL_OPTIONS,
    startDir,
    outDir,
    steps: 3,
    prompts: 2,
    group: 3,
    minibatches: 2,
    lr: 3e-2,
    warmupUpdates: 1,
    cispo: { epsLow: 0.2, epsHigh: 0.2, beta: 0.01 },
    trainProblems: 4,
    valEvery: 2,
    valProblems: 2,
    valSamples: 2,
    workers: 1,
    maxTokens: 10,
    reward: digitShare,
    ...over,
  };
}

const withoutTimes = (m: RlMetric) => {
  const {
    rolloutSeconds: _a,
    trainSeconds: _b,
    ...rest
  } = m as RlMetric & { rolloutSeconds?: number; trainSeconds?: number };
  return rest;
};
const metrics = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => withoutTimes(JSON.parse(l) as RlMetric));

describe("trainRl", () => {
  const start = startCheckpoint();

  it("trains, logs every step and validation, and a stopped run resumed is bitwise the straight run", async () => {
    const straight = mkdtempSync(join(tmpdir(), "rl-a-"));
    const a = await trainRl(options(start, straight));
    expect(a.stopped).toBe(false);
    // val at steps 0 and 2 and at the end (3); three train steps.
    expect(a.report.val.map((v) => v.step)).toEqual([0, 2, 3]);
    expect(a.report.train.map((t) => t.step)).toEqual([0, 1, 2]);
    expect(a.report.train.some((t) => t.trainedGroups > 0)).toBe(true);
    // After the first update the policy has moved away from the reference.
    expect(a.report.train[2].kl).toBeGreaterThan(0);
    const w0 = readFileSync(join(start, "model.safetensors"));
    const w1 = readFileSync(join(straight, "model", "model.safetensors"));
    expect(w1.equals(w0)).toBe(false);

    const resumed = mkdtempSync(join(tmpdir(), "rl-b-"));
    const first = await trainRl(options(start, resumed, { stopAfterSteps: 1 }));
    expect(first.stopped).toBe(true);
    const second = await trainRl(options(start, resumed, { stopAfterSteps: 1 }));
    expect(second.stopped).toBe(true);
    const third = await trainRl(options(start, resumed));
    expect(third.stopped).toBe(false);
    expect(readFileSync(join(resumed, "model", "model.safetensors")).equals(w1)).toBe(true);
    expect(metrics(resumed)).toEqual(metrics(straight));
  }, 120_000);

  it("refuses to resume with options that change the weights, naming them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rl-c-"));
    await trainRl(options(start, dir, { stopAfterSteps: 1 }));
    await expect(trainRl(options(start, dir, { lr: 1e-3 }))).rejects.toThrow(UserError);
    await expect(trainRl(options(start, dir, { lr: 1e-3 }))).rejects.toThrow(/--lr/);
  }, 60_000);

  it("refuses bad options in one line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rl-d-"));
    await expect(trainRl(options(start, dir, { minibatches: 3 }))).rejects.toThrow(
      /--minibatches 3 exceeds --prompts 2/,
    );
    await expect(trainRl(options(start, dir, { group: 1 }))).rejects.toThrow(/--group/);
    await expect(trainRl(options("/nonexistent", dir))).rejects.toThrow(/not a model directory/);
  });
});
