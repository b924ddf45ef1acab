import { describe, expect, it } from "vitest";
import { OfflineProvider } from "../src/data/providers/offline.js";
import { OpenAIProvider } from "../src/data/providers/openai.js";
import { scoreTraceBoundaries, scoreWindows } from "../src/data/stages/score.js";
import type { Judgment, Provider, Usage } from "../src/data/types.js";
import { UserError } from "../src/errors.js";
import { useFakeOpenAI } from "./helpers/fake-openai.js";

/** A provider whose scores encode the global boundary index (recovered from the sentence text). */
class RecordingProvider implements Provider {
  readonly name = "recording";
  readonly heuristic = true;
  readonly models = { score: "r", compress: "r", judge: "r" };
  windows: number[][] = [];
  constructor(private readonly scoreOf: (globalBoundary: number, windowSize: number) => number) {}
  async scoreBoundaries(sentences: readonly string[]): Promise<number[]> {
    const ids = sentences.map((s) => Number(/^s(\d+)$/.exec(s)![1]));
    this.windows.push(ids);
    return ids.slice(0, -1).map((id) => this.scoreOf(id, sentences.length));
  }
  async writeMementos(): Promise<string[]> {
    return [];
  }
  async judgeMementos(): Promise<Judgment[]> {
    return [];
  }
  async refineMementos(): Promise<string[]> {
    return [];
  }
  usage(): Usage {
    return { promptTokens: 0, completionTokens: 0, requests: this.windows.length };
  }
}

const sentencesOf = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`);

describe("scoreTraceBoundaries windows", () => {
  it.each([1, 2, 16, 17, 40])("n = %i: every boundary is scored exactly once per pass", async (n) => {
    for (const windows of [[16], [11], [16, 11], [2], [3, 5]]) {
      const p = new RecordingProvider(() => 1);
      const seen = windows.map(() => new Array<number>(Math.max(0, n - 1)).fill(0));
      const r = await scoreTraceBoundaries(sentencesOf(n), p, { windows });
      // replay the calls in order: the windows of pass k come after those of pass k-1
      let call = 0;
      windows.forEach((w, pass) => {
        for (const win of scoreWindows(n, w)) {
          const ids = p.windows[call++];
          expect(ids).toEqual(Array.from({ length: win.end - win.start }, (_, i) => win.start + i));
          expect(ids.length).toBeLessThanOrEqual(w);
          expect(ids.length).toBeGreaterThanOrEqual(2);
          for (const id of ids.slice(0, -1)) seen[pass][id]++;
        }
      });
      expect(call).toBe(p.windows.length);
      for (const s of seen) expect(s.every((c) => c === 1)).toBe(true);
      expect(r.scores).toHaveLength(Math.max(0, n - 1));
      expect(r.passes).toHaveLength(windows.length);
      if (n < 2) expect(p.windows).toHaveLength(0);
    }
  });

  it("windows overlap by exactly one sentence", () => {
    expect(scoreWindows(40, 16)).toEqual([
      { start: 0, end: 16 },
      { start: 15, end: 31 },
      { start: 30, end: 40 },
    ]);
    expect(scoreWindows(17, 16)).toEqual([
      { start: 0, end: 16 },
      { start: 15, end: 17 },
    ]);
    expect(scoreWindows(16, 16)).toEqual([{ start: 0, end: 16 }]);
    expect(scoreWindows(2, 16)).toEqual([{ start: 0, end: 2 }]);
    expect(scoreWindows(1, 16)).toEqual([]);
    expect(scoreWindows(0, 16)).toEqual([]);
    expect(() => scoreWindows(10, 1)).toThrow(UserError);
    expect(() => scoreWindows(10, 2.5)).toThrow(UserError);
  });

  it("averages two passes per boundary", async () => {
    // calls run in order (concurrency 1): the first pass (window 16) scores 3 everywhere, the second (window 11)
    // scores boundary % 4
    const n = 40;
    const firstPassCalls = scoreWindows(n, 16).length;
    let calls = 0;
    const p = new RecordingProvider((b) => (calls <= firstPassCalls ? 3 : b % 4));
    const original = p.scoreBoundaries.bind(p);
    p.scoreBoundaries = async (s) => {
      calls++;
      return original(s);
    };
    const r = await scoreTraceBoundaries(sentencesOf(n), p, { windows: [16, 11] });
    expect(r.passes[0]).toEqual(new Array(n - 1).fill(3));
    expect(r.passes[1]).toEqual(Array.from({ length: n - 1 }, (_, b) => b % 4));
    expect(r.scores).toEqual(Array.from({ length: n - 1 }, (_, b) => (3 + (b % 4)) / 2));
  });

  it("reports progress and supports concurrency without changing the result", async () => {
    const sentences = [
      "We want the area of the triangle.",
      "The base is 6 and the height is 4.",
      "So the area is 12.",
      "Let me check with Heron's formula.",
      "The sides are 5, 5 and 6, so s = 8.",
      "Area = sqrt(8 * 3 * 3 * 2) = 12.",
      "Alternatively, use coordinates.",
      "Now place the base on the x-axis.",
      "Finally, the answer is 12.",
    ];
    const progress: number[] = [];
    const a = await scoreTraceBoundaries(sentences, new OfflineProvider(), {
      windows: [4, 3],
      onProgress: (p) => progress.push(p.done),
    });
    const b = await scoreTraceBoundaries(sentences, new OfflineProvider(), { windows: [4, 3], concurrency: 4 });
    expect(b).toEqual(a);
    expect(progress).toEqual(progress.map((_, i) => i + 1));
    expect(progress.at(-1)).toBe(scoreWindows(9, 4).length + scoreWindows(9, 3).length);
    // single pass default window 16: one call, scores are the heuristic's
    const single = await scoreTraceBoundaries(sentences, new OfflineProvider());
    expect(single.scores).toEqual(await new OfflineProvider().scoreBoundaries(sentences));
    expect(single.passes).toEqual([single.scores]);
  });

  it("rejects a provider answer of the wrong length or range", async () => {
    const wrong = new RecordingProvider(() => 1);
    wrong.scoreBoundaries = async (s) => new Array(s.length).fill(1);
    await expect(scoreTraceBoundaries(sentencesOf(5), wrong)).rejects.toThrow(/expected 4/);
    const range = new RecordingProvider(() => 7);
    await expect(scoreTraceBoundaries(sentencesOf(5), range)).rejects.toThrow(/integer 0-3/);
    await expect(scoreTraceBoundaries(sentencesOf(5), range, { windows: [] })).rejects.toThrow(UserError);
  });
});

describe("scoreTraceBoundaries through the openai provider and the fake server", () => {
  const openai = useFakeOpenAI();

  it("matches the offline provider window by window, with one request per window", async () => {
    const sentences = Array.from({ length: 23 }, (_, i) =>
      i % 5 === 0
        ? `Now consider part ${i}.`
        : i % 7 === 0
          ? `The value is x = ${i}`
          : `Sentence ${i} says something plain.`,
    );
    const p = new OpenAIProvider({ baseURL: openai.fake.baseURL, model: "m", retry: { timeoutMs: 2000 } });
    const remote = await scoreTraceBoundaries(sentences, p, { windows: [16, 11], concurrency: 3 });
    const local = await scoreTraceBoundaries(sentences, new OfflineProvider(), { windows: [16, 11] });
    expect(remote).toEqual(local);
    expect(openai.fake.count("score")).toBe(scoreWindows(23, 16).length + scoreWindows(23, 11).length);
    expect(p.usage().requests).toBe(openai.fake.count("score"));
  });
});
