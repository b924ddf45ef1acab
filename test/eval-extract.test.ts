import { describe, expect, it } from "vitest";
import {
  answerRegion,
  extractAnswer,
  extractChoice,
  extractProgram,
  lastBoxed,
  matchBrace,
} from "../src/eval/extract.js";

describe("answerRegion", () => {
  it("reads after the last </think> and blanks Memento markers", () => {
    const r =
      "<think>\n<|block_start|>try \\boxed{1}<|block_end|>\n<|summary_start|>m<|summary_end|>\n</think>\n\nSo \\boxed{7}<|im_end|>";
    expect(answerRegion(r)).not.toContain("\\boxed{1}");
    expect(answerRegion(r)).not.toContain("<|im_end|>");
    expect(extractAnswer(r)).toEqual({ answer: "7", method: "boxed" });
  });
  it("uses the whole text when there is no </think> (truncated or base model)", () => {
    const r = "<think>\n<|block_start|>so the answer is \\boxed{12}";
    expect(extractAnswer(r)).toEqual({ answer: "12", method: "boxed" });
  });
});

describe("boxed", () => {
  it("handles nested braces, escaped braces and the last box", () => {
    expect(lastBoxed("a \\boxed{1} b \\boxed{\\frac{1}{\\sqrt{2}}}")).toBe("\\frac{1}{\\sqrt{2}}");
    expect(lastBoxed("\\boxed{\\{1, 2\\}}")).toBe("\\{1, 2\\}");
    expect(lastBoxed("\\fbox{x+1}")).toBe("x+1");
    expect(matchBrace("{a{b}\\}c}", 0)).toBe(8);
  });
  it("unwraps a box inside a box and ignores boxes nested in an earlier top-level box", () => {
    expect(lastBoxed("\\boxed{\\boxed{5}}")).toBe("5");
    expect(lastBoxed("\\boxed{ \\boxed{ \\frac{1}{2} } }")).toBe("\\frac{1}{2}");
    expect(lastBoxed("\\boxed{2 + \\boxed{3}} then")).toBe("2 + \\boxed{3}");
  });
  it("reads the `\\boxed 5` form and stops at punctuation", () => {
    expect(lastBoxed("so $\\boxed 5$.")).toBe("5");
    expect(lastBoxed("answer \\boxed 42.")).toBe("42");
  });
  it("skips a truncated box", () => {
    expect(lastBoxed("\\boxed{3} and \\boxed{\\frac{1}{2")).toBe("3");
    expect(lastBoxed("no box")).toBeNull();
  });
});

describe("extractAnswer", () => {
  it("answer phrases", () => {
    expect(extractAnswer("blah\nFinal Answer: 42")).toEqual({ answer: "42", method: "answer_phrase" });
    expect(extractAnswer("Thus the answer is $\\frac{3}{4}$.")).toEqual({
      answer: "\\frac{3}{4}",
      method: "answer_phrase",
    });
    expect(extractAnswer("**Answer:** 17")).toEqual({ answer: "17", method: "answer_phrase" });
    expect(extractAnswer("Final Answer: The final answer is 9. I hope it is correct.").answer).toBe("9");
    expect(extractAnswer("The answer is 3.\nActually, the final answer is 4.").answer).toBe("4");
  });
  it("prefers boxed over phrases", () => {
    expect(extractAnswer("The final answer is $\\boxed{5}$. Answer: 6").answer).toBe("5");
  });
  it("falls back to the last inline math, then the last number, then raw text", () => {
    expect(extractAnswer("we get $x=2$ and then $y = \\sqrt{3}$ done")).toEqual({
      answer: "y = \\sqrt{3}",
      method: "inline_math",
    });
    expect(extractAnswer("we get \\(7\\) so")).toEqual({ answer: "7", method: "inline_math" });
    expect(extractAnswer("there are 3 cats and 1,024 dogs")).toEqual({ answer: "1,024", method: "number" });
    expect(extractAnswer("it is 3/4 of it")).toEqual({ answer: "3/4", method: "number" });
    expect(extractAnswer("  yes  ")).toEqual({ answer: "yes", method: "raw" });
    expect(extractAnswer("<think>x</think>  ")).toEqual({ answer: "", method: "empty" });
  });
  it("does not take two currency amounts for inline math", () => {
    expect(extractAnswer("It costs $5 and $10 more.")).toEqual({ answer: "10", method: "number" });
  });
  it("does not take 'to answer this' for a phrase", () => {
    expect(extractAnswer("To answer this we compute 5").method).toBe("number");
  });
});

describe("extractChoice", () => {
  it("reads the last letter in the usual forms", () => {
    expect(extractChoice("<think>maybe (A)</think>The answer is (C).")).toEqual({
      answer: "C",
      method: "answer_phrase",
    });
    expect(extractChoice("Answer: b")).toEqual({ answer: "B", method: "answer_phrase" });
    expect(extractChoice("So I pick **D**")).toEqual({ answer: "D", method: "decorated" });
    expect(extractChoice("$\\boxed{\\text{(B)}}$")).toEqual({ answer: "B", method: "boxed" });
    expect(extractChoice("Between (A) and (B), (B) fits")).toEqual({ answer: "B", method: "decorated" });
    expect(extractChoice("A careful look shows C")).toEqual({ answer: "C", method: "bare" });
    expect(extractChoice("no letter here")).toEqual({ answer: null, method: "none" });
    expect(extractChoice("Answer: E", "ABCDE").answer).toBe("E");
    expect(extractChoice("Answer: E").answer).toBeNull();
  });
});

describe("extractProgram", () => {
  it("takes the last python/js block of the answer region", () => {
    const r =
      "<think>```python\nprint(0)\n```</think>\nHere:\n```python\nprint(1)\n```\nand\n```js\nconsole.log(2)\n```\n";
    expect(extractProgram(r)).toEqual({ language: "javascript", code: "console.log(2)" });
    expect(extractProgram(r, { only: "python" })).toEqual({ language: "python", code: "print(1)" });
    expect(extractProgram("```\nprint(3)\n```")).toEqual({ language: "python", code: "print(3)" });
    expect(extractProgram("<think>```py\nprint(4)\n```")).toEqual({ language: "python", code: "print(4)" });
    expect(extractProgram("no code")).toBeNull();
  });
});
