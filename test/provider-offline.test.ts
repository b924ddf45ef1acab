import { describe, expect, it } from "vitest";
import { createProvider } from "../src/data/providers/index.js";
import {
  OfflineProvider,
  approxTokens,
  extractFormulas,
  extractiveMemento,
  isMostlyMath,
  judgeHeuristic,
  refineHeuristic,
  scoreBoundaryHeuristic,
} from "../src/data/providers/offline.js";
import { JUDGE_MAX } from "../src/data/types.js";

const BLOCK = [
  "Okay, so I need to find the number of ways to tile a 2 x n board with dominoes.",
  "Let me define f(n) as the number of tilings.",
  "Either a vertical domino covers the first column, leaving f(n-1), or two horizontal dominoes cover the first two columns, leaving f(n-2).",
  "So f(n) = f(n-1) + f(n-2).",
  "The base cases are: f(1) = 1, f(2) = 2.",
  "Then f(3) = 3, f(4) = 5, f(5) = 8, f(6) = 13, f(7) = 21.",
  "Let me verify f(3) by listing: VVV, VHH, HHV.",
  "That gives 3, which matches.",
  "A closed form with Fibonacci numbers was my first idea, but that doesn't work directly here.",
  "Hmm, let me think about what the problem is really asking for.",
  "The problem asks for n = 10, and continuing the recurrence gives f(8) = 34, f(9) = 55, f(10) = 89.",
  "Therefore the answer is 89.",
].join(" ");

describe("offline boundary rules", () => {
  it("R1: 0 after a sentence ending in ':' or '='", () => {
    expect(scoreBoundaryHeuristic("The base cases are:", "Alternatively, try something else.")).toBe(0);
    expect(scoreBoundaryHeuristic("Then the total is =", "Now we verify.")).toBe(0);
    expect(scoreBoundaryHeuristic("We get **x =**", "Let me check.")).toBe(0);
  });
  it("R2: 0 before Therefore/Thus/Hence/So", () => {
    for (const w of ["Therefore", "Thus", "Hence", "So", "so"]) {
      expect(scoreBoundaryHeuristic("We found that x is even.", `${w} the answer is 4.`)).toBe(0);
    }
    expect(scoreBoundaryHeuristic("We found that x is even.", "Sorting the list comes next.")).not.toBe(0);
  });
  it("R3: 0 inside a calculation", () => {
    expect(isMostlyMath("x^2 + 2x + 1 = 0")).toBe(true);
    expect(isMostlyMath("Then u = 5, v = 7.")).toBe(true);
    expect(isMostlyMath("We now verify the answer carefully.")).toBe(false);
    expect(scoreBoundaryHeuristic("(x + 1)^2 = 0", "x = -1")).toBe(0);
    // even a strong opener is not a cut when both sides are calculation
    expect(scoreBoundaryHeuristic("a = 3, b = 4", "Next c = a + b = 7")).toBe(0);
  });
  it("R4: 3 before a new approach or the final answer", () => {
    for (const b of [
      "Alternatively, maybe I made an error in interpretation.",
      "Let me try a different substitution.",
      "Another approach is to count complements.",
      "Wait, maybe the triangle is obtuse.",
      "Instead, consider the generating function.",
      "**Final Answer** The answer is 89.",
      "In conclusion, the minimum is 4.",
    ]) {
      expect(scoreBoundaryHeuristic("So the distance would be zero.", b)).toBe(3);
    }
  });
  it("R5: 2 before checks, new steps and structural starts", () => {
    for (const b of [
      "Let me check with an example.",
      "Let's verify the second case.",
      "Now, consider the case n odd.",
      "Next, we compute the area.",
      "First, note the symmetry.",
      "Finally, combine the two parts.",
      "## Step 2",
      "- handle the empty input",
      "But wait, the constraint says n is positive.",
    ]) {
      expect(scoreBoundaryHeuristic("The derivative vanishes at the endpoint.", b)).toBe(2);
    }
  });
  it("R6: 1 otherwise", () => {
    expect(scoreBoundaryHeuristic("The triangle has sides 3, 4 and 5.", "It is a right triangle.")).toBe(1);
  });
});

