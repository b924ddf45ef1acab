import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syntheticTraceRecord } from "../src/bench/traces.js";
import { startFakeOpenAI, stopFakeOpenAI, type FakeOpenAI } from "./helpers/fake-openai.js";
import { runCli, runCliAsync, runInProcess } from "./helpers/cli.js";
import { describeWithReference, referencePath, repoRoot } from "./helpers/reference.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { validateResponse } from "../src/format/validate.js";
import { parseResponse } from "../src/format/response.js";
import { buildDataset, type BuildProgress } from "../src/data/runner.js";
import { OfflineProvider } from "../src/data/providers/offline.js";

function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function writeInput(dir: string, records: unknown[]): string {
  const path = join(dir, "input.jsonl");
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}

const idOf = (row: Record<string, unknown>) => (row.meta as { id: string }).id;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "memento-build-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("memento data build (offline)", () => {
  it("builds valid Memento rows with blocks >= 200 tokens, reports dropped seeds, and resumes as a no-op", () => {
    const good = Array.from({ length: 4 }, (_, i) => syntheticTraceRecord(i));
    const noEnd = {
      ...syntheticTraceRecord(10),
      task_id: "no-end",
      cot: syntheticTraceRecord(10).cot.replace("</think>", ""),
    };
    const cjk = {
      ...syntheticTraceRecord(11),
      task_id: "cjk",
      cot: syntheticTraceRecord(11).cot.replace("Okay", "好的"),
    };
    const input = writeInput(dir, [...good, noEnd, cjk]);
    const out = join(dir, "out");
    const r = runCli(["data", "build", "-i", input, "-o", out, "--workers", "2", "--parquet"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/done: 4 completed, 0 failed/);
    const rows = readJsonl(join(out, "openmementos.jsonl"));
    expect(rows.map(idOf)).toEqual(good.map((g) => g.task_id)); // input order, each once
    const tok = loadTokenizer();
    for (const row of rows) {
      const response = row.response as string;
      expect(validateResponse(response).valid).toBe(true);
      const blocks = parseResponse(response).blocks;
      expect(blocks.length).toBeGreaterThanOrEqual(3);
      for (const b of blocks) expect(tok.count(b.text)).toBeGreaterThanOrEqual(200);
      expect((row.meta as { heuristic: boolean }).heuristic).toBe(true);
      expect((row.block_summaries as string[]).length).toBe(blocks.length);
    }
    const report = JSON.parse(readFileSync(join(out, "seed-report.json"), "utf8"));
    expect(report.dropped).toMatchObject({ no_think_end: 1, cjk: 1 });
    expect(existsSync(join(out, "openmementos.parquet"))).toBe(true);
    const stats = runCli(["data", "stats", out, "--json"]);
    expect(stats.status, stats.stderr).toBe(0);
    expect(JSON.parse(stats.stdout).rows).toBe(4); // the outputs only, not the journal beside them

    const again = runCli(["data", "build", "-i", input, "-o", out]);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/4 from an earlier run/);
    expect(readJsonl(join(out, "openmementos.jsonl")).map(idOf)).toEqual(good.map((g) => g.task_id));
  });

  it("bad options are one-line errors with exit 2", () => {
    const input = writeInput(dir, [syntheticTraceRecord(0)]);
    for (const args of [
      ["data", "build", "-i", join(dir, "missing.jsonl"), "-o", join(dir, "o")],
      ["data", "build", "-i", input, "-o", join(dir, "o"), "--workers", "zero"],
      ["data", "build", "-i", input, "-o", join(dir, "o"), "--provider", "openai"],
      ["data", "build", "-i", input, "-o", join(dir, "o"), "--schema", "wide"],
    ]) {
      const r = runCli(args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe("memento data build --lenient", () => {
  function inputWithCorruptLine(): string {
    const path = join(dir, "input.jsonl");
    const good = [0, 1, 2].map((i) => JSON.stringify(syntheticTraceRecord(i)));
    // Line 2 was cut off mid-record, line 4 is not an object.
    writeFileSync(path, [good[0], good[1].slice(0, 40), good[1], "[1, 2]", good[2]].join("\n") + "\n");
    return path;
  }

  it("without it a malformed input line stops the build in one line naming FILE:LINE", async () => {
    const input = inputWithCorruptLine();
    const r = await runInProcess(["data", "build", "-i", input, "-o", join(dir, "out")]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toEqual([expect.stringMatching(/^memento: .*input\.jsonl:2: invalid JSON/)]);
  });

  it("with it malformed lines are skipped, each reported, counted in the seed report and the manifest", async () => {
    const input = inputWithCorruptLine();
    const out = join(dir, "out");
    const r = await runInProcess(["data", "build", "-i", input, "-o", out, "--lenient"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/^skipped .*input\.jsonl:2: invalid JSON/m);
    expect(r.err).toMatch(/^skipped .*input\.jsonl:4: expected a JSON object, got an array/m);
    expect(r.err).toMatch(/done: 3 completed, 0 failed/);
    expect(r.err).toMatch(/skipped lines: 2/);
    expect(JSON.parse(readFileSync(join(out, "seed-report.json"), "utf8")).skippedLines).toBe(2);
    expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).skippedLines).toBe(2);
    expect(readJsonl(join(out, "openmementos.jsonl"))).toHaveLength(3);
  });
});

describe("buildDataset in process (offline)", () => {
  it("an abort fired from a timer stops an offline build early (it yields); the rerun resumes", async () => {
    const records = Array.from({ length: 10 }, (_, i) => syntheticTraceRecord(i, 40));
    const input = writeInput(dir, records);
    const outputDir = join(dir, "out");
    const tokenizer = loadTokenizer();
    const provider = () => new OfflineProvider({ countTokens: (t) => tokenizer.count(t) });
    const ac = new AbortController();
    const seen: BuildProgress[] = [];
    const first = await buildDataset({
      input,
      outputDir,
      provider: provider(),
      tokenizer,
      workers: 2,
      signal: ac.signal,
      onProgress: (p) => {
        seen.push(p);
        if (p.done === 2) setTimeout(() => ac.abort(), 0); // as a SIGINT handler would
      },
    });
    expect(first.interrupted).toBe(true);
    expect(first.done).toBeGreaterThanOrEqual(2);
    expect(first.done).toBeLessThan(records.length);
    expect(first.completed + first.failed).toBe(first.done);
    expect(seen[0]).toMatchObject({ total: records.length, done: 0, resumed: 0 });
    expect(existsSync(join(outputDir, "openmementos.jsonl"))).toBe(false);
    expect(JSON.parse(readFileSync(join(outputDir, "manifest.json"), "utf8")).interrupted).toBe(true);

    const again = await buildDataset({ input, outputDir, provider: provider(), tokenizer, workers: 2 });
    expect(again).toMatchObject({ interrupted: false, total: records.length, done: records.length });
    expect(again.resumed).toBe(first.done);
    expect(again.completed + again.failed).toBe(records.length);
    expect(readJsonl(join(outputDir, "openmementos.jsonl")).map(idOf)).toEqual(records.map((r) => r.task_id));
    const journalIds = readJsonl(join(outputDir, "journal.jsonl")).map((x) => x.id as string);
    expect(journalIds.sort()).toEqual(records.map((r) => r.task_id).sort()); // each trace journalled once
  });
});

describeWithReference("memento data build on the reference raw trace", () => {
  it("writes a response the validator accepts, every block >= 200 tokens", () => {
    const out = join(dir, "out");
    const r = runCli(["data", "build", "-i", referencePath("raw_trace_example.jsonl"), "-o", out]);
    expect(r.status, r.stderr).toBe(0);
    const rows = readJsonl(join(out, "openmementos.jsonl"));
    expect(rows).toHaveLength(1);
    const response = rows[0].response as string;
    expect(validateResponse(response).valid).toBe(true);
    const tok = loadTokenizer();
    const blocks = parseResponse(response).blocks;
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    for (const b of blocks) expect(tok.count(b.text)).toBeGreaterThanOrEqual(200);
  });
});

describe("memento data build (openai provider against a local fake)", () => {
  let fake: FakeOpenAI;
  beforeEach(async () => {
    fake = await startFakeOpenAI();
  });
  afterEach(async () => stopFakeOpenAI(fake));

  const openaiArgs = (input: string, out: string) => [
    "data",
    "build",
    "-i",
    input,
    "-o",
    out,
    "--provider",
    "openai",
    "--base-url",
    fake.baseURL,
    "--api-key",
    "test",
    "--model",
    "fake",
    "--timeout",
    "5",
    "--attempts",
    "3",
  ];

  it("keeps a trace whose answers stay malformed as failed with its reason; the rest complete", async () => {
    const records = Array.from({ length: 3 }, (_, i) => syntheticTraceRecord(i));
    const input = writeInput(dir, records);
    const out = join(dir, "out");
    // Every scoring answer has one score too few: re-asked once, then the trace fails at the score stage.
    fake.always = { kind: "wrong-count", stage: "score" };
    const r = await runCliAsync([...openaiArgs(input, out), "--workers", "1", "--limit", "1"]);
    expect(r.status, r.stderr).toBe(0);
    const failed = readJsonl(join(out, "failed.jsonl"));
    expect(failed.map((f) => f.id)).toEqual(["synthetic-0"]);
    expect(failed[0].stage).toBe("score");
    fake.always = undefined;
    // Transient faults are retried and the run completes; --retry-failed takes the failed trace again.
    fake.faults = [{ kind: "429" }, { kind: "500" }, { kind: "reset" }, { kind: "non-json" }];
    const again = await runCliAsync([...openaiArgs(input, out), "--retry-failed"]);
    expect(again.status, again.stderr).toBe(0);
    expect(readJsonl(join(out, "openmementos.jsonl")).map(idOf)).toEqual(records.map((x) => x.task_id));
    expect(readJsonl(join(out, "failed.jsonl"))).toEqual([]);
  });

  it("survives SIGKILL mid-run: the same command resumes and the output has every input exactly once", async () => {
    const records = Array.from({ length: 12 }, (_, i) => syntheticTraceRecord(i, 40));
    const input = writeInput(dir, records);
    const out = join(dir, "out");
    fake.delayMs = 40;
    const journal = join(out, "journal.jsonl");
    const child = spawn(
      process.execPath,
      [join(repoRoot, "bin", "memento.js"), ...openaiArgs(input, out), "--workers", "3"],
      { stdio: "ignore" },
    );
    const lines = () =>
      existsSync(journal)
        ? readFileSync(journal, "utf8")
            .split("\n")
            .filter((l) => l.trim()).length
        : 0;
    const started = Date.now();
    while (lines() < 3 && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const before = lines();
    expect(before).toBeGreaterThanOrEqual(3);
    expect(before).toBeLessThan(records.length); // killed mid-run, not after
    expect(existsSync(join(out, "openmementos.jsonl"))).toBe(false);

    fake.delayMs = 0;
    const r = await runCliAsync(openaiArgs(input, out));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`${before} from an earlier run`));
    const ids = readJsonl(join(out, "openmementos.jsonl")).map(idOf);
    expect(ids).toEqual(records.map((x) => x.task_id));
    const journalIds = readJsonl(journal).map((x) => x.id as string);
    expect(new Set(journalIds).size).toBe(journalIds.length); // nothing processed twice
  });
});
