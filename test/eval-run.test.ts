import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeChat, type FakeChat } from "./helpers/fake-chat.js";
import { runCli, runCliAsync } from "./helpers/cli.js";
import { repoRoot } from "./helpers/reference.js";
import { loadBenchmark } from "../src/eval/benchmark.js";
import { runEval, type EvalRunOptions } from "../src/eval/runner.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { resolveArchitecture } from "../src/kv/resolve.js";

let dir: string;
let fake: FakeChat;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "memento-eval-"));
  fake = await startFakeChat();
});
afterEach(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

function benchmark(count: number): string {
  const path = join(dir, "bench.jsonl");
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ id: `p${i}`, problem: `What is ${i + 2} + ${i * 3}?`, answer: String(2 * i + 2 + i * 3 - i) }),
  );
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}

const lines = (p: string) =>
  existsSync(p)
    ? readFileSync(p, "utf8")
        .split("\n")
        .filter((l) => l.trim())
    : [];

describe("memento eval run", () => {
  it("generates n per problem with the paper's sampling, checks answers, measures KV, and resumes without duplicates", async () => {
    const bench = benchmark(4);
    const out = join(dir, "run");
    fake.wrongEvery = 4;
    const args = [
      "eval",
      "run",
      "-b",
      bench,
      "-e",
      fake.baseURL,
      "-m",
      "fake",
      "-n",
      "2",
      "-o",
      out,
      "--label",
      "memento",
      "-c",
      "2",
    ];
    const r = await runCliAsync(args);
    expect(r.status, r.stderr).toBe(0);
    const body = fake.bodies[0] as Record<string, unknown>;
    expect(body).toMatchObject({
      temperature: 0.6,
      top_p: 0.95,
      top_k: 20,
      max_tokens: 32000,
      skip_special_tokens: false,
    });
    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(results.generations).toBe(8);
    expect(results.pass1).toBeCloseTo(6 / 8, 9); // every 4th answer is wrong
    expect(results.meanBlocks).toBe(2);
    expect(results.meanPeakTokens).toBeLessThan(results.vanillaMeanPeakTokens);
    const gens = lines(join(out, "generations.jsonl")).map((l) => JSON.parse(l));
    expect(gens[0].response).toContain("<|summary_end|>");
    expect(gens[0].kv.trajectory.length).toBeGreaterThan(10);

    const again = await runCliAsync(args);
    expect(again.status, again.stderr).toBe(0);
    expect(fake.bodies).toHaveLength(8); // nothing re-requested
    expect(lines(join(out, "generations.jsonl"))).toHaveLength(8);

    const report = runCli(["eval", "report", out, "-o", join(dir, "report.html")]);
    expect(report.status, report.stderr).toBe(0);
    expect(readFileSync(join(dir, "report.html"), "utf8")).toContain("<svg");
  });

  it("after SIGKILL the same command finishes the run with every generation exactly once", async () => {
    const bench = benchmark(6);
    const out = join(dir, "run");
    fake.delayMs = 60;
    const args = ["eval", "run", "-b", bench, "-e", fake.baseURL, "-m", "fake", "-n", "2", "-o", out, "-c", "2"];
    const child = spawn(process.execPath, [join(repoRoot, "bin", "memento.js"), ...args], { stdio: "ignore" });
    const journal = join(out, "generations.jsonl");
    const t0 = Date.now();
    while (lines(journal).length < 3 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const before = lines(journal).length;
    expect(before).toBeGreaterThanOrEqual(3);
    expect(before).toBeLessThan(12);
    fake.delayMs = 0;
    const r = await runCliAsync(args);
    expect(r.status, r.stderr).toBe(0);
    const keys = lines(journal).map((l) => {
      const g = JSON.parse(l);
      return `${g.problemId}#${g.sample}`;
    });
    expect(new Set(keys).size).toBe(12);
    expect(keys).toHaveLength(12);
  });

  it("bad input is a one-line error with exit 2", () => {
    const bench = join(dir, "b.jsonl");
    writeFileSync(bench, JSON.stringify({ id: "x", text: "no problem field" }) + "\n");
    for (const args of [
      ["eval", "run", "-b", bench, "-e", fake.baseURL, "-m", "fake", "-o", join(dir, "o")],
      ["eval", "run", "-b", join(dir, "missing.jsonl"), "-e", fake.baseURL, "-m", "fake"],
      ["eval", "run", "-b", bench, "-e", fake.baseURL, "-m", "fake", "-n", "0"],
      ["eval", "run", "-b", bench, "-e", fake.baseURL, "-m", "fake", "--extra-body", "{"],
    ]) {
      const r = runCli(args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe("runEval in process", () => {
  const options = async (out: string, endpoint: string): Promise<EvalRunOptions> => ({
    problems: await loadBenchmark(benchmark(3)),
    benchmark: join(dir, "bench.jsonl"),
    outDir: out,
    endpoint,
    model: "fake",
    label: "t",
    n: 2,
    sampling: { temperature: 0.6, top_p: 0.95, top_k: 20, max_tokens: 100 },
    concurrency: 2,
    tokenizer: loadTokenizer(),
    architecture: resolveArchitecture("qwen3-8b"),
    timeoutMs: 5_000,
    attempts: 1,
  });

  it("journals a generation that throws as an error and takes it again on resume", async () => {
    const out = join(dir, "run");
    const base = await options(out, fake.baseURL);
    // Measuring KV fails after each answer came back (the tokenizer is not part of the run's identity).
    const broken = Object.assign(Object.create(base.tokenizer), {
      encode: () => {
        throw new Error("tokenizer exploded");
      },
    });
    const failed = await runEval({ ...base, tokenizer: broken });
    expect(failed.interrupted).toBe(false);
    expect(failed.progress).toMatchObject({ total: 6, done: 6, completed: 0, failed: 6 });
    const errors = lines(join(out, "generations.jsonl")).map((l) => JSON.parse(l));
    expect(errors.map((g) => [g.status, g.error])).toEqual(Array(6).fill(["error", "tokenizer exploded"]));

    const again = await runEval(base);
    expect(again.progress).toMatchObject({ total: 6, done: 6, completed: 6, failed: 0, resumed: 0 });
    expect(fake.bodies).toHaveLength(12);
    expect(lines(join(out, "generations.jsonl"))).toHaveLength(12); // the retries are appended; the last line wins
    expect(again.summary.generations).toBe(6);
  });

  it("an abort stops the run: generations in flight are not journalled as errors; a rerun finishes", async () => {
    const out = join(dir, "run");
    fake.delayMs = 30;
    const ac = new AbortController();
    const first = await runEval({
      ...(await options(out, fake.baseURL)),
      signal: ac.signal,
      onProgress: (p) => p.done === 1 && ac.abort(),
    });
    expect(first.interrupted).toBe(true);
    expect(first.progress.done).toBeLessThan(6);
    const gens = lines(join(out, "generations.jsonl")).map((l) => JSON.parse(l));
    expect(gens.every((g) => g.status === "ok")).toBe(true);

    fake.delayMs = 0;
    const again = await runEval(await options(out, fake.baseURL));
    expect(again.interrupted).toBe(false);
    expect(again.progress).toMatchObject({ total: 6, done: 6, completed: 6, failed: 0, resumed: gens.length });
    const keys = lines(join(out, "generations.jsonl")).map((l) => `${JSON.parse(l).problemId}#${JSON.parse(l).sample}`);
    expect(new Set(keys).size).toBe(6);
    expect(keys).toHaveLength(6);
  });
});
