import { afterAll, describe, expect, it } from "vitest";
import { answerKey, normalizeAnswer, parseStructure, rationalValue } from "../src/eval/normalize.js";
import {
  closeEquivalenceWorker,
  equalByNormalization,
  equivalenceWorkerSpawns,
  isEquivalent,
} from "../src/eval/equivalence.js";

afterAll(async () => {
  await closeEquivalenceWorker();
});

describe("normalizeAnswer", () => {
  it.each([
    ["\\left( 1, 2 \\right)", "(1,2)"],
    ["\\dfrac{1}{2}", "\\frac{1}{2}"],
    ["\\tfrac12", "\\frac{1}{2}"],
    ["$ 5 $", "5"],
    ["5 \\text{ cm}", "5"],
    ["5\\text{cm}^2", "5"],
    ["12 meters", "12"],
    ["\\$1,000", "1000"],
    ["1{,}000", "1000"],
    ["10\\%", "10"],
    ["90^\\circ", "90"],
    ["90^{\\circ}", "90"],
    ["45°", "45"],
    ["x = 5", "5"],
    ["f(x) = x^2", "x^2"],
    ["5.", "5"],
    [".5", "0.5"],
    ["0.50", "0.5"],
    ["3.0", "3"],
    ["\\text{Yes}", "yes"],
    ["2\\,\\sqrt2", "2\\sqrt{2}"],
    ["\\pi r^{2}", "\\pi r^2"],
    ["7 \\text{ apples}", "7"],
    ["2\\frac{1}{2}", "\\frac{5}{2}"],
    ["\\boxed{\\boxed{4}}", "4"],
    ["x=1 \\text{ or } x=2", "x=1,x=2"],
  ])("%s -> %s", (input, expected) => {
    expect(normalizeAnswer(input)).toBe(expected);
  });
  it("keeps commas inside brackets (no thousands separator there)", () => {
    expect(normalizeAnswer("(1,000)")).toBe("(1,0)");
    expect(parseStructure(normalizeAnswer("(1,000)")).kind).toBe("ordered");
    expect(parseStructure(normalizeAnswer("\\{1,000\\}"))).toEqual({
      kind: "unordered",
      items: [
        { kind: "scalar", value: "1" },
        { kind: "scalar", value: "0" },
      ],
    });
  });
  it("keeps `=` in a system", () => {
    expect(normalizeAnswer("x=1,y=2")).toBe("x=1,y=2");
  });
});

describe("structure and keys", () => {
  it("parses sets, tuples, intervals, lists, unions and ±", () => {
    expect(parseStructure("[1,3)")).toMatchObject({ kind: "ordered", open: "[", close: ")" });
    expect(parseStructure("\\{3,1\\}").kind).toBe("unordered");
    expect(parseStructure("1,2").kind).toBe("unordered");
    expect(parseStructure("(-\\infty,0)\\cup(1,\\infty)").kind).toBe("unordered");
    expect(parseStructure("1\\pm\\sqrt{2}")).toEqual({
      kind: "unordered",
      items: [
        { kind: "scalar", value: "1+\\sqrt{2}" },
        { kind: "scalar", value: "1-\\sqrt{2}" },
      ],
    });
  });
  it("reduces rationals exactly", () => {
    expect(rationalValue("0.25")).toEqual({ num: 1n, den: 4n });
    expect(rationalValue("-\\frac{2}{4}")).toEqual({ num: -1n, den: 2n });
    expect(rationalValue("6/3")).toEqual({ num: 2n, den: 1n });
    expect(rationalValue("\\frac{1}{0}")).toBeNull();
    expect(rationalValue("x")).toBeNull();
  });
  it("answerKey groups equal forms", () => {
    const k = answerKey("\\frac{1}{2}");
    for (const s of ["0.5", "1/2", "\\dfrac12", ".50", "\\boxed{\\tfrac{1}{2}}"]) expect(answerKey(s)).toBe(k);
    expect(answerKey("x = 1, 2")).toBe(answerKey("2, 1"));
    expect(answerKey("\\{3, 1\\}")).toBe(answerKey("\\{1,3\\}"));
    expect(answerKey("(1,2)")).not.toBe(answerKey("(2,1)"));
    expect(answerKey("")).toBe("");
  });
});

