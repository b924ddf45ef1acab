import { describe, expect, it } from "vitest";
import { toJudgment } from "../src/data/prompts.js";
import { OfflineProvider } from "../src/data/providers/offline.js";
import { OpenAIProvider } from "../src/data/providers/openai.js";
import { writeMementosWithJudge } from "../src/data/stages/mementos.js";
import type { Judgment, Provider, Usage } from "../src/data/types.js";
import { UserError } from "../src/errors.js";
import { useFakeOpenAI } from "./helpers/fake-openai.js";

/**
 * A scripted provider: block i's memento in version v is `b{i}v{v}`, and its judge score is `scores[i][v]`
 * (the last entry repeats). Records every call.
 */
class ScriptedProvider implements Provider {
  readonly name = "scripted";
  readonly heuristic = true;
  readonly models = { score: "s", compress: "s", judge: "s" };
  calls: string[] = [];
  refineArgs: { indices: number[]; feedback: string[] }[] = [];
  constructor(private readonly scores: number[][]) {}
  async scoreBoundaries(): Promise<number[]> {
    return [];
  }
  async writeMementos(_p: string, blocks: readonly string[]): Promise<string[]> {
    this.calls.push(`write:${blocks.length}`);
    return blocks.map((_, i) => `b${i}v0`);
  }
  async judgeMementos(_blocks: readonly string[], mementos: readonly string[]): Promise<Judgment[]> {
    this.calls.push(`judge:${mementos.join(",")}`);
    return mementos.map((m) => {
      const [, i, v] = /^b(\d+)v(\d+)$/.exec(m)!.map(Number);
      const row = this.scores[i];
      const score = row[Math.min(v, row.length - 1)];
      // spread the score over the dimensions (formulas first)
      let left = score;
      const take = (max: number) => {
        const x = Math.min(max, left);
        left -= x;
        return x;
      };
      const d = {
        formulas: take(3),
        values: take(2),
        methods: take(2),
        validation: take(1),
        noHallucination: take(1),
        resultFirst: take(1),
      };
      return toJudgment(d, `feedback for ${m}`);
    });
  }
  async refineMementos(
    _b: readonly string[],
    mementos: readonly string[],
    judgments: readonly Judgment[],
    indices: readonly number[],
  ): Promise<string[]> {
    this.calls.push(`refine:${indices.join(",")}`);
    this.refineArgs.push({ indices: [...indices], feedback: indices.map((i) => judgments[i].feedback) });
    return indices.map((i) => {
      const v = Number(/v(\d+)$/.exec(mementos[i])![1]);
      return `b${i}v${v + 1}`;
    });
  }
  usage(): Usage {
    return { promptTokens: 0, completionTokens: 0, requests: this.calls.length };
  }
}

const BLOCKS = ["block zero", "block one", "block two", "block three"];

