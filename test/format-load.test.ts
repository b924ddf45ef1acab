import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Command } from "commander";
import { main } from "../src/cli/main.js";
import { traceCommand, validateLoaded } from "../src/cli/trace-validate.js";
import { loadResponses, parseResponsesFile } from "../src/format/load.js";
import { rowToResponse } from "../src/format/openmementos.js";
import { buildResponse } from "../src/format/response.js";
import { BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START } from "../src/format/tokens.js";
import { describeWithReference, referencePath } from "./helpers/reference.js";

const good = buildResponse({ blocks: ["b1", "b2"], mementos: ["m1", "m2"], answer: "42" });
const bad = `<think>\n${BLOCK_START}b1${BLOCK_END}\n${SUMMARY_START}m1${SUMMARY_END}\noops\n</think>\n\n42`;

const baseRow = {
  problem: "q",
  response: "",
  domain: "math",
  source: "t",
  difficulty: 1,
  sentences: ["A.", "B.", "C."],
  blocks: [
    [0, 0],
    [1, 2],
  ] as [number, number][],
  block_summaries: ["a", "bc"],
};
const goodRow = { ...baseRow, response: rowToResponse({ ...baseRow, response: "</think>x" }) };

let dir: string;
const file = (name: string, content: string): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "memento-format-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("loadResponses: kind detection", () => {
  it("a plain response file is one text response", () => {
    const r = loadResponses(file("r.txt", good));
    expect(r).toEqual({ kind: "text", responses: [{ id: "r.txt", text: good, line: 1 }] });
  });

  it("strips a UTF-8 BOM", () => {
    expect(parseResponsesFile("\ufeff" + good, "x").responses[0].text).toBe(good);
  });

  it("JSONL of {response} objects, with ids, problems and line numbers", () => {
    const content = [
      JSON.stringify({ id: "a", response: good, problem: "p" }),
      "",
      JSON.stringify({ task_id: 7, response: bad }),
    ].join("\n");
    const r = loadResponses(file("r.jsonl", content));
    expect(r.kind).toBe("responses");
    expect(r.responses.map((x) => [x.id, x.line, x.problem])).toEqual([
      ["a", 1, "p"],
      ["7", 3, undefined],
    ]);
    expect(r.responses[1].text).toBe(bad);
  });

  it("JSONL of OpenMementos rows", () => {
    const r = parseResponsesFile(JSON.stringify(goodRow) + "\n" + JSON.stringify(goodRow) + "\n", "rows.jsonl");
    expect(r.kind).toBe("openmementos");
    expect(r.responses).toHaveLength(2);
    expect(r.responses[1]).toMatchObject({
      id: "line 2",
      line: 2,
      text: goodRow.response,
      problem: "q",
      record: goodRow,
    });
    // A one-line file is also a single JSON document.
    expect(parseResponsesFile(JSON.stringify(goodRow), "one.jsonl")).toMatchObject({
      kind: "openmementos",
      responses: [{ id: "one.jsonl", line: 1 }],
    });
  });

  it("a single JSON object or an array of them", () => {
    expect(parseResponsesFile(JSON.stringify({ response: good }, null, 2), "one.json")).toMatchObject({
      kind: "responses",
      responses: [{ id: "one.json", text: good }],
    });
    expect(
      parseResponsesFile(JSON.stringify([{ response: good }, { response: bad }]), "arr.json").responses.map(
        (x) => x.id,
      ),
    ).toEqual(["[0]", "[1]"]);
  });

  it("a segments JSON is rebuilt in the canonical layout", () => {
    const seg = (type: string, block_idx: number, text: string) => ({
      type,
      block_idx,
      text,
      char_len: text.length,
      approx_tokens: Math.floor(text.length / 4),
    });
    const trace = {
      problem: "p",
      problem_source: "s",
      answer: "42",
      segments: [
        seg("block", 1, "b1"),
        seg("summary", 1, "m1"),
        seg("block", 2, "b2"),
        seg("summary", 2, "m2"),
        seg("answer", 0, "42"),
      ],
    };
    const r = parseResponsesFile(JSON.stringify(trace, null, 2), "t.json");
    expect(r.kind).toBe("segments");
    expect(r.responses[0].text).toBe(good);
    expect(r.responses[0].problem).toBe("p");
  });

  it("fails with a one-line UserError on unreadable or malformed input", () => {
    expect(() => loadResponses(join(dir, "missing.txt"))).toThrow(/missing.txt: cannot read file \(ENOENT\)/);
    expect(() => parseResponsesFile(`{"response": "a"}\n{"response": `, "x.jsonl")).toThrow(/^x.jsonl:2: invalid JSON/);
    expect(() => parseResponsesFile(`{"text": "a"}`, "x.jsonl")).toThrow(/^x.jsonl:1: no "response" string/);
    expect(() => parseResponsesFile(`[1]`, "x.json")).toThrow(/expected a JSON object/);
    const seg = `{"problem": "p", "problem_source": "s", "answer": "a", "segments": [{"type": "block"}]}`;
    expect(() => parseResponsesFile(seg, "s.json")).toThrow(/^s.json: invalid segments JSON: segments.0.block_idx/);
  });
});

