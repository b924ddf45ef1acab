import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { validateResponse } from "../src/format/validate.js";
import { decomposeResponse, parseResponse } from "../src/format/response.js";
import {
  checkAnswer,
  generateDataset,
  generateHeldOut,
  generateProblem,
  gradeResponse,
  makeProblem,
  makeRng,
  mementoText,
  parsePrompt,
  renderResponse,
  splitOf,
} from "../src/train/toy-task.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { buildSftExample } from "../src/train/sft-data.js";
import { toSequences, toyAnswerSequences, toyLossWeights, toyTokenRoles, trainToy } from "../src/train/toy.js";
import { ONE_LAYER_CONFIG } from "./helpers/random-model.js";

describe("toy task", () => {
  it("is deterministic by seed", () => {
    const a = generateDataset(7, 50);
    const b = generateDataset(7, 50);
    expect(a.map((x) => x.prompt)).toEqual(b.map((x) => x.prompt));
    expect(a.map((x) => x.response)).toEqual(b.map((x) => x.response));
    expect(generateDataset(8, 50).map((x) => x.prompt)).not.toEqual(a.map((x) => x.prompt));
    const r1 = makeRng(3);
    const r2 = makeRng(3);
    expect(generateProblem(r1)).toEqual(generateProblem(r2));
  });

  it("continues the lagged Fibonacci sequence and renders a valid Memento response", () => {
    const p = makeProblem([3, 7, 1, 4], 2, 3);
    expect(p.prompt).toBe("s=3714 k=2");
    // 3 7 1 4 | 0 8 5 | 4 8 3
    expect(p.states).toEqual([
      [4, 0, 8, 5],
      [5, 4, 8, 3],
    ]);
    expect(p.answer).toBe("5483");
    const r = renderResponse(p);
    expect(r).toBe(
      "<think>\n<|block_start|>3+7=0 7+1=8 1+4=5<|block_end|>\n<|summary_start|>s=4085 k=1<|summary_end|>\n" +
        "<|block_start|>4+0=4 0+8=8 8+5=3<|block_end|>\n<|summary_start|>s=5483 k=0<|summary_end|>\n</think>\n\n5483",
    );
    expect(parsePrompt(p.prompt, 3)).toEqual(p);
    expect(() => parsePrompt("s=3714 k=0")).toThrow(/not a toy prompt/);
    expect(() => parsePrompt("s=371 k=2")).toThrow(/not a toy prompt/);
    expect(() => makeProblem([3, 7, 1, 10], 1)).toThrow(/digits/);
  });

  it("every generated response validates and checks as correct", () => {
    for (const d of generateDataset(1, 200)) {
      const v = validateResponse(d.response);
      expect(v.valid, JSON.stringify(v.diagnostics)).toBe(true);
      expect(v.diagnostics).toEqual([]);
      expect(checkAnswer(d.problem, d.response)).toBe(true);
      expect(checkAnswer(d.problem, d.response + "<|im_end|>")).toBe(true);
      const parts = decomposeResponse(parseResponse(d.response));
      expect(parts.blocks.length).toBe(d.problem.rounds);
      expect(parts.answer).toBe(d.answer);
      expect(parsePrompt(d.prompt)).toEqual(d.problem);
    }
  });

  it("rejects wrong answers and grades partial work", () => {
    const d = generateDataset(2, 1)[0];
    const wrong = d.answer.slice(0, 3) + String((Number(d.answer[3]) + 1) % 10);
    const bad = d.response.replace(/\n\n\d{4}$/, `\n\n${wrong}`);
    expect(checkAnswer(d.problem, bad)).toBe(false);
    expect(checkAnswer(d.problem, d.response.replace(/<\/think>[\s\S]*$/, ""))).toBe(false);
    const g = gradeResponse(d.problem, bad);
    expect(g).toMatchObject({ correct: false, answer: wrong, valid: true, mementosCorrect: d.problem.rounds });
    const oneBadMemento = d.response.replace(
      mementoText(d.problem, 0),
      mementoText(d.problem, 0).replace(/k=\d/, "k=9"),
    );
    expect(gradeResponse(d.problem, oneBadMemento).mementosCorrect).toBe(d.problem.rounds - 1);
  });

  it("the memento carries the state: each block continues from the four values the memento before it states", () => {
    const state = (s: string) => {
      const m = /^s=(\d{4}) k=(\d)$/.exec(s);
      expect(m, s).not.toBeNull();
      return { seq: [...m![1]].map(Number), k: Number(m![2]) };
    };
    for (const d of generateDataset(3, 50)) {
      const parts = decomposeResponse(parseResponse(d.response));
      let before = state(d.prompt);
      for (let r = 0; r < parts.blocks.length; r++) {
        const steps = parts.blocks[r].split(" ");
        expect(steps.length).toBe(d.problem.stepsPerBlock);
        // Each step `a+b=v` reads s[i-4] and s[i-3] of the sequence so far (memento values, then the block's own).
        const seq = [...before.seq];
        for (const st of steps) {
          expect(st).toMatch(/^\d\+\d=\d$/);
          const [a, b, v] = [0, 2, 4].map((i) => Number(st[i]));
          expect([a, b]).toEqual([seq[seq.length - 4], seq[seq.length - 3]]);
          expect(v).toBe((a + b) % 10);
          seq.push(v);
        }
        const after = state(parts.mementos[r]);
        expect(after).toEqual({ seq: seq.slice(-4), k: before.k - 1 });
        expect(parts.mementos[r]).toBe(mementoText(d.problem, r));
        before = after;
      }
      expect(before.k).toBe(0);
      expect(parts.answer).toBe(before.seq.join(""));
    }
  });

  it("train and held-out splits are disjoint and unique", () => {
    const train = generateDataset(1, 2000);
    const test = generateHeldOut(300);
    const trainSet = new Set(train.map((d) => d.prompt));
    expect(trainSet.size).toBe(train.length);
    expect(new Set(test.map((d) => d.prompt)).size).toBe(test.length);
    for (const d of test) {
      expect(trainSet.has(d.prompt)).toBe(false);
      expect(splitOf(d.prompt)).toBe("test");
    }
    // Same seed, different split: still disjoint.
    expect(generateDataset(1, 100, {}, "test").some((d) => trainSet.has(d.prompt))).toBe(false);
  });

  it("has sequences of exactly 28 + 75 k tokens with the char tokenizer, 4-9 blocks", () => {
    const tok = toyTokenizer();
    const lens = generateDataset(5, 300).map((d) => ({
      n: buildSftExample(tok, d.prompt, d.response).ids.length,
      k: d.problem.rounds,
    }));
    for (const { n, k } of lens) expect(n).toBe(28 + 75 * k);
    expect(Math.min(...lens.map((l) => l.k))).toBe(4);
    expect(Math.max(...lens.map((l) => l.k))).toBe(9);
  });

  it("labels each response token with its role for the teacher-forced breakdown", () => {
    const tok = toyTokenizer();
    const d = generateDataset(4, 1)[0];
    const roles = toyTokenRoles(tok, tok.encode(d.response));
    const count = (r: string) => roles.filter((x) => x === r).length;
    const k = d.problem.rounds;
    const S = d.problem.stepsPerBlock;
    expect(roles.length).toBe(tok.encode(d.response).length);
    expect([count("a"), count("b"), count("sum"), count("memento"), count("answer")]).toEqual([
      S * k,
      S * k,
      S * k,
      5 * k,
      4,
    ]);
    // The first block starts "a+b=r": roles a, format, b, format, sum.
    const first = tok.encode(d.response).findIndex((id) => tok.decode([id]) === "<|block_start|>") + 1;
    expect(roles.slice(first, first + 6)).toEqual(["a", "format", "b", "format", "sum", "format"]);
  });

  it("weights exactly the once-per-problem tokens: block 1's prompt reads, block 1's k, the answer", () => {
    const tok = toyTokenizer();
    for (const d of generateDataset(6, 20, { minBlocks: 1, maxBlocks: 9 })) {
      const ex = buildSftExample(tok, d.prompt, d.response);
      const w = toyLossWeights(tok, ex, 10);
      const heavy = [...w.keys()].filter((i) => w[i] !== 1);
      const text = heavy.map((i) => tok.decode([ex.ids[i]])).join("");
      // Block 1 reads the prompt's 4 values (s0 s1 as step 1's a and b, s2 s3 as steps 2-3's b), then k - 1.
      const p = d.problem;
      expect(text).toBe(`${p.start.join("")}${p.rounds - 1}${p.answer}`);
      expect(heavy.every((i) => w[i] === 10 && i >= ex.promptLength)).toBe(true);
      expect(toyLossWeights(tok, ex, 1).every((x) => x === 1)).toBe(true);
      // The answer stage's scope: only the answer's four digits.
      const wa = toyLossWeights(tok, ex, 30, "answer");
      const heavyA = [...wa.keys()].filter((i) => wa[i] !== 1);
      expect(heavyA.map((i) => tok.decode([ex.ids[i]])).join("")).toBe(p.answer);
      expect(heavyA.every((i) => wa[i] === 30)).toBe(true);
      // Sequences shift the weights with the labels: the weight of predicting token i sits at i - 1.
      const [causal, masked] = [true, false].map((c) => toSequences([ex], 2, tok, { weights: [w], causal: [c] })[0]);
      expect([...causal.weights!.keys()].filter((i) => causal.weights![i] !== 1)).toEqual(heavy.map((i) => i - 1));
      expect(causal.pattern).toEqual(toSequences([ex], 1, tok)[0].pattern);
      expect(masked.pattern).not.toEqual(causal.pattern);
    }
  });

  it("answer stages weight the answer in the memento-attention examples, and in the causal ones only when asked", () => {
    const tok = toyTokenizer();
    const examples = generateDataset(7, 4, { minBlocks: 1, maxBlocks: 3 }).map((d) =>
      buildSftExample(tok, d.prompt, d.response),
    );
    const causal = [true, false, true, false];
    const heavy = (s: { weights?: Float32Array }) => [...s.weights!].filter((x) => x !== 1).length;
    const first = toyAnswerSequences(tok, examples, causal, 30, false);
    const all = toyAnswerSequences(tok, examples, causal, 30, true);
    expect(first.map(heavy)).toEqual([0, 4, 0, 4]);
    expect(all.map(heavy)).toEqual([4, 4, 4, 4]);
    // Either way the causal examples keep causal attention.
    for (const seqs of [first, all]) {
      seqs.forEach((s, i) => {
        expect(s.pattern).toEqual(toSequences([examples[i]], causal[i] ? 1 : 2, tok)[0].pattern);
      });
    }
  });

  it("validates parameters", () => {
    expect(() => generateDataset(1, 1, { minBlocks: 5, maxBlocks: 3 })).toThrow(/minBlocks/);
    expect(() => generateDataset(1, 1, { stepsPerBlock: 0 })).toThrow(/stepsPerBlock/);
    expect(() => generateDataset(1, 1, { maxBlocks: 10 })).toThrow(/maxBlocks/);
    // One round count: 10,000 prompts, about 1,000 of them in the held-out split.
    expect(() => generateDataset(1, 1200, { minBlocks: 1, maxBlocks: 1 }, "test")).toThrow(/distinct/);
  });
});