describe("writeMementosWithJudge", () => {
  it("refines only the failing mementos, re-judges them, and stops at maxRounds", async () => {
    // block 0 passes at once; block 1 passes after one refinement; block 2 never passes; block 3 after two
    const p = new ScriptedProvider([[9], [5, 8], [3, 4, 6, 9], [7, 7, 10]]);
    const r = await writeMementosWithJudge("problem", BLOCKS, p, { threshold: 8, maxRounds: 2 });
    expect(p.calls).toEqual([
      "write:4",
      "judge:b0v0,b1v0,b2v0,b3v0",
      "refine:1,2,3",
      "judge:b1v1,b2v1,b3v1",
      "refine:2,3",
      "judge:b2v2,b3v2",
    ]);
    expect(p.refineArgs[0].feedback).toEqual(["feedback for b1v0", "feedback for b2v0", "feedback for b3v0"]);
    expect(r.mementos).toEqual(["b0v0", "b1v1", "b2v2", "b3v2"]);
    expect(r.history.map((h) => h.rounds.map((x) => x.memento))).toEqual([
      ["b0v0"],
      ["b1v0", "b1v1"],
      ["b2v0", "b2v1", "b2v2"],
      ["b3v0", "b3v1", "b3v2"],
    ]);
    expect(r.history.map((h) => h.rounds.map((x) => x.judgment.score))).toEqual([[9], [5, 8], [3, 4, 6], [7, 7, 10]]);
    expect(r.history.map((h) => h.passed)).toEqual([true, true, false, true]);
    expect(r.history.map((h) => h.final)).toEqual(r.mementos);
  });

  it("maxRounds 0 judges once; a higher maxRounds keeps going until all pass", async () => {
    const p0 = new ScriptedProvider([[2, 9]]);
    const r0 = await writeMementosWithJudge("p", ["only"], p0, { maxRounds: 0 });
    expect(p0.calls).toEqual(["write:1", "judge:b0v0"]);
    expect(r0.history[0]).toMatchObject({ final: "b0v0", passed: false });

    const p5 = new ScriptedProvider([[1, 2, 3, 8]]);
    const r5 = await writeMementosWithJudge("p", ["only"], p5, { maxRounds: 5 });
    expect(r5.history[0].rounds).toHaveLength(4);
    expect(r5.history[0].passed).toBe(true);
    expect(p5.calls.filter((c) => c.startsWith("refine"))).toHaveLength(3);
  });

  it("uses the threshold", async () => {
    const p = new ScriptedProvider([[6]]);
    const r = await writeMementosWithJudge("p", ["only"], p, { threshold: 6 });
    expect(r.history[0].passed).toBe(true);
    expect(p.calls).toHaveLength(2);
  });

  it("handles no blocks and rejects bad options", async () => {
    const p = new ScriptedProvider([[9]]);
    expect(await writeMementosWithJudge("p", [], p)).toEqual({ mementos: [], history: [] });
    expect(p.calls).toEqual([]);
    await expect(writeMementosWithJudge("p", ["x"], p, { maxRounds: -1 })).rejects.toThrow(UserError);
    await expect(writeMementosWithJudge("p", ["x"], p, { threshold: 11 })).rejects.toThrow(UserError);
  });

  it("rejects a provider that returns the wrong number of mementos", async () => {
    const p = new ScriptedProvider([[9]]);
    p.writeMementos = async () => ["a"];
    await expect(writeMementosWithJudge("p", ["x", "y"], p)).rejects.toThrow(/expected 2/);
  });

  it("runs end to end with the offline provider, deterministically", async () => {
    const blocks = [
      "We set up f(n) = f(n-1) + f(n-2) with f(1) = 1 and f(2) = 2. Then f(3) = 3 and f(4) = 5. Let me verify f(3) by listing the three tilings, which matches.",
      "Alternatively, a closed form fails here because the indices are shifted, so that doesn't work. Continuing, f(10) = 89. Therefore the answer is 89.",
    ];
    const a = await writeMementosWithJudge("Count tilings.", blocks, new OfflineProvider());
    const b = await writeMementosWithJudge("Count tilings.", blocks, new OfflineProvider());
    expect(a).toEqual(b);
    expect(a.mementos).toHaveLength(2);
    for (const h of a.history) {
      expect(h.rounds.length).toBeGreaterThanOrEqual(1);
      expect(h.rounds.length).toBeLessThanOrEqual(3);
      expect(h.final).toBe(h.rounds.at(-1)!.memento);
      expect(h.passed).toBe(h.rounds.at(-1)!.judgment.score >= 8);
    }
  });
});

describe("writeMementosWithJudge through the openai provider and the fake server", () => {
  const openai = useFakeOpenAI();

  it("gives the same result as the offline provider", async () => {
    const blocks = [
      "Let me define g(x) = x^2 - 4x + 3. Factoring gives g(x) = (x - 1)(x - 3). So the roots are 1 and 3.",
      "Now check: g(1) = 1 - 4 + 3 = 0 and g(3) = 9 - 12 + 3 = 0, which confirms both. Therefore the answer is 1 and 3.",
    ];
    const p = new OpenAIProvider({ baseURL: openai.fake.baseURL, model: "m", retry: { timeoutMs: 2000 } });
    const remote = await writeMementosWithJudge("Solve g(x) = 0.", blocks, p);
    const local = await writeMementosWithJudge("Solve g(x) = 0.", blocks, new OfflineProvider());
    expect(remote).toEqual(local);
    const kinds = openai.fake.requests.map((r) => r.kind);
    expect(kinds[0]).toBe("compress");
    expect(kinds[1]).toBe("judge");
    expect(kinds.length).toBe(2 + 2 * (Math.max(...local.history.map((h) => h.rounds.length)) - 1));
  });
});
