import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { traceStats } from "../src/kv/trace-stats.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { parseResponse } from "../src/format/response.js";
import { loadResponses } from "../src/format/load.js";
import { simulateKv } from "../src/kv/simulate.js";
import { resolveMasking } from "../src/masking/config.js";
import { describeWithReference, referencePath, repoRoot } from "./helpers/reference.js";
import { runCli, runInProcess } from "./helpers/cli.js";

const samplePath = join(repoRoot, "assets", "sample-response.txt");

describe("trace stats", () => {
  const tok = loadTokenizer();
  const text = readFileSync(samplePath, "utf8");

  it("block and memento token counts from the tracker equal the tokenizer's counts of the parsed texts", () => {
    const s = traceStats({ id: "sample", text }, { tokenizer: tok });
    const parsed = parseResponse(text);
    expect(s.blocks).toBe(parsed.blocks.length);
    expect(s.blockTokens).toEqual(parsed.blocks.map((b) => tok.count(b.text)));
    expect(s.mementoTokens).toEqual(parsed.mementos.map((m) => tok.count(m.text)));
    expect(s.outputTokens).toBe(tok.count(text));
  });

  it("its KV numbers are the simulator's on the same tokens, memento vs full attention", () => {
    const s = traceStats({ id: "sample", text, problem: "What is 1+1?" }, { tokenizer: tok });
    expect(s.promptTokens).toBeGreaterThan(5);
    const ids = tok.specialTokens;
    const special = {
      blockStart: ids.blockStart,
      blockEnd: ids.blockEnd,
      summaryStart: ids.summaryStart,
      summaryEnd: ids.summaryEnd,
    };
    const tokens = tok.encode(text);
    const alone = simulateKv(tokens, 0, special, resolveMasking({ keepLastNBlocks: 0 }));
    // The prompt adds the same constant to every resident count.
    expect(s.memento.peakTokens).toBe(alone.peakTokens + s.promptTokens);
    expect(s.memento.aucTokens).toBe(alone.aucTokens + s.promptTokens * tokens.length);
    expect(s.vanilla.peakTokens).toBe(s.promptTokens + tokens.length);
    expect(s.peakReduction).toBeGreaterThan(2);
    expect(s.evictions).toBe(4);
  });

  it("keepLastNBlocks -1 gives no reduction", () => {
    const s = traceStats({ id: "sample", text }, { tokenizer: tok, masking: { keepLastNBlocks: -1 } });
    expect(s.peakReduction).toBe(1);
    expect(s.evictions).toBe(0);
  });

  it("CLI prints a table; --json one object per trace; bad --keep is a one-line error", () => {
    const table = runCli(["trace", "stats", samplePath]);
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/sample-response\.txt\s+4\s/);
    expect(table.stdout.split("\n")[0]).toMatch(/memento = keepLastNBlocks 0, vanilla/);
    const keep1 = runCli(["trace", "stats", samplePath, "-k", "1", "--restart-mode"]);
    expect(keep1.stdout.split("\n")[0]).toMatch(/memento = keepLastNBlocks 1, restartMode, vanilla/);
    const json = runCli(["trace", "stats", samplePath, "--json", "-a", "qwen3-32b"]);
    const obj = JSON.parse(json.stdout.trim());
    expect(obj.memento.peakGB).toBeCloseTo((obj.memento.peakTokens * 262144) / 1e9, 9);
    const bad = runCli(["trace", "stats", samplePath, "--keep", "x"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("trace stats refuses input that is not a Memento trace", () => {
  const dir = mkdtempSync(join(tmpdir(), "memento-trace-stats-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string | Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  const cases: [string, string, RegExp][] = [
    ["a binary file (NUL bytes)", file("model.bin", new Uint8Array([0x4d, 0x5a, 0x00, 0x01, 0xff])), /binary file/],
    ["a non-UTF-8 file", file("latin1.txt", new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a])), /not UTF-8 text/],
    ["an empty file", file("empty.txt", ""), /empty, no response/],
    [
      "plain text",
      file("notes.txt", "just some notes\nno markers here\n"),
      /no Memento marker .* in it; not a Memento trace/,
    ],
    [
      "responses without Memento markers",
      file("vanilla.jsonl", '{"response":"<think>\\nplain\\n</think>\\n\\n7"}\n{"response":"8"}\n'),
      /no Memento marker .* in any of its 2 responses/,
    ],
    ["a directory", dir, /cannot read file \(EISDIR\)/],
  ];
  for (const [what, path, message] of cases) {
    it(`${what}: one line on stderr, exit 2, nothing on stdout`, async () => {
      const r = await runInProcess(["trace", "stats", path]);
      expect([r.code, r.out]).toEqual([2, ""]);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toMatch(/^memento: /);
      expect(r.err).toMatch(message);
    });
  }

  it("a file where at least one response is a Memento trace is measured", async () => {
    const sampleText = readFileSync(samplePath, "utf8");
    const mixed = file(
      "mixed.jsonl",
      [{ response: "8" }, { response: sampleText }].map((x) => JSON.stringify(x)).join("\n"),
    );
    const r = await runInProcess(["trace", "stats", mixed, "--json"]);
    expect(r.code).toBe(0);
    expect(
      r.out
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { blocks: number }).blocks),
    ).toEqual([0, 4]);
  });
});

describeWithReference("trace stats on the reference Memento outputs", () => {
  const tok = loadTokenizer();
  for (const name of ["memento_output_response.json", "memento_output_code.json", "memento_output_science.json"]) {
    it(`${name}: every block is counted and evicted, and the peak falls about 2x`, () => {
      const loaded = loadResponses(referencePath(name));
      const r = loaded.responses[0];
      const raw = JSON.parse(readFileSync(referencePath(name), "utf8")) as { segments: { type: string }[] };
      const s = traceStats({ id: name, text: r.text, problem: r.problem }, { tokenizer: tok });
      expect(s.blocks).toBe(raw.segments.filter((x) => x.type === "block").length);
      expect(s.evictions).toBe(s.blocks);
      expect(s.peakReduction).toBeGreaterThan(1.8);
      expect(s.peakReduction).toBeLessThan(3.5);
    });
  }
});

describe("memento demo", () => {
  it("runs with no network and shows blocks, mementos, the reduction and the chart", () => {
    const r = runCli(["demo"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("Format: valid Memento response");
    expect(r.stdout).toMatch(/Block 4 \(\d+ tokens\)/);
    expect(r.stdout).toMatch(/=> \d+\.\d+x lower peak/);
    expect(r.stdout).toContain("#");
  });
});
