import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { trainCommand } from "../src/cli/toy.js";
import { validateResponse } from "../src/format/validate.js";
import { generateDataset } from "../src/train/toy-task.js";
import { runInProcess as run } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const dir = tempDir("memento-toycli-");

describe("memento toy generate", () => {
  it("writes {prompt, response, answer} lines, deterministic by seed", async () => {
    const a = await run(["toy", "generate", "--count", "5", "--seed", "3"]);
    expect(a.code).toBe(0);
    const b = await run(["toy", "generate", "--count", "5", "--seed", "3"]);
    expect(b.out).toBe(a.out);
    const rows = a.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { prompt: string; response: string; answer: string });
    expect(rows).toEqual(
      generateDataset(3, 5).map((d) => ({ prompt: d.prompt, response: d.response, answer: d.answer })),
    );
    for (const r of rows) expect(validateResponse(r.response).valid).toBe(true);
  });

  it("writes the held-out split to a file", async () => {
    const file = join(dir, "test.jsonl");
    const r = await run(["toy", "generate", "--count", "4", "--split", "test", "--output", file]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("");
    const rows = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { prompt: string });
    expect(rows.map((x) => x.prompt)).toEqual(generateDataset(2, 4, {}, "test").map((d) => d.prompt));
  });

  it("rejects bad options with exit code 2", async () => {
    expect((await run(["toy", "generate", "--count", "x"])).code).toBe(2);
    expect((await run(["toy", "generate", "--count", "3", "--split", "dev"])).err).toMatch(/--split/);
    // Training options are checked before any data is built.
    const causal = await run(["train", "toy", "--stage2-causal", "1", "--out", join(tmpdir(), "never-written")]);
    expect([causal.code, causal.err.trim().split("\n").length]).toEqual([2, 1]);
    expect(causal.err).toMatch(/--stage2-causal/);
    expect((await run(["train", "toy", "--once-weight", "0", "--out", join(tmpdir(), "never-written")])).err).toMatch(
      /--once-weight/,
    );
    expect(
      (await run(["train", "toy", "--answer-weight", "-1", "--out", join(tmpdir(), "never-written")])).err,
    ).toMatch(/--answer-weight/);
    expect((await run(["train", "toy", "--answer-lr", "x", "--out", join(tmpdir(), "never-written")])).err).toMatch(
      /--answer-lr/,
    );
    expect((await run(["train", "toy", "--answer-all-lr", "0", "--out", join(tmpdir(), "never-written")])).err).toMatch(
      /--answer-all-lr/,
    );
    expect(
      (await run(["train", "toy", "--answer-all-steps", "-2", "--out", join(tmpdir(), "never-written")])).err,
    ).toMatch(/--answer-all-steps/);
    expect(
      (await run(["train", "toy", "--answer-steps", "1.5", "--out", join(tmpdir(), "never-written")])).err,
    ).toMatch(/--answer-steps/);
  });
});

describe("memento train export", () => {
  it("exports toy data with the toy tokenizer and reports long rows on stderr", async () => {
    const input = join(dir, "in.jsonl");
    const output = join(dir, "out.jsonl");
    const g = await run(["toy", "generate", "--count", "10", "--seed", "9", "--output", input]);
    expect(g.code).toBe(0);
    const r = await run([
      "train",
      "export",
      "--input",
      input,
      "--output",
      output,
      "--toy-tokenizer",
      "--max-tokens",
      "500",
    ]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out) as {
      read: number;
      written: number;
      skippedCount: number;
      skipped: { line: number; tokens: number }[];
    };
    expect(summary.read).toBe(10);
    expect(summary.written + summary.skippedCount).toBe(10);
    expect(summary.skippedCount).toBeGreaterThan(0);
    for (const s of summary.skipped) {
      expect(s.tokens).toBeGreaterThan(500);
      expect(r.err).toContain(`${input}:${s.line}: skipped (too_long): ${s.tokens} tokens > --max-tokens 500`);
    }
    const recs = readFileSync(output, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { input_ids: number[] });
    expect(recs.length).toBe(summary.written);
    expect(recs.every((x) => x.input_ids.length <= 500)).toBe(true);
  });

  it("reports a missing input as a user error", async () => {
    writeFileSync(join(dir, "empty.jsonl"), "");
    const r = await run([
      "train",
      "export",
      "--input",
      join(dir, "nope.jsonl"),
      "--output",
      join(dir, "o.jsonl"),
      "--toy-tokenizer",
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot read/);
  });

  it("trainCommand returns the existing group", () => {
    const p = new Command("x");
    const a = trainCommand(p);
    expect(trainCommand(p)).toBe(a);
    expect(p.commands.filter((c) => c.name() === "train")).toHaveLength(1);
  });
});
