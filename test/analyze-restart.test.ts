import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import {
  ABLATION_MODES,
  CONTROL_MODES,
  generateUnderMode,
  modeSpec,
  type AblationMode,
  type AblationProblem,
  type AblationTaskTokens,
} from "../src/analyze/restart-generate.js";
import { effectiveSampleSize, estimateAccuracy, pairedDelta, signTestP } from "../src/analyze/restart-stats.js";
import { wilsonInterval } from "../src/analyze/probe-stats.js";
import { sampleSeed } from "../src/analyze/restart.js";
import { probeAblationTask } from "../src/analyze/restart-probe.js";
import { bundledProbeModelDir } from "../src/analyze/probe-run.js";
import { loadProbeModel } from "../src/analyze/probe-task.js";
import { causalPattern, mementoPattern, type CompactAttentionPattern } from "../src/masking/masks.js";
import { parseQwen3Config } from "../src/model/config.js";
import { argmax } from "../src/engine/sampling.js";
import { Qwen3Model } from "../src/model/transformer.js";
import { repoRoot } from "./helpers/reference.js";
import { IDS } from "./helpers/stream.js";

const run = promisify(execFile);

/**
 * A synthetic task on a random model: the completion's layout is forced, three blocks of
 *
 *   index   0    1 2   3    4    5 6   7    8
 *           bs   F F   be   ss   7 8   se   F          (F: the model's greedy choice)
 *
 * then two free tokens. Memento contents are forced so that every free token is chosen from logits the full
 * forward can reproduce under the mode's attention pattern: a free token right after `se` comes from the
 * recomputed `se` row in the recomputing modes.
 */
const PROMPT = [1, 2, 3, 4, 5];
const LAYOUT: (number | null)[] = [
  IDS.blockStart,
  null,
  null,
  IDS.blockEnd,
  IDS.summaryStart,
  7,
  8,
  IDS.summaryEnd,
  null,
];
const BLOCKS = 3;
const MAX_TOKENS = LAYOUT.length * BLOCKS + 2;
const MEMENTO_ROWS = 4;

const TASK: AblationTaskTokens = { trackerIds: IDS, stopIds: [], requireAssistantSection: false };
const PROBLEM: AblationProblem = {
  id: "synthetic",
  promptIds: PROMPT,
  maxTokens: MAX_TOKENS,
  forcedToken: (c) => (c.length < LAYOUT.length * BLOCKS ? (LAYOUT[c.length % LAYOUT.length] ?? undefined) : undefined),
  isCorrect: () => true,
};

function model(seed: number): Qwen3Model {
  const config = parseQwen3Config({
    vocab_size: 110,
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 6,
    rope_theta: 1000,
  });
  return Qwen3Model.random(config, { seed, std: 0.3, normJitter: 0.2 });
}

/** The attention pattern a mode's decoding realises over the whole stream (rows of recomputed mementos hide the block). */
function patternOf(mode: AblationMode, tokens: number[]): CompactAttentionPattern {
  const { masking } = modeSpec(mode, false);
  if (!masking) return causalPattern(tokens.length);
  const pattern = mementoPattern(tokens, PROMPT.length, IDS, masking);
  if (mode === "restartKeepDelimiters") {
    // Memento rows see the cache as it is after their trigger: delimiters kept, content gone.
    for (let b = 0; b < BLOCKS; b++) {
      const trigger = PROMPT.length + b * LAYOUT.length + 7;
      for (let q = trigger - MEMENTO_ROWS + 1; q <= trigger; q++) pattern.viewAt[q] = trigger + 1;
    }
  }
  return pattern;
}

