import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { readAllRecords, readRecords } from "../src/data/readers.js";
import {
  contentHash,
  countCjk,
  detectDomain,
  extractTrace,
  formatSeedReport,
  mapFields,
  parseFieldMapping,
  selectSeeds,
  splitThink,
} from "../src/data/seed.js";
import type { SeedTrace } from "../src/data/types.js";
import { encodeParquet, type OutputRow } from "../src/data/writers.js";
import { describeWithReference, referencePath } from "./helpers/reference.js";
import { runInProcess as run } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const tmp = tempDir("memento-seed-");
afterEach(() => vi.restoreAllMocks());

/** Reasoning of at least `n` characters. */
function longReasoning(tag: string, n = 2100): string {
  const sentence = `Let me reconsider the quantity ${tag} step by step and check the arithmetic carefully. `;
  return sentence.repeat(Math.ceil(n / sentence.length)).trim();
}

describe("splitThink", () => {
  it("cuts at <think>...</think>", () => {
    expect(splitThink("<think> a b </think>\n\nanswer")).toEqual({
      ok: true,
      reasoning: "a b",
      answer: "answer",
      tagged: true,
    });
  });
  it("accepts a missing <think> when </think> is there", () => {
    expect(splitThink("reasoning</think>ans")).toMatchObject({ ok: true, reasoning: "reasoning", answer: "ans" });
  });
  it("rejects an unclosed think section", () => {
    expect(splitThink("<think> never ends")).toEqual({ ok: false });
  });
  it("treats untagged text as reasoning", () => {
    expect(splitThink(" plain ")).toEqual({ ok: true, reasoning: "plain", answer: "", tagged: false });
  });
  it("understands OpenThoughts-1 thought/solution markers", () => {
    const r = splitThink("<|begin_of_thought|>think<|end_of_thought|>\n\n<|begin_of_solution|>sol<|end_of_solution|>");
    expect(r).toMatchObject({ ok: true, reasoning: "think", answer: "sol" });
  });
});

describe("field mapping", () => {
  it("auto-detects conversations with from/value and role/content", () => {
    const a = mapFields({
      conversations: [
        { from: "human", value: "P?" },
        { from: "gpt", value: "<think>r</think>a" },
      ],
    });
    expect(a).toMatchObject({ problem: "P?", response: "<think>r</think>a" });
    const b = mapFields({
      messages: [
        { role: "system", content: "s" },
        { role: "user", content: "Q" },
        { role: "assistant", content: "R" },
      ],
    });
    expect(b).toMatchObject({ problem: "Q", response: "R" });
  });
  it("auto-detects cot+problem, problem/response, question/answer and reasoning+answer", () => {
    expect(mapFields({ cot: "<think>x</think>", problem: "p", answer: "42" })).toMatchObject({
      problem: "p",
      response: "<think>x</think>",
      answer: "42",
    });
    expect(mapFields({ problem: "p", response: "r" })).toMatchObject({ problem: "p", response: "r" });
    const qa = mapFields({ question: "q", answer: "<think>t</think>a" });
    expect(qa).toMatchObject({ problem: "q", response: "<think>t</think>a" });
    expect(qa?.answer).toBeUndefined();
    expect(mapFields({ prompt: "p", reasoning: "r", answer: "a" })).toMatchObject({
      problem: "p",
      reasoning: "r",
      answer: "a",
    });
  });
  it("returns null when nothing maps", () => {
    expect(mapFields({ text: "hello" })).toBeNull();
  });
  it("follows an explicit mapping with dotted paths", () => {
    const rec = { q: "the problem", data: { out: "<think>r</think>ans" } };
    expect(mapFields(rec, { problem: "q", response: "data.out" })).toMatchObject({
      problem: "the problem",
      response: "<think>r</think>ans",
    });
  });
  it("parses --field pairs and rejects bad ones", () => {
    expect(parseFieldMapping(["problem=question", "response=output"])).toEqual({
      problem: "question",
      response: "output",
    });
    expect(() => parseFieldMapping(["problem"])).toThrow(/KEY=FIELD/);
    expect(() => parseFieldMapping(["colour=x"])).toThrow(/unknown key "colour"/);
    expect(() => parseFieldMapping(["response=a", "reasoning=b"])).toThrow(/mutually exclusive/);
  });
});