describe("trainToy", () => {
  it("runs every stage of the recipe (warm-up, stage 1, stage 2, the two answer stages), reports them and resumes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "memento-toy-"));
    try {
      const opts = {
        outDir: dir,
        seed: 3,
        trainExamples: 24,
        testExamples: 2,
        shortSteps: 2,
        stage1Steps: 2,
        stage2Steps: 2,
        onceWeight: 10,
        stage2CausalFraction: 0.25,
        answerSteps: 3,
        answerAllSteps: 2,
        batchSize: 2,
        lr: 1e-3,
        workers: 1,
        config: ONE_LAYER_CONFIG,
      };
      const outcome = await trainToy(opts);
      if (outcome.interrupted) throw new Error("not interrupted: no signal was given");
      const { report } = outcome;
      expect(report.train.steps).toEqual({ short: 2, stage1: 2, stage2: 2, answer: 3, answerAll: 2 });
      expect([report.train.answerWeight, report.train.answerLr, report.train.answerAllLr]).toEqual([
        30,
        1e-3 / 3,
        (1e-3 / 3) * 0.3,
      ]);
      const stages = (csv: string) =>
        csv
          .trim()
          .split("\n")
          .slice(1)
          .map((l) => l.split(",")[0]);
      const csv = readFileSync(join(dir, "loss.csv"), "utf8");
      expect(stages(csv)).toEqual([
        ...["stage1-short", "stage1-short", "stage1", "stage1", "stage2", "stage2"],
        ...["stage2-answer", "stage2-answer", "stage2-answer", "stage2-answer-all", "stage2-answer-all"],
      ]);
      // A rerun in the same directory resumes from the last checkpoint (here: all done) instead of starting over.
      const logs: string[] = [];
      await trainToy({ ...opts, onLog: (l) => logs.push(l) });
      expect(stages(readFileSync(join(dir, "loss.csv"), "utf8"))).toHaveLength(11);
      expect(logs.some((l) => /resuming/.test(l))).toBe(true);
      await expect(trainToy({ ...opts, answerWeight: 0 })).rejects.toThrow(/answer-stage loss weight/);
      await expect(trainToy({ ...opts, answerAllLr: -1 })).rejects.toThrow(/answer-all stage's learning rate/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
