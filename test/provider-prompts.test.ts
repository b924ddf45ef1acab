import { describe, expect, it } from "vitest";
import {
  SYSTEM_PROMPTS,
  buildCompressMessages,
  buildJudgeMessages,
  buildRefineMessages,
  buildScoreMessages,
  extractJson,
  parseJudgeAnswer,
  parseMementoAnswer,
  parseScoreAnswer,
  promptKindOf,
} from "../src/data/prompts.js";

describe("prompts", () => {
  it("state the rubric and ask for JSON (needed by json_object mode)", () => {
    for (const p of Object.values(SYSTEM_PROMPTS)) expect(p).toMatch(/JSON/);
    const s = SYSTEM_PROMPTS.score;
    for (const needle of [
      '"scores"',
      "0 =",
      "1 =",
      "2 =",
      "3 =",
      '":"',
      '"="',
      "Therefore",
      "Thus",
      "Hence",
      "never give 2 or 3",
    ]) {
      expect(s).toContain(needle);
    }
    for (const needle of [
      "formulas (0-3)",
      "values (0-2)",
      "methods (0-2)",
      "validation (0-1)",
      "noHallucination (0-1)",
      "resultFirst (0-1)",
      "feedback",
    ]) {
      expect(SYSTEM_PROMPTS.judge).toContain(needle);
    }
    expect(SYSTEM_PROMPTS.compress).toMatch(/10-20%/);
    expect(SYSTEM_PROMPTS.compress).toMatch(/ALL blocks/);
    expect(promptKindOf(SYSTEM_PROMPTS.refine)).toBe("refine");
    expect(promptKindOf("something else")).toBeUndefined();
  });

  it("render numbered sentences and tagged blocks with explicit counts", () => {
    const [, u] = buildScoreMessages(["A.", "B:\nmore", "C."]);
    expect(u.content).toContain("3 sentences, so there are 2 boundaries");
    expect(u.content).toContain("[S1] A.\n[S2] B:\nmore\n[S3] C.");
    expect(buildCompressMessages("P?", ["x", "y"])[1].content).toContain('<block index="2">\ny\n</block>');
    expect(buildJudgeMessages(["x"], ["m"])[1].content).toContain('<memento index="1">\nm\n</memento>');
    expect(buildRefineMessages([{ block: "x", memento: "m", feedback: "add f" }])[1].content).toContain(
      '<feedback index="1">\nadd f\n</feedback>',
    );
    expect(() => buildJudgeMessages(["x"], [])).toThrow();
  });

  it("validate score answers: JSON, exact count, integers 0-3", () => {
    expect(parseScoreAnswer('{"scores":[0,1,2,3]}', 5)).toEqual({ ok: true, value: [0, 1, 2, 3] });
    expect(parseScoreAnswer('Here you go:\n```json\n{"scores":[1,2]}\n```', 3)).toEqual({ ok: true, value: [1, 2] });
    expect(parseScoreAnswer('{"scores":[1]}', 3)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/exactly 2 scores/),
    });
    expect(parseScoreAnswer('{"scores":[1, 4]}', 3)).toMatchObject({ ok: false });
    expect(parseScoreAnswer('{"scores":[1, 1.5]}', 3)).toMatchObject({ ok: false });
    expect(parseScoreAnswer('{"scores":["1", 2]}', 3)).toMatchObject({ ok: false });
    expect(parseScoreAnswer("no json here", 3)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/not a JSON object/),
    });
    expect(extractJson('{"a":1').ok).toBe(false);
  });

  it("validate memento and judge answers", () => {
    expect(parseMementoAnswer('{"mementos":[" a ","b"]}', 2)).toEqual({ ok: true, value: ["a", "b"] });
    expect(parseMementoAnswer('{"mementos":["a",""]}', 2).ok).toBe(false);
    const j = {
      formulas: 3,
      values: 2,
      methods: 1,
      validation: 1,
      noHallucination: 1,
      resultFirst: 0,
      feedback: "Add x=1.",
    };
    const r = parseJudgeAnswer(JSON.stringify({ judgments: [j] }), 1);
    expect(r).toEqual({
      ok: true,
      value: [
        {
          score: 8,
          dimensions: { formulas: 3, values: 2, methods: 1, validation: 1, noHallucination: 1, resultFirst: 0 },
          feedback: "Add x=1.",
        },
      ],
    });
    expect(parseJudgeAnswer(JSON.stringify({ judgments: [{ ...j, formulas: 4 }] }), 1).ok).toBe(false);
    expect(parseJudgeAnswer(JSON.stringify({ judgments: [j, j] }), 1).ok).toBe(false);
  });
});