describe("restart ablation: generation under each mode", () => {
  const greedy = { temperature: 0, topP: 1, topK: 0, seed: 0 };
  const modes: AblationMode[] = [...ABLATION_MODES, ...CONTROL_MODES];

  it("each mode's greedy tokens are the argmax of a full forward under that mode's attention pattern", () => {
    let restartDiffers = false;
    for (const seed of [1, 2, 3]) {
      const m = model(seed);
      const chosen = new Map<AblationMode, number[]>();
      for (const mode of modes) {
        const r = generateUnderMode(m, TASK, PROBLEM, mode, greedy);
        expect(r.completion).toHaveLength(MAX_TOKENS);
        const tokens = [...PROMPT, ...r.completion];
        const { logits } = m.forward(tokens, patternOf(mode, tokens));
        const V = m.vocab;
        r.completion.forEach((t, c) => {
          if (PROBLEM.forcedToken?.(r.completion.slice(0, c)) !== undefined) return;
          const row = PROMPT.length + c - 1;
          expect(t, `${mode}, seed ${seed}, completion token ${c}`).toBe(
            argmax(logits.subarray(row * V, (row + 1) * V)),
          );
        });
        chosen.set(mode, r.completion);
      }
      if (chosen.get("restart")?.join() !== chosen.get("memento")?.join()) restartDiffers = true;
    }
    // Not vacuous: without its block, a recomputed memento changes what the model picks next.
    expect(restartDiffers).toBe(true);
  });

  it("the recomputing modes recompute every memento row, the others none; peak KV is ordered full > memento > restart", () => {
    const m = model(4);
    const r = Object.fromEntries(modes.map((mode) => [mode, generateUnderMode(m, TASK, PROBLEM, mode, greedy)]));
    expect(r.restart.recomputedTokens).toBe(BLOCKS * MEMENTO_ROWS);
    expect(r.restartKeepDelimiters.recomputedTokens).toBe(BLOCKS * MEMENTO_ROWS);
    for (const mode of ["memento", "full", "mementoMaskDelimiters"]) expect(r[mode].recomputedTokens).toBe(0);
    expect(r.full.peakKvTokens).toBe(PROMPT.length + MAX_TOKENS);
    // Restart evicts the delimiters too: two fewer resident tokens per evicted block than memento attention.
    expect(r.memento.peakKvTokens).toBeLessThan(r.full.peakKvTokens);
    expect(r.restart.peakKvTokens).toBeLessThan(r.memento.peakKvTokens);
    expect(r.restart.evictions).toBe(BLOCKS);
  });

  it("sampling: the same seed gives the same tokens; the seed of a sample depends on problem and sample", () => {
    const m = model(5);
    const sampled = { temperature: 1, topP: 1, topK: 0, seed: 42 };
    const a = generateUnderMode(m, TASK, PROBLEM, "memento", sampled);
    const b = generateUnderMode(m, TASK, PROBLEM, "memento", sampled);
    expect(a.completion).toEqual(b.completion);
    expect(new Set([sampleSeed(1, 0, 0), sampleSeed(1, 0, 1), sampleSeed(1, 1, 0), sampleSeed(2, 0, 0)]).size).toBe(4);
    expect(sampleSeed(1, 3, 2)).toBe(sampleSeed(1, 3, 2));
  });
});

describe("restart ablation: the probe task's problems", () => {
  it("force every token but the last block's three sum digits, which decide correctness", () => {
    const task = probeAblationTask({ limit: 4, blocks: 3 });
    expect(task.problems.map((p) => p.maxTokens)).toEqual([2 * 16, 3 * 16, 2 * 16, 3 * 16]);
    for (const p of task.problems) {
      const completion: number[] = [];
      const free: number[] = [];
      while (completion.length < p.maxTokens) {
        const forced = p.forcedToken?.(completion);
        if (forced === undefined) free.push(completion.length);
        completion.push(forced ?? 0);
      }
      expect(free).toEqual([p.maxTokens - 9, p.maxTokens - 8, p.maxTokens - 7]);
      // The reference sum digits are what the last memento restates (the 3 tokens before its end marker).
      free.forEach((c, k) => {
        completion[c] = completion[p.maxTokens - 4 + k];
      });
      expect(p.isCorrect(completion)).toBe(true);
      completion[free[1]] = (completion[free[1]] + 1) % 10;
      expect(p.isCorrect(completion)).toBe(false);
    }
  });
});

describe("restart ablation on the probe-task model (models/probe)", () => {
  it("restart-mode generation equals a full forward under the restart mask; memento mode under its own", () => {
    const m = loadProbeModel(bundledProbeModelDir());
    expect(m, "models/probe holds the committed probe-task model").toBeDefined();
    const task = probeAblationTask({ limit: 6, blocks: 4 });
    const greedy = { temperature: 0, topP: 1, topK: 0, seed: 0 };
    let compared = 0;
    let restartDiffers = false;
    for (const p of task.problems) {
      const chosen: Partial<Record<AblationMode, number[]>> = {};
      for (const mode of ["memento", "restart"] as const) {
        const r = generateUnderMode(m!, task, p, mode, greedy);
        const tokens = [...p.promptIds, ...r.completion];
        const masking = modeSpec(mode, false).masking!;
        const { logits } = m!.forward(tokens, mementoPattern(tokens, p.promptIds.length, task.trackerIds, masking));
        const V = m!.vocab;
        r.completion.forEach((t, c) => {
          if (p.forcedToken?.(r.completion.slice(0, c)) !== undefined) return;
          const row = p.promptIds.length + c - 1;
          expect(t, `${p.id}, ${mode}, completion token ${c}`).toBe(argmax(logits.subarray(row * V, (row + 1) * V)));
          compared++;
        });
        chosen[mode] = r.completion;
      }
      if (chosen.restart?.join() !== chosen.memento?.join()) restartDiffers = true;
    }
    expect(compared).toBe(6 * 2 * 3); // the last block's three sum digits, in both modes
    expect(restartDiffers).toBe(true); // not vacuous: the recomputed mementos change what the model reads
  });
});

