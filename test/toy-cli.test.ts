import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { trainCommand } from "../src/cli/toy.js";
import { validateResponse } from "../src/format/validate.js";
import { generateDataset } from "../src/train/toy-task.js";
import { runInProcess as run } from "./helpers/cli.js";
import { repoRoot } from "./helpers/reference.js";
import { writeLinesStreaming } from "../src/cli/toy.js";
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

  it("streams: a reader that closes the pipe after a few lines ends the command at once, silently", async () => {
    // The built CLI as a user runs it: `memento toy generate --count 99999999 | head -n 3`.
    const child = spawn(
      process.execPath,
      [join(repoRoot, "bin", "memento.js"), "toy", "generate", "--count", "99999999"],
      {
        cwd: repoRoot,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    let head = "";
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        head += d;
        if (head.split("\n").length > 3) {
          child.stdout.destroy(); // the reader goes away, as `head` does
          resolve();
        }
      });
    });
    const t0 = Date.now();
    const timeout = new Promise<"still running">((resolve) => setTimeout(() => resolve("still running"), 10_000));
    const code = await Promise.race([exited, timeout]);
    if (code === "still running") child.kill("SIGKILL");
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err).toBe("");
    const first = JSON.parse(head.split("\n")[0]) as { prompt: string };
    expect(first.prompt).toBe(generateDataset(1, 1)[0].prompt);
  }, 30_000);

  it("writes each chunk before producing the next, and stops producing when the stream fails with EPIPE", async () => {
    const out = new PassThrough();
    let produced = 0;
    function* lines(): Generator<string> {
      for (;;) {
        produced++;
        if (produced === 5000)
          setImmediate(() => out.emit("error", Object.assign(new Error("EPIPE"), { code: "EPIPE" })));
        yield "x".repeat(100);
      }
    }
    out.resume();
    const written = await writeLinesStreaming(lines(), out);
    expect(written).toBe(produced);
    expect(produced).toBeLessThan(5000 + 2 * 700); // at most a couple of 64 KB chunks after the failure
  });

  it("asking for more problems than the split holds fails after writing all of them, not after a futile search", async () => {
    const r = await run([
      "toy",
      "generate",
      "--count",
      "99999999",
      "--split",
      "test",
      "--min-blocks",
      "1",
      "--max-blocks",
      "1",
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^memento: toy task: only \d+ distinct test problems exist with k=1-1, asked for 99999999/);
    const lines = r.out.trim().split("\n");
    expect(new Set(lines).size).toBe(lines.length);
    expect(r.err).toContain(`only ${lines.length} distinct`);
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