describe("validateLoaded", () => {
  it("text files: diagnostics at file line:col", () => {
    const r = validateLoaded("f.txt", parseResponsesFile(bad, "f.txt"));
    expect(r.lines).toEqual([
      `f.txt:4:1: text_outside_block: text outside any block inside <think> (after a memento): "oops"`,
    ]);
    expect(r.exitCode).toBe(1);
    expect(validateLoaded("g.txt", parseResponsesFile(good, "g.txt"))).toMatchObject({
      exitCode: 0,
      lines: [],
      errors: 0,
    });
  });

  it("JSONL: record line, and the position inside the response", () => {
    const content = JSON.stringify({ response: good }) + "\n" + JSON.stringify({ id: "r2", response: bad });
    const r = validateLoaded("f.jsonl", parseResponsesFile(content, "f.jsonl"));
    expect(r.lines).toEqual([
      `f.jsonl:2:1: text_outside_block: text outside any block inside <think> (after a memento): "oops" (response r2, response line 4, column 1)`,
    ]);
  });

  it("rows: schema and consistency problems are errors", () => {
    const broken = { ...goodRow, blocks: [[0, 0]] };
    const edited = { ...goodRow, block_summaries: ["a", "different"] };
    const content = [goodRow, broken, edited].map((x) => JSON.stringify(x)).join("\n");
    const r = validateLoaded("rows.jsonl", parseResponsesFile(content, "rows.jsonl"));
    expect(r.lines).toEqual([
      "rows.jsonl:2:1: row_schema: row line 2: blocks: blocks cover sentences 0..0 but there are 3 sentences (the last 2 are in no block)",
      "rows.jsonl:2:1: row_schema: row line 2: block_summaries: 2 block_summaries for 1 blocks (need exactly one per block)",
      "rows.jsonl:3:1: row_mismatch: row line 3: memento 1 of the response differs from block_summaries[1]",
    ]);
  });

  it("segments files: segment checks are reported at line 1", () => {
    const seg = (type: string, block_idx: number, text: string, char_len = text.length) => ({
      type,
      block_idx,
      text,
      char_len,
      approx_tokens: Math.floor(text.length / 4),
    });
    const trace = {
      problem: "p",
      problem_source: "s",
      answer: "a",
      segments: [seg("block", 1, "b1", 5), seg("summary", 1, "m1"), seg("answer", 0, "a")],
    };
    const r = validateLoaded("t.json", parseResponsesFile(JSON.stringify(trace), "t.json"));
    expect(r.lines).toEqual([
      "t.json:1:1: char_len_mismatch: segment 0 (block 1): char_len 5 but the text has 2 characters",
    ]);
    expect(r.exitCode).toBe(1);
  });

  it("warnings are printed only on request and never fail", () => {
    const s = `<think>${BLOCK_START} ${BLOCK_END}${SUMMARY_START}m${SUMMARY_END}</think>a`;
    expect(validateLoaded("w.txt", parseResponsesFile(s, "w.txt"))).toMatchObject({
      exitCode: 0,
      lines: [],
      warnings: 1,
    });
    expect(validateLoaded("w.txt", parseResponsesFile(s, "w.txt"), { warnings: true }).lines).toEqual([
      "w.txt:1:8: empty_block: warning: block 1 is empty",
    ]);
  });

  it("--allow-missing-think", () => {
    const s = good.slice("<think>\n".length);
    expect(validateLoaded("n.txt", parseResponsesFile(s, "n.txt")).exitCode).toBe(1);
    expect(validateLoaded("n.txt", parseResponsesFile(s, "n.txt"), { allowMissingThink: true }).exitCode).toBe(0);
  });
});