describe("offline provider", () => {
  const sentences = BLOCK.split(/(?<=\.)\s+/);

  it("is heuristic, named and counts its calls", async () => {
    const p = createProvider({ provider: "offline" });
    expect(p.heuristic).toBe(true);
    expect(p.name).toBe("offline");
    expect(p.models).toEqual({ score: "heuristic", compress: "heuristic", judge: "heuristic" });
    await p.scoreBoundaries(sentences);
    expect(p.usage()).toEqual({ promptTokens: 0, completionTokens: 0, requests: 1 });
  });

  it("returns n-1 integer scores in 0..3, deterministically", async () => {
    const p = new OfflineProvider();
    for (let n = 0; n <= sentences.length; n++) {
      const s = await p.scoreBoundaries(sentences.slice(0, n));
      expect(s).toHaveLength(Math.max(0, n - 1));
      for (const x of s) expect([0, 1, 2, 3]).toContain(x);
    }
    expect(await p.scoreBoundaries(sentences)).toEqual(await new OfflineProvider().scoreBoundaries(sentences));
  });

  it("writes one extractive, result-first memento per block near 15% of its tokens", async () => {
    const p = new OfflineProvider();
    const blocks = [BLOCK, "Short block with x = 2.", ""];
    const ms = await p.writeMementos("Count tilings.", blocks);
    expect(ms).toHaveLength(3);
    const m = ms[0];
    expect(m.startsWith("Therefore the answer is 89.")).toBe(true);
    const ratio = approxTokens(m) / approxTokens(BLOCK);
    expect(ratio).toBeGreaterThan(0.05);
    expect(ratio).toBeLessThan(0.3);
    expect(m).not.toMatch(/\s{2}/);
    // extractive: every word of the memento occurs in the block
    for (const w of m.match(/[A-Za-z]{3,}/g) ?? []) expect(BLOCK).toContain(w);
    expect(ms[1]).toBe("Short block with x = 2.");
    expect(ms[2]).toBe("");
    expect(await new OfflineProvider().writeMementos("other problem", blocks)).toEqual(ms);
  });

  it("judges with the six rubric dimensions within their maxima", async () => {
    const p = new OfflineProvider();
    const good =
      "Therefore the answer is 89; f(n) = f(n-1) + f(n-2); f(1) = 1, f(2) = 2; f(3) = 3, f(4) = 5, f(5) = 8, f(6) = 13, f(7) = 21; " +
      "f(8) = 34, f(9) = 55, f(10) = 89; verify f(3) by listing: 3, which matches; closed form with Fibonacci numbers doesn't work directly";
    const [jGood, jBad, jEmpty] = await p.judgeMementos(
      [BLOCK, BLOCK, BLOCK],
      [good, "The model cleverly guesses 144.", ""],
    );
    for (const j of [jGood, jBad, jEmpty]) {
      for (const k of Object.keys(JUDGE_MAX) as (keyof typeof JUDGE_MAX)[]) {
        expect(Number.isInteger(j.dimensions[k])).toBe(true);
        expect(j.dimensions[k]).toBeGreaterThanOrEqual(0);
        expect(j.dimensions[k]).toBeLessThanOrEqual(JUDGE_MAX[k]);
      }
    }
    expect(jGood.score).toBeGreaterThanOrEqual(8);
    expect(jBad.score).toBeLessThan(5);
    expect(jBad.dimensions.noHallucination).toBe(0);
    expect(jBad.feedback).toMatch(/Missing formulas: .*f\(n\)=f\(n-1\)\+f\(n-2\)/);
    expect(jBad.feedback).toMatch(/unsupported: .*"cleverly"/);
    expect(jEmpty.score).toBeLessThan(3);
  });

  it("refines with what the feedback names and improves the score", async () => {
    const p = new OfflineProvider();
    const blocks = [BLOCK];
    const mementos = ["Therefore the answer is 89."];
    let [j] = await p.judgeMementos(blocks, mementos);
    const first = j.score;
    expect(first).toBeLessThan(8);
    [mementos[0]] = await p.refineMementos(blocks, mementos, [j], [0]);
    expect(mementos[0]).toContain("f(n)=f(n-1)+f(n-2)");
    [j] = await p.judgeMementos(blocks, mementos);
    expect(j.score).toBeGreaterThan(first);
    expect(refineHeuristic(BLOCK, "x", "Missing formulas: f(1)=1.")).toBe("x; f(1)=1");
  });

  it("extracts relations with spaced operators", () => {
    expect(extractFormulas("so x^2 + 2x + 1 = (x + 1)^2 and a \\le b, sum 1 + 3 + 5 = 9.")).toEqual([
      "x^2+2x+1=(x+1)^2",
      "a\\leb",
      "1+3+5=9",
    ]);
  });

  it("uses an injected token counter", () => {
    const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
    const m = extractiveMemento(BLOCK, words, 0.5);
    expect(words(m)).toBeGreaterThan(words(extractiveMemento(BLOCK, words, 0.1)));
    expect(judgeHeuristic(BLOCK, m, words).score).toBeGreaterThanOrEqual(0);
  });
});
