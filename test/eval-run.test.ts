import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeChat, type FakeChat } from "./helpers/fake-chat.js";
import { runCli, runCliAsync, runInProcess } from "./helpers/cli.js";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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

/** `problemId#sample` of every journalled generation, in journal order. */
const generationKeys = (journal: string) =>
  lines(journal).map((l) => {
    const g = JSON.parse(l) as { problemId: string; sample: number };
    return `${g.problemId}#${g.sample}`;
  });

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
    // run.json records what `memento view` needs to measure the run as it was measured
    expect(JSON.parse(readFileSync(join(out, "run.json"), "utf8"))).toMatchObject({ tokenizer: null });
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
    const keys = generationKeys(journal);
    expect(new Set(keys).size).toBe(12);
    expect(keys).toHaveLength(12);
  });

  it("SIGINT stops a run within seconds, journal consistent, prints how to resume (exit 130); the rerun completes it", async () => {
    const bench = benchmark(6);
    const out = join(dir, "run");
    fake.delayMs = 300;
    const args = ["eval", "run", "-b", bench, "-e", fake.baseURL, "-m", "fake", "-n", "2", "-o", out, "-c", "2"];
    const child = spawn(process.execPath, [join(repoRoot, "bin", "memento.js"), ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const journal = join(out, "generations.jsonl");
    const t0 = Date.now();
    while (lines(journal).length < 2 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
    const sentAt = Date.now();
    child.kill("SIGINT");
    const code = await exited;
    expect(code, stderr).toBe(130);
    expect(Date.now() - sentAt).toBeLessThan(5_000);
    expect(stderr).toMatch(/interrupted after \d+\/12; run the same command to resume/);
    const before = lines(journal).map((l) => JSON.parse(l) as { status?: string });
    expect(before.length).toBeLessThan(12);
    expect(before.every((g) => g.status !== "error")).toBe(true); // an interrupted request is not a failure
    fake.delayMs = 0;
    const r = await runCliAsync(args);
    expect(r.status, r.stderr).toBe(0);
    const keys = generationKeys(journal);
    expect(new Set(keys).size).toBe(12);
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

/** An OpenAI-compatible endpoint that knows no model: every request gets 404, like vLLM for a wrong `-m`. */
async function startNoModelServer(): Promise<{ baseURL: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    req.resume();
    req.on("end", () => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "The model `wrongmodel` does not exist.", type: "NotFoundError" } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    requests: () => requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe("failed generations are failures, not wrong answers", () => {
  afterEach(() => {
    process.exitCode = undefined; // the CLI's verdict, set in this process by runInProcess
  });

  it("a run whose every request fails exits 1 with one line, scores nothing, and a rerun retries them", async () => {
    const bench = benchmark(2);
    const out = join(dir, "run");
    const down = await startNoModelServer();
    try {
      const args = ["eval", "run", "-b", bench, "-e", down.baseURL, "-m", "wrongmodel", "-o", out, "-n", "2"];
      const r = await runInProcess(args);
      expect(r.code).toBe(1);
      const verdict = r.err.split("\n").filter((l) => l.startsWith("memento: "));
      expect(verdict).toHaveLength(1);
      expect(verdict[0]).toMatch(/^memento: 4 of 4 generations failed \(first: .*404.*\); .*rerun/);
      const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
      expect(results).toMatchObject({ generations: 4, completed: 0, errors: 4 });
      expect(r.out).not.toMatch(/\b0\.0\b/); // no "pass@1 0.0": nothing was scored
      const gens = lines(join(out, "generations.jsonl")).map((l) => JSON.parse(l));
      expect(gens.map((g) => g.status)).toEqual(["error", "error", "error", "error"]);
      expect(gens.every((g) => g.correct === undefined)).toBe(true);
      expect(down.requests()).toBe(4);
      const rerun = await runInProcess(args);
      expect(rerun.code).toBe(1);
      expect(down.requests()).toBe(8); // every failed generation asked again
    } finally {
      await down.close();
    }
    // The same directory against a working endpoint: only the endpoint differs, so this is a new identity.
    const retried = await runInProcess(["eval", "run", "-b", bench, "-e", fake.baseURL, "-m", "wrongmodel", "-o", out]);
    expect(retried.code).toBe(2);
    expect(retried.err).toMatch(/--endpoint http:\/\/127\.0\.0\.1:\d+\/v1 \(now http/);
  });

  it("a run with some failures scores only the completed ones and a rerun retries just the failed", async () => {
    const bench = benchmark(3);
    const out = join(dir, "run");
    const base = {
      problems: await loadBenchmark(bench),
      benchmark: bench,
      outDir: out,
      endpoint: fake.baseURL,
      model: "fake",
      label: "t",
      n: 2,
      sampling: { temperature: 0.6, top_p: 0.95, top_k: 20, max_tokens: 100 },
      concurrency: 1,
      tokenizer: loadTokenizer(),
      architecture: resolveArchitecture("qwen3-8b"),
      timeoutMs: 5_000,
      attempts: 1,
    } satisfies EvalRunOptions;
    // Checking fails for problem p1 only (its KV replay throws): 2 errors among 6.
    let calls = 0;
    const flaky = Object.assign(Object.create(base.tokenizer), {
      encode: (text: string) => {
        calls++;
        if (text.includes("3 + 3")) throw new Error("replay failed");
        return base.tokenizer.encode(text);
      },
    });
    const first = await runEval({ ...base, tokenizer: flaky });
    expect(calls).toBeGreaterThan(0);
    expect(first.summary).toMatchObject({ generations: 6, completed: 4, errors: 2, pass1: 1 });
    expect(first.firstError).toBe("replay failed");
    const again = await runEval(base);
    expect(again.progress).toMatchObject({ resumed: 4, completed: 6, failed: 0 });
    expect(fake.bodies).toHaveLength(8);
    expect(again.summary).toMatchObject({ completed: 6, errors: 0 });
  });
});