describeWithReference("validateLoaded on the reference segments files", () => {
  for (const name of ["memento_output_response.json", "memento_output_code.json", "memento_output_science.json"]) {
    it(`${name} is valid`, () => {
      const loaded = loadResponses(referencePath(name));
      expect(loaded.kind).toBe("segments");
      expect(validateLoaded(name, loaded, { warnings: true })).toMatchObject({ exitCode: 0, lines: [], warnings: 0 });
    });
  }

  it("the raw OpenThoughts trace is not in Memento format", () => {
    const raw = readFileSync(referencePath("raw_trace_example.jsonl"), "utf8");
    const line = JSON.parse(raw.split("\n")[0]) as { cot: string };
    const r = validateLoaded("raw", parseResponsesFile(line.cot, "raw"));
    expect(r.exitCode).toBe(1);
    expect(r.lines.map((l) => l.split(": ")[1])).toEqual(["text_outside_block"]);
  });
});

describe("memento trace validate (CLI)", () => {
  let out: string[];
  let err: string[];
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });
  const run = async (
    ...args: string[]
  ): Promise<{ code: number; exitCode: number | string | undefined; out: string; err: string }> => {
    out = [];
    err = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
      err.push(String(s));
      return true;
    });
    const code = await main(["node", "memento", "trace", "validate", ...args]);
    const exitCode = process.exitCode;
    vi.restoreAllMocks();
    process.exitCode = undefined;
    return { code, exitCode, out: out.join(""), err: err.join("") };
  };

  it("valid file: no diagnostics, exit 0", async () => {
    const p = file("ok.txt", good);
    const r = await run(p);
    expect(r).toMatchObject({ code: 0, out: "" });
    expect(r.exitCode ?? 0).toBe(0);
    expect(r.err).toBe(`${p}: text, 1 response, 0 errors, 0 warnings\n`);
  });

  it("invalid file: one line per diagnostic and exit status 1", async () => {
    const p = file("bad.txt", bad);
    const r = await run(p);
    expect(r.out).toBe(
      `${p}:4:1: text_outside_block: text outside any block inside <think> (after a memento): "oops"\n`,
    );
    expect(r.exitCode).toBe(1);
  });

  it("unreadable or unparseable input: exit 2 with one line", async () => {
    const r = await run(join(dir, "nope.txt"));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^memento: .*nope.txt: cannot read file \(ENOENT\)\n$/);
    const j = await run(file("broken.jsonl", `{"response": "x"}\n{oops`));
    expect(j.code).toBe(2);
    expect(j.err).toMatch(/broken.jsonl:2: invalid JSON/);
  });

  it("traceCommand returns one shared `trace` group", () => {
    const program = new Command("x");
    const a = traceCommand(program);
    expect(traceCommand(program)).toBe(a);
    expect(program.commands.filter((c) => c.name() === "trace")).toHaveLength(1);
  });
});
