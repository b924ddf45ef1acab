import { afterEach, describe, expect, it, vi } from "vitest";
import { dataSplitOutput } from "../src/cli/data-split.js";
import { runInProcess as run } from "./helpers/cli.js";
import { describeWithReference, referenceDir, repoRoot } from "./helpers/reference.js";
import { join } from "node:path";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

const FIXTURE = join(repoRoot, "test", "fixtures", "split-reference-boundaries.json");

afterEach(() => vi.restoreAllMocks());

const TRACE =
  "<think>\nFirst we look at it (e.g. this. Yes). Ok.\n\nWe have:\n$$x = 1.5$$\n\nTherefore, x is known.\n</think>\nAnswer: 1.5";

describe("memento data split", () => {
  it("prints {sentences, spans} for raw text with <think> tags", async () => {
    const r = await run(["data", "split", "--estimate"], TRACE);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { sentences: string[]; spans: [number, number][] };
    // Two short computations merge (both carry math/code symbols); prose "Therefore" does not join math.
    expect(out.sentences).toEqual([
      "First we look at it (e.g. this. Yes). Ok.\n\nWe have:\n$$x = 1.5$$",
      "Therefore, x is known.",
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
    expect(out.stats).toMatchObject({ naiveSentences: 7, sentences: 4, naiveBoundaries: 6, boundaries: 3 });
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

describe("memento data split --compare: errors", () => {
  it("a missing reference directory, a bad fixture or a flag without --compare is one line and exit 2", async () => {
    const missing = await run([
      "data",
      "split",
      "--compare",
      FIXTURE,
      "--reference-dir",
      "/nonexistent-ref",
      "--estimate",
    ]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^memento: \/nonexistent-ref\/raw_trace_example\.jsonl: cannot read file/);
    expect(missing.err.trim().split("\n")).toHaveLength(1);
    const dir = mkdtempSync(join(tmpdir(), "split-compare-"));
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ about: "x", texts: [] }));
    const notFixture = await run(["data", "split", "--compare", bad, "--estimate"]);
    expect(notFixture.code).toBe(2);
    expect(notFixture.err).toMatch(/^memento: .*bad\.json: not a split fixture/);
    const stray = await run(["data", "split", "--tolerance", "2", "--estimate"], "Some text here.");
    expect(stray.code).toBe(2);
    expect(stray.err).toMatch(/^memento: --tolerance needs --compare/);
  });
});

describeWithReference("memento data split --compare (reference texts)", () => {
  it("prints one row per text and the pooled boundaries; --json gives the same numbers", async () => {
    const args = ["data", "split", "--compare", FIXTURE, "--reference-dir", referenceDir, "--estimate"];
    const table = await run(args);
    expect(table.code).toBe(0);
    const rows = table.out.trim().split("\n");
    expect(rows[0]).toMatch(/^text\s+reference\s+ours\s+ours\/ref\s+precision\s+recall\s+F1$/);
    expect(rows.slice(1, 5).map((r) => r.split(/\s+/)[0])).toEqual(["raw_trace", "response", "code", "science"]);
    expect(rows[5]).toMatch(/^all boundaries\s+285\s/);
    const json = await run([...args, "--json"]);
    expect(json.code).toBe(0);
    const c = JSON.parse(json.out) as { toleranceChars: number; texts: { name: string; f1: number }[] };
    expect(c.toleranceChars).toBe(3);
    expect(rows[1]).toContain(c.texts[0].f1.toFixed(3));
  });
});