describe("restart ablation: statistics", () => {
  it("Wilson interval: known values, inside [0, 1], n = 0 is [0, 1]", () => {
    const [lo, hi] = wilsonInterval(5, 10);
    expect(lo).toBeCloseTo(0.2366, 4);
    expect(hi).toBeCloseTo(0.7634, 4);
    const [lo0, hi0] = wilsonInterval(0, 10);
    expect(lo0).toBe(0);
    expect(hi0).toBeCloseTo(0.2775, 4);
    expect(wilsonInterval(10, 10)[1]).toBe(1);
    expect(wilsonInterval(0, 0)).toEqual([0, 1]);
  });

  it("one generation per problem: the plain Wilson interval over problems", () => {
    const e = estimateAccuracy([1, 1, 0, 1, 0, 1, 1, 1, 0, 1], 1);
    expect(e.accuracy).toBe(0.7);
    expect(e.ci95).toEqual(wilsonInterval(7, 10));
    expect(e.stderr).toBeCloseTo(Math.sqrt((0.7 * 0.3 * 10) / 9 / 10), 12);
  });

  it("several correlated generations per problem count as fewer than their number (Kish), never fewer than problems", () => {
    // Every problem all right or all wrong: samples add nothing, the interval is as wide as over problems.
    const clustered = estimateAccuracy([4, 0, 4, 4, 0, 4, 4, 4, 0, 4], 4);
    expect(clustered.generations).toBe(40);
    expect(clustered.ci95[1] - clustered.ci95[0]).toBeCloseTo(wilsonInterval(7, 10)[1] - wilsonInterval(7, 10)[0], 6);
    expect(effectiveSampleSize(0.5, 0.0001, 10, 40)).toBe(40);
    expect(effectiveSampleSize(0.5, 1, 10, 40)).toBe(10);
  });

  it("paired delta: mean difference in points, discordant problems and the exact sign test", () => {
    const d = pairedDelta([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]);
    expect(d.deltaPoints).toBeCloseTo((-100 * 5) / 6, 9);
    expect(d.aBetter).toBe(5);
    expect(d.bBetter).toBe(0);
    expect(d.signTestP).toBeCloseTo(2 / 32, 12);
    expect(signTestP(0, 0)).toBe(1);
    expect(signTestP(3, 6)).toBe(1);
    expect(() => pairedDelta([1], [1, 0])).toThrow();
  });
});

describe("memento analyze restart (CLI from dist/)", () => {
  const dir = mkdtempSync(join(tmpdir(), "memento-restart-"));
  const bin = join(repoRoot, "bin", "memento.js");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("--quick --json: memento, restart and full on the same problems, greedy and sampled, restart recomputes", async () => {
    const out = join(dir, "quick");
    const { stdout } = await run(
      process.execPath,
      [bin, "analyze", "restart", "--quick", "--limit", "1", "--json", "--out", out],
      {
        cwd: repoRoot,
        maxBuffer: 1 << 24,
      },
    );
    const report = JSON.parse(stdout);
    expect(report.headline).toBe("sampled");
    expect(report.problemIds).toHaveLength(1);
    for (const mode of ["memento", "restart", "full"]) {
      const row = report[mode];
      for (const key of ["accuracy", "ci95", "problems", "peakKvTokens", "recomputedTokens", "stderr"])
        expect(row).toHaveProperty(key);
      expect(row.problems).toBe(1);
      expect(row.peakKvTokens).toBeGreaterThan(0);
      for (const protocol of ["greedy", "sampled"]) {
        expect(report[protocol][mode].correctPerProblem).toHaveLength(report.problemIds.length);
        expect(report[protocol][mode].generations).toBe(1);
      }
    }
    expect(report.restart.recomputedTokens).toBeGreaterThan(0);
    expect(report.greedy.restart.recomputedTokens).toBeGreaterThan(0);
    expect(report.memento.recomputedTokens).toBe(0);
    expect(report.full.peakKvTokens).toBeGreaterThan(report.memento.peakKvTokens);
    expect(report.greedy.controls.restartKeepDelimiters.recomputedTokens).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(join(out, "restart.json"), "utf8")).problems).toBe(1);
    const html = readFileSync(join(out, "restart.html"), "utf8");
    expect(html).toContain("<table");
    expect(html).not.toMatch(/<script|<link|src="http/);
  }, 180_000);

  it("a bad problems file and an empty protocol set are one-line user errors (exit 2)", async () => {
    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, '{"problem":"s=1234 k=3"}\n{"nope":1}\n');
    for (const args of [
      ["--problems", bad],
      ["--no-greedy", "--samples", "0"],
    ]) {
      const err = await run(process.execPath, [bin, "analyze", "restart", ...args, "--out", join(dir, "e")], {
        cwd: repoRoot,
      }).then(
        () => undefined,
        (e: { code: number; stderr: string }) => e,
      );
      expect(err?.code).toBe(2);
      expect(err?.stderr.trim().split("\n")).toHaveLength(1);
      expect(err?.stderr).toMatch(/^memento: /);
    }
  }, 60_000);
});
