import { afterEach, describe, expect, it, vi } from "vitest";
import { dataSplitOutput } from "../src/cli/data-split.js";
import { runInProcess as run } from "./helpers/cli.js";

afterEach(() => vi.restoreAllMocks());

const TRACE =
  "<think>\nFirst we look at it (e.g. this. Yes). Ok.\n\nWe have:\n$$x = 1.5$$\n\nTherefore, x is known.\n</think>\nAnswer: 1.5";

describe("memento data split", () => {
  it("prints {sentences, spans} for raw text with <think> tags", async () => {
    const r = await run(["data", "split", "--estimate"], TRACE);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { sentences: string[]; spans: [number, number][] };
    expect(out.sentences).toEqual([
      "First we look at it (e.g. this. Yes). Ok.",
      "We have:\n$$x = 1.5$$\n\nTherefore, x is known.",
    ]);
    expect(out.spans.map(([s, e]) => TRACE.slice(s, e))).toEqual(out.sentences);
  });

  it("uses the Qwen3 tokenizer by default and agrees with the estimate on this input", async () => {
    const r = await run(["data", "split"], TRACE);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).sentences).toEqual(dataSplitOutput(TRACE, { estimate: true }).sentences);
  });

  it("--stats adds naive vs ours counts; --min-tokens changes the short-fragment rule", async () => {
    const r = await run(["data", "split", "--estimate", "--stats", "--min-tokens", "0"], TRACE);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out);
    expect(out.stats).toMatchObject({ naiveSentences: 7, sentences: 3, naiveBoundaries: 6, boundaries: 2 });
  });

  it("rejects bad options with a one-line error and exit 2", async () => {
    const bad = await run(["data", "split", "--estimate", "--min-tokens", "x"], TRACE);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^memento: --min-tokens: expected a non-negative integer/);
    const both = await run(["data", "split", "--estimate", "--tokenizer", "/nonexistent"], TRACE);
    expect(both.code).toBe(2);
    const dir = await run(["data", "split", "--tokenizer", "/nonexistent-dir"], TRACE);
    expect(dir.code).toBe(2);
    expect(dir.err.trim().split("\n")).toHaveLength(1);
  });

  it("empty input gives no sentences", async () => {
    const r = await run(["data", "split", "--estimate"], "");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ sentences: [], spans: [] });
  });
});
