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

  it("computes the running sum and renders a valid Memento response", () => {
    const p = makeProblem(7, [
      [5, 3, 5, 8, 1],
      [9, 9],
    ]);
    expect(p.prompt).toBe("x=7 a:53581 b:99");
    expect(p.values).toEqual([9, 7]);
    expect(p.answer).toBe(7);
    const r = renderResponse(p);
    expect(r).toBe(
      "<think>\n<|block_start|>a:53581|7 3581_|2 581__|5 81___|0 1____|8 _____|9<|block_end|>\n<|summary_start|>a x=9<|summary_end|>\n" +
        "<|block_start|>b:99|9 9_|8 __|7<|block_end|>\n<|summary_start|>b x=7<|summary_end|>\n</think>\n\n7",
    );
    expect(parsePrompt(p.prompt)).toEqual(p);
  });

  it("every generated response validates and checks as correct", () => {
    for (const d of generateDataset(1, 200)) {
      const v = validateResponse(d.response);
      expect(v.valid, JSON.stringify(v.diagnostics)).toBe(true);
      expect(v.diagnostics).toEqual([]);
      expect(checkAnswer(d.problem, d.response)).toBe(true);
      expect(checkAnswer(d.problem, d.response + "<|im_end|>")).toBe(true);
      const parts = decomposeResponse(parseResponse(d.response));
      expect(parts.blocks.length).toBe(d.problem.groups.length);
      expect(parts.answer).toBe(d.answer);
      expect(parsePrompt(d.prompt)).toEqual(d.problem);
    }
  });

  it("rejects wrong answers and grades partial work", () => {
    const d = generateDataset(2, 1)[0];
    const wrong = String((d.problem.answer + 1) % 10);
    const bad = d.response.replace(/\n\n\d$/, `\n\n${wrong}`);
    expect(checkAnswer(d.problem, bad)).toBe(false);
    expect(checkAnswer(d.problem, d.response.replace(/<\/think>[\s\S]*$/, ""))).toBe(false);
    const g = gradeResponse(d.problem, bad);
    expect(g).toMatchObject({ correct: false, answer: wrong, valid: true, mementosCorrect: d.problem.groups.length });
  });

  it("the memento carries the state: each block restarts from the previous memento's value", () => {
    for (const d of generateDataset(3, 50)) {
      const parts = decomposeResponse(parseResponse(d.response));
      for (let k = 0; k < parts.blocks.length; k++) {
        const before = Number(parts.blocks[k].split("|")[1][0]);
        const expected = k === 0 ? d.problem.start : Number(parts.mementos[k - 1].split("=")[1]);
        expect(before).toBe(expected);
        expect(parts.mementos[k]).toBe(mementoText(d.problem, k));
        // The group digits are in the prompt (never evicted).
        expect(d.prompt).toContain(parts.blocks[k].split("|")[0]);
      }
      expect(parts.answer).toBe(parts.mementos[parts.mementos.length - 1].split("=")[1]);
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

  it("has short sequences: 290-562 tokens with the char tokenizer, 4-8 blocks", () => {
    const tok = toyTokenizer();
    const lens = generateDataset(5, 300).map((d) => ({ n: buildSftExample(tok, d.prompt, d.response).ids.length, g: d.problem.groups.length }));
    for (const { n, g } of lens) expect(n).toBe(18 + 68 * g);
    expect(Math.min(...lens.map((l) => l.g))).toBe(4);
    expect(Math.max(...lens.map((l) => l.g))).toBe(8);
  });

  it("validates parameters", () => {
    expect(() => generateDataset(1, 1, { minGroups: 5, maxGroups: 3 })).toThrow(/minGroups/);
    expect(() => generateDataset(1, 1, { groupSize: 0 })).toThrow(/groupSize/);
    expect(() => generateDataset(1, 95, { minGroups: 1, maxGroups: 1, groupSize: 1 })).toThrow(/distinct/);
  });
});