describe("domain heuristic", () => {
  it("tags code by fences, def, #include, input(), print(", () => {
    expect(detectDomain("Write code:\n```python\nx=1\n```")).toBe("code");
    expect(detectDomain("Fix def foo(x): return x")).toBe("code");
    expect(detectDomain("#include <stdio.h> prints what?")).toBe("code");
    expect(detectDomain("Read n = int(input()) and print(n)")).toBe("code");
    expect(detectDomain("Sum the list.", "```cpp\nint main(){}\n```")).toBe("code");
  });
  it("tags science by keywords and four A-D options", () => {
    expect(detectDomain("What is the pH of a 0.1 M acetic acid solution?")).toBe("science");
    expect(detectDomain("Which enzyme unwinds DNA during replication?")).toBe("science");
    expect(detectDomain("Which is largest?\nA) 1\nB) 2\nC) 3\nD) 4")).toBe("science");
  });
  it("keeps math otherwise, including AMC-style A-E options", () => {
    expect(detectDomain("Find all real x with x^2 = 4.")).toBe("math");
    expect(detectDomain("Compute 2+2.\n(A) 1\n(B) 2\n(C) 3\n(D) 4\n(E) 5")).toBe("math");
  });
});

describe("extractTrace", () => {
  const base = { problem: "Find x such that x^2 = 4.", cot: `<think>${longReasoning("x")}</think>\n\nx = 2` };

  it("keeps a well-formed trace with id, source, domain, answer", () => {
    const r = extractTrace({ ...base, task_id: "t-1", source: "src-a", domain: "MATH", difficulty: 5 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.trace).toMatchObject({ id: "t-1", source: "src-a", domain: "math", answer: "x = 2", difficulty: 5 });
    expect(r.trace.reasoning.startsWith("Let me")).toBe(true);
    expect(r.trace.reasoning).not.toContain("<think>");
  });

  it("uses a content hash id and the default source when the record has none", () => {
    const r = extractTrace(base, { source: "file-x" });
    if (!r.ok) throw new Error("dropped");
    expect(r.trace.id).toBe(`h-${contentHash(r.trace.problem, r.trace.reasoning).slice(0, 16)}`);
    expect(r.trace.source).toBe("file-x");
  });

  it("falls back to the heuristic for an invalid domain", () => {
    const r = extractTrace({ ...base, domain: "olympiad", problem: "What is the molar mass of water?" });
    if (!r.ok) throw new Error("dropped");
    expect(r.trace.domain).toBe("science");
  });

  it.each([
    ["no_think_end", { problem: "p", cot: `<think>${longReasoning("y")}` }],
    ["cjk", { problem: "p", cot: `<think>${longReasoning("y")} 所以答案是</think>` }],
    ["too_short", { problem: "p", cot: "<think>short</think>" }],
    ["empty_problem", { problem: "  ", cot: `<think>${longReasoning("y")}</think>` }],
    ["empty_reasoning", { problem: "p", cot: "<think> </think> a" }],
    ["unmapped", { title: "nothing here" }],
  ])("drops with reason %s", (reason, rec) => {
    const r = extractTrace(rec as Record<string, unknown>);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
  });

  it("honours minChars, minTokens and maxCjk", () => {
    const rec = { problem: "p", cot: "<think>one two three four five 答</think>" };
    expect(extractTrace(rec, { minChars: 0 })).toMatchObject({ ok: false, reason: "cjk" });
    expect(extractTrace(rec, { minChars: 0, maxCjk: 1 }).ok).toBe(true);
    expect(extractTrace(rec, { minChars: 0, maxCjk: 1, minTokens: 100 })).toMatchObject({
      ok: false,
      reason: "too_short",
    });
    expect(countCjk("漢字かなカナ한글 abc")).toBe(8);
  });
});

describe("selectSeeds", () => {
  it("reports counts per reason, duplicates and domains", async () => {
    const r1 = longReasoning("a");
    const records = [
      { id: "1", problem: "Find x.", cot: `<think>${r1}</think>` },
      // Same content up to whitespace and case: a duplicate.
      { id: "2", problem: "  find   X. ", cot: `<think>${r1.toUpperCase()}</think>` },
      {
        id: "3",
        problem: "Write a program that reads input() and prints.",
        cot: `<think>${longReasoning("b")}</think>`,
      },
      { id: "4", problem: "p", cot: "<think>unfinished" },
      { id: "5", problem: "p", cot: "<think>tiny</think>" },
      // Same id as a kept trace, different content.
      { id: "1", problem: "Another problem.", cot: `<think>${longReasoning("c")}</think>` },
      { id: "6", problem: "Which organelle makes ATP in the cell?", cot: `<think>${longReasoning("d")}</think>` },
    ];
    const { traces, report } = await selectSeeds(records);
    expect(traces.map((t: SeedTrace) => t.id)).toEqual(["1", "3", "6"]);
    expect(report).toMatchObject({
      read: 7,
      kept: 3,
      duplicates: 1,
      dropped: { no_think_end: 1, too_short: 1, duplicate_id: 1 },
      byDomain: { math: 1, code: 1, science: 1 },
    });
    expect(report.duplicateExamples).toEqual([{ id: "2", of: "1" }]);
    const sum = Object.values(report.dropped).reduce((a, b) => a + (b ?? 0), 0);
    expect(report.kept + sum + report.duplicates).toBe(report.read);
    const lines = formatSeedReport(report);
    expect(lines).toContain("dropped no_think_end: 1");
    expect(lines).toContain("duplicates: 1");
  });

  it("keeps duplicates when dedupe is off", async () => {
    const rec = { problem: "p", cot: `<think>${longReasoning("z")}</think>` };
    const { report } = await selectSeeds([rec, { ...rec }], { dedupe: false });
    expect(report.kept).toBe(2);
  });
});

describeWithReference("seed selection on the reference raw trace", () => {
  it("keeps the OpenThoughts-v3 example as a math trace with its task_id", async () => {
    const { records } = await readAllRecords(referencePath("raw_trace_example.jsonl"));
    const { traces, report } = await selectSeeds(records, { source: "raw_trace_example" });
    expect(report.kept).toBe(1);
    const t = traces[0];
    expect(t.id).toBe("ot3-train-0000030");
    expect(t.domain).toBe("math");
    expect(t.source).toBe("ai2-adapt-dev/openmath-2-math");
    expect(t.reasoning.startsWith("Okay, so I have this problem")).toBe(true);
    expect(t.reasoning.endsWith("}")).toBe(true);
    expect(t.reasoning.length).toBeGreaterThan(30_000);
    expect(t.answer).toBe("");
  });
});

describe("readers", () => {
  it("streams JSONL, skipping blank lines, and names FILE:LINE for a bad line", async () => {
    const p = join(tmp, "bad.jsonl");
    writeFileSync(p, '{"a":1}\n\n{"a":2}\n{oops\n[1]\n{"a":3}\n');
    await expect(readAllRecords(p)).rejects.toThrow(`${p}:4: invalid JSON`);
    const skipped: number[] = [];
    const items = [];
    for await (const it of readRecords(p, { lenient: true, onSkip: (i) => skipped.push(i.line) })) items.push(it);
    expect(items.map((i) => [i.record.a, i.index, i.line])).toEqual([
      [1, 0, 1],
      [2, 1, 3],
      [3, 4, 6],
    ]);
    expect(skipped).toEqual([4, 5]);
  });

  it("reports an unreadable file as a user error", async () => {
    await expect(readAllRecords(join(tmp, "missing.jsonl"))).rejects.toThrow(/cannot read file \(ENOENT\)/);
  });

  it("reads Parquet row group by row group, whatever the extension", async () => {
    const rows: OutputRow[] = Array.from({ length: 5 }, (_, i) => ({
      problem: `p${i}`,
      response: `r${i}`,
      domain: "math",
      source: "s",
      difficulty: i,
    }));
    const p = join(tmp, "rows.bin");
    writeFileSync(p, encodeParquet(rows, { meta: false, rowGroupSize: 2 }));
    const got = [];
    for await (const it of readRecords(p)) got.push(it);
    expect(got.map((g) => g.index)).toEqual([0, 1, 2, 3, 4]);
    expect(got.map((g) => g.record)).toEqual(rows);
  });

  it("rejects a corrupt Parquet file with a one-line user error", async () => {
    const p = join(tmp, "corrupt.parquet");
    writeFileSync(p, "PAR1 this is not parquet at all PAR1");
    await expect(readAllRecords(p)).rejects.toThrow(/invalid Parquet file/);
  });
});

describe("memento data seed", () => {
  const input = join(tmp, "in.jsonl");
  writeFileSync(
    input,
    [
      { task_id: "a", problem: "Find x.", cot: `<think>${longReasoning("a")}</think>` },
      { task_id: "b", problem: "p", cot: "<think>never closed" },
      {
        task_id: "c",
        question: "Which gas do plants absorb in photosynthesis? It is a molecule.",
        output: `<think>${longReasoning("c")}</think>B`,
      },
    ]
      .map((r) => JSON.stringify(r))
      .join("\n") + "\n",
  );

  it("writes SeedTrace JSONL and prints the report", async () => {
    const output = join(tmp, "seeds.jsonl");
    const r = await run(["data", "seed", "--input", input, "--output", output]);
    expect(r.code).toBe(0);
    const traces = readFileSync(output, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as SeedTrace);
    expect(traces.map((t) => [t.id, t.domain, t.source])).toEqual([
      ["a", "math", "in"],
      ["c", "science", "in"],
    ]);
    expect(traces[1].answer).toBe("B");
    expect(r.err).toContain("read: 3");
    expect(r.err).toContain("kept: 2");
    expect(r.err).toContain("dropped no_think_end: 1");
  });

  it("writes to stdout without --output and applies --min-chars and --field", async () => {
    const p = join(tmp, "mapped.jsonl");
    writeFileSync(p, JSON.stringify({ q: "What is 1+1?", gen: "<think>short thought</think>2" }) + "\n");
    const r = await run([
      "data",
      "seed",
      "--input",
      p,
      "--min-chars",
      "5",
      "--field",
      "problem=q",
      "--field",
      "response=gen",
    ]);
    expect(r.code).toBe(0);
    const t = JSON.parse(r.out) as SeedTrace;
    expect(t).toMatchObject({ problem: "What is 1+1?", reasoning: "short thought", answer: "2", source: "mapped" });
  });

  it.each([
    [["--min-chars", "-3"], /--min-chars: expected a non-negative integer/],
    [["--field", "nope"], /--field: expected KEY=FIELD/],
  ])("exits 2 with a one-line error for bad options %j", async (extra, msg) => {
    const r = await run(["data", "seed", "--input", input, ...extra]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  it("exits 2 for an unreadable input and a malformed line", async () => {
    const missing = await run(["data", "seed", "--input", join(tmp, "nope.jsonl")]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/nope\.jsonl: cannot read file/);
    const bad = join(tmp, "bad2.jsonl");
    writeFileSync(bad, "{\n");
    const r = await run(["data", "seed", "--input", bad, "--output", join(tmp, "never.jsonl")]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad2\.jsonl:1: invalid JSON/);
    expect(() => readFileSync(join(tmp, "never.jsonl"))).toThrow();
    const lenient = await run(["data", "seed", "--input", bad, "--lenient"]);
    expect(lenient.code).toBe(0);
    expect(lenient.err).toContain("skipped lines: 1");
  });
});
