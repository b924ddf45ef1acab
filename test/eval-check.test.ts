import { afterAll, describe, expect, it } from "vitest";
import { checkAnswer } from "../src/eval/check.js";
import { closeEquivalenceWorker } from "../src/eval/equivalence.js";
import { UserError } from "../src/errors.js";

afterAll(async () => {
  await closeEquivalenceWorker();
});

const memento = (answer: string) =>
  `<think>\n<|block_start|>Let me try x = 1... \\boxed{1}<|block_end|>\n<|summary_start|>tried 1<|summary_end|>\n</think>\n\n${answer}<|im_end|>`;

describe("checkAnswer math", () => {
  it("extracts after </think> and compares by equivalence", async () => {
    const r = await checkAnswer(memento("So the answer is $\\boxed{\\dfrac{\\sqrt{3}}{3}}$."), "\\frac{1}{\\sqrt{3}}", {
      kind: "math",
    });
    expect(r).toMatchObject({ correct: true, extracted: "\\dfrac{\\sqrt{3}}{3}", method: "boxed/numeric" });
    const wrong = await checkAnswer(memento("\\boxed{2}"), "1", { kind: "math" });
    expect(wrong.correct).toBe(false);
    expect(wrong.extracted).toBe("2");
  });
  it("accepts a reference with a box (MATH solutions) and reports empty answers", async () => {
    expect((await checkAnswer("Final Answer: 0.5", "so $\\boxed{\\frac12}$", { kind: "math" })).correct).toBe(true);
    expect(await checkAnswer("<think>long</think>", "3", { kind: "math" })).toMatchObject({
      correct: false,
      extracted: null,
      method: "empty",
    });
  });
});

describe("checkAnswer choice", () => {
  it("last letter, case-insensitive, reference as letter or (letter)", async () => {
    expect(await checkAnswer(memento("The answer is (c)."), "C", { kind: "choice" })).toMatchObject({
      correct: true,
      extracted: "C",
    });
    expect((await checkAnswer(memento("**B**"), "(C)", { kind: "choice" })).correct).toBe(false);
    expect((await checkAnswer("Answer: E", "E", { kind: "choice", letters: "ABCDE" })).correct).toBe(true);
    await expect(checkAnswer("A", "the mitochondria", { kind: "choice" })).rejects.toBeInstanceOf(UserError);
  });
});

describe("checkAnswer code", () => {
  it("runs the program and needs every test to pass", async () => {
    const tests = [
      { input: "3\n", output: "9\n" },
      { input: "4\n", output: "16\n" },
    ];
    const ok = await checkAnswer(memento("```python\nn = int(input())\nprint(n * n)\n```"), "", {
      kind: "code",
      tests,
    });
    expect(ok).toMatchObject({ correct: true, method: "python", detail: "2/2 tests passed (ok 2)" });
    const half = await checkAnswer(
      memento("```js\nconst n = +require('fs').readFileSync(0,'utf8'); console.log(n === 3 ? 9 : 0);\n```"),
      "",
      { kind: "code", tests },
    );
    expect(half).toMatchObject({ correct: false, method: "javascript", detail: "1/2 tests passed (ok 1, wrong 1)" });
    expect(await checkAnswer("no code", "", { kind: "code", tests })).toMatchObject({
      correct: false,
      extracted: null,
      method: "none",
    });
    await expect(checkAnswer("x", "", { kind: "code" })).rejects.toBeInstanceOf(UserError);
  });
});