const EQUIVALENT: [string, string][] = [
  ["\\frac{1}{2}", "0.5"],
  ["\\frac{1}{2}", "1/2"],
  ["\\frac{1}{2}", "\\dfrac12"],
  ["0.5", "\\dfrac12"],
  ["\\sqrt{8}", "2\\sqrt{2}"],
  ["\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"],
  ["[1, 3)", "[1,3)"],
  ["\\{3, 1\\}", "\\{1,3\\}"],
  ["5 \\text{ cm}", "5"],
  ["10\\%", "10"],
  ["90^\\circ", "90"],
  ["\\boxed{\\boxed{5}}", "5"],
  ["x = 5", "5"],
  ["\\pi/2", "\\frac{\\pi}{2}"],
  ["2+3i", "3i+2"],
  ["2+3i", "(2+3i)"],
  ["x = 1, 2", "2, 1"],
  ["1,000", "1000"],
  ["\\left(-\\infty, 2\\right]", "(-\\infty,2]"],
  ["\\{(1,2),(3,4)\\}", "\\{(3,4),(1,2)\\}"],
  ["(\\sqrt{2}, \\frac12)", "(\\sqrt2, 0.5)"],
  ["x^2+2x+1", "(x+1)^2"],
  ["\\frac{x+1}{2}", "\\frac{1}{2}x+\\frac{1}{2}"],
  ["1\\pm\\sqrt{2}", "1-\\sqrt{2}, 1+\\sqrt{2}"],
  ["e^{i\\pi}", "-1"],
  ["\\log_2 8", "3"],
  ["(-\\infty,0)\\cup(1,\\infty)", "(1,\\infty)\\cup(-\\infty,0)"],
  ["\\text{Yes}", "yes"],
  ["\\$18.90", "18.9"],
  ["x \\in [2, 5)", "[2,5)"],
  ["\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"],
  ["\\binom{5}{2}", "10"],
  ["5!", "120"],
  ["3 \\text{ and } 4", "4,3"],
  ["\\dfrac{7}{2}", "3\\frac{1}{2}"],
  ["\\arctan 1", "\\frac{\\pi}{4}"],
  ["2\\pi", "6.283185307179586"],
  ["2^{64}", "18446744073709551616"],
];

const NOT_EQUIVALENT: [string, string][] = [
  ["\\frac{1}{2}", "\\frac{1}{3}"],
  ["\\sqrt{2}", "2"],
  ["(1,2)", "(2,1)"],
  ["1000", "100"],
  ["x^2", "2x"],
  ["[1,3)", "(1,3]"],
  ["[1,3)", "[1,3]"],
  ["\\{1,2\\}", "\\{1,2,3\\}"],
  ["(1,2)", "1,2"],
  ["0.333333333", "\\frac{1}{3}"],
  ["2+3i", "2-3i"],
  ["\\pi", "3.14"],
  ["x+1", "y+1"],
  ["\\infty", "-\\infty"],
  ["5", ""],
  ["yes", "no"],
  ["12\\%", "0.12"],
  ["\\sqrt{3}", "1.732"],
  ["x \\in [2, 5)", "[2,5]"],
  ["2^{64}", "18446744073709551615"],
];

describe("isEquivalent", () => {
  it.each(EQUIVALENT)("%s == %s", async (a, b) => {
    const r = await isEquivalent(a, b);
    expect(r.equal, r.detail).toBe(true);
    const back = await isEquivalent(b, a);
    expect(back.equal, back.detail).toBe(true);
  });
  it.each(NOT_EQUIVALENT)("%s != %s", async (a, b) => {
    const r = await isEquivalent(a, b);
    expect(r.equal, r.detail).toBe(false);
    expect((await isEquivalent(b, a)).equal).toBe(false);
  });
  it("reports the deciding method", async () => {
    expect((await isEquivalent("\\dfrac{1}{2}", "\\frac12")).method).toBe("normalized");
    expect((await isEquivalent("0.5", "\\frac{1}{2}")).method).toBe("rational");
    expect((await isEquivalent("\\sqrt{8}", "2\\sqrt{2}")).method).toBe("numeric");
  });
  it("inline mode agrees on the tricky cases", async () => {
    for (const [a, b] of EQUIVALENT)
      expect((await isEquivalent(a, b, { mode: "inline" })).equal, `${a} ${b}`).toBe(true);
    for (const [a, b] of NOT_EQUIVALENT)
      expect((await isEquivalent(a, b, { mode: "inline" })).equal, `${a} ${b}`).toBe(false);
  });
  it("off mode uses normalisation and exact rationals only", async () => {
    expect((await isEquivalent("0.5", "\\frac{1}{2}", { mode: "off" })).equal).toBe(true);
    expect((await isEquivalent("\\sqrt{8}", "2\\sqrt{2}", { mode: "off" })).equal).toBe(false);
    expect(equalByNormalization("\\{3,1\\}", "\\{1, 3\\}")).toBe(true);
  });
  it("inline mode refuses slow inputs by its guard", async () => {
    const r = await isEquivalent("100000!", "2", { mode: "inline" });
    expect(r.equal).toBe(false);
    expect(r.detail).toMatch(/guard/);
  });
  it("worker mode bounds a slow comparison by its timeout and recovers", async () => {
    await isEquivalent("\\sqrt{2}", "2^{1/2}"); // worker started
    const before = equivalenceWorkerSpawns();
    const t0 = Date.now();
    const r = await isEquivalent("100000!", "3", { timeoutMs: 300 });
    const ms = Date.now() - t0;
    expect(r.timedOut).toBe(true);
    expect(r.equal).toBe(false);
    expect(ms).toBeLessThan(1500);
    const again = await isEquivalent("\\sqrt{8}", "2\\sqrt{2}");
    expect(again.equal).toBe(true);
    expect(equivalenceWorkerSpawns()).toBe(before + 1);
  });
  it("runs concurrent checks through the queue", async () => {
    const rs = await Promise.all(EQUIVALENT.slice(0, 8).map(([a, b]) => isEquivalent(a, b)));
    expect(rs.every((r) => r.equal)).toBe(true);
  });
});
