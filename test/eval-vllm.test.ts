/**
 * `memento eval run --server vllm-memento` (src/eval/server-kind.ts) against a fake of vLLM with the reference
 * Memento overlay on 127.0.0.1: a server whose masking is fixed at launch, which answers Memento-formatted text
 * with usage. One clause of the policy per test.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInProcess } from "./helpers/cli.js";
import { mementoAnswer } from "./helpers/fake-chat.js";
import { loadBenchmark, renderPrompt } from "../src/eval/benchmark.js";
import type { Generation, RunManifest, RunSummary } from "../src/eval/types.js";
import { loadTokenizer, type MementoTokenizer } from "../src/format/tokenizer.js";
import { traceStats } from "../src/kv/trace-stats.js";
import { resolveArchitecture } from "../src/kv/resolve.js";
import { ARCHITECTURE_PRESETS } from "../src/kv/architecture.js";
import { MASKING_FIELD_NAMES, MASKING_FIELDS } from "../src/masking/config.js";

/** Fields through which our own server takes masking per request; a vLLM overlay server must get none. */
const OUR_MASKING_KEYS = ["block_masking", "memento", ...MASKING_FIELD_NAMES.map((k) => MASKING_FIELDS[k].http)];

interface FakeVllm {
  baseURL: string;
  bodies: Record<string, unknown>[];
  /** Added to the true completion count in `usage` (a server whose tokenizer is not ours). */
  usageSkewTokens: number;
  /** Answer without `usage`. */
  omitUsage: boolean;
  close(): Promise<void>;
}

/**
 * Like vLLM with the overlay: it refuses (400) a body carrying our masking fields or not asking for the special
 * tokens (the test's checks, made loud), answers "What is A + B?" with a Memento response and counts tokens in
 * `usage` as vLLM does (the completion plus its stop token).
 */
async function startFakeVllm(tokenizer: MementoTokenizer): Promise<FakeVllm> {
  let count = 0;
  const state: FakeVllm = { baseURL: "", bodies: [], usageSkewTokens: 0, omitUsage: false, close: async () => {} };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    state.bodies.push(body);
    const bad = OUR_MASKING_KEYS.filter((k) => k in body);
    if (bad.length > 0 || body.skip_special_tokens !== false) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `fake vllm: masking fields ${bad.join(",")}`, type: "Bad" } }));
      return;
    }
    const messages = body.messages as { content: string }[];
    const m = /What is (\d+) \+ (\d+)\?/.exec(messages[0]?.content ?? "");
    const a = Number(m?.[1] ?? 0);
    const b = Number(m?.[2] ?? 0);
    const content = mementoAnswer(a, b, a + b);
    const completion = tokenizer.encode(content).length + 1 + state.usageSkewTokens;
    const usage = { prompt_tokens: 30, completion_tokens: completion, total_tokens: 30 + completion };
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        id: `c${++count}`,
        object: "chat.completion",
        model: String(body.model),
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        ...(state.omitUsage ? {} : { usage }),
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = () => new Promise<void>((r) => server.close(() => r()));
  return state;
}

let tokenizer: MementoTokenizer;
let dir: string;
let fake: FakeVllm;
beforeAll(() => {
  tokenizer = loadTokenizer();
});
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "memento-eval-vllm-"));
  fake = await startFakeVllm(tokenizer);
});
afterEach(async () => {
  process.exitCode = undefined; // the CLI's verdict, set in this process by runInProcess
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

function benchmark(count: number): string {
  const path = join(dir, "bench.jsonl");
  const rows = Array.from({ length: count }, (_, i) => ({ id: `p${i}`, problem: `What is ${i + 3} + ${2 * i}?` }));
  writeFileSync(path, rows.map((r, i) => JSON.stringify({ ...r, answer: String(3 * i + 3) })).join("\n") + "\n");
  return path;
}

const jsonl = <T>(path: string): T[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);

const vllmArgs = (bench: string, out: string, ...more: string[]) => [
  "eval",
  "run",
  "-b",
  bench,
  "-e",
  fake.baseURL,
  "-m",
  "memento",
  "--server",
  "vllm-memento",
  "-o",
  out,
  ...more,
];

describe("eval run --server vllm-memento", () => {
  it("sends no masking field of ours and skip_special_tokens false, and its KV figures equal trace stats", async () => {
    const bench = benchmark(3);
    const out = join(dir, "run");
    // Phi-4 is served with delimiters masked (the paper's setting); the flags describe that launch.
    const r = await runInProcess(vllmArgs(bench, out, "-a", "phi-4-reasoning", "--mask-delimiters", "-n", "2"));
    expect(r.code, r.err).toBe(0);
    expect(fake.bodies).toHaveLength(6);
    for (const body of fake.bodies) {
      expect(OUR_MASKING_KEYS.filter((k) => k in body)).toEqual([]);
      expect(body).toMatchObject({ skip_special_tokens: false, temperature: 0.6, top_p: 0.95, top_k: 20 });
    }

    const architecture = resolveArchitecture("phi-4-reasoning");
    const problems = await loadBenchmark(bench);
    const gens = jsonl<Generation>(join(out, "generations.jsonl"));
    expect(gens.map((g) => g.status)).toEqual(Array(6).fill("ok"));
    for (const g of gens) {
      const problem = problems.find((p) => p.id === g.problemId)!;
      const masking = { maskDelimiters: true };
      const s = traceStats(
        { id: "", text: g.response!, problem: renderPrompt(problem) },
        { tokenizer, architecture, masking },
      );
      expect(g.kv).toMatchObject({
        promptTokens: s.promptTokens,
        outputTokens: s.outputTokens,
        blocks: s.blocks,
        blockTokens: s.blockTokens,
        mementoTokens: s.mementoTokens,
        memento: { peakTokens: s.memento.peakTokens, aucTokens: s.memento.aucTokens, peakGB: s.memento.peakGB },
        vanilla: { peakTokens: s.vanilla.peakTokens, aucTokens: s.vanilla.aucTokens, peakGB: s.vanilla.peakGB },
      });
      expect(g.kv!.memento.aucGBxKtok).toBe(s.memento.aucGBxKtok);
      // The launch masking mattered: the default (delimiters kept) gives other figures.
      const kept = traceStats(
        { id: "", text: g.response!, problem: renderPrompt(problem) },
        { tokenizer, architecture },
      );
      expect(g.kv!.memento.aucTokens).not.toBe(kept.memento.aucTokens);
      expect(g.usage!.completionTokens).toBe(tokenizer.encode(g.response!).length + 1); // usage, as the server counted
    }

    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as RunSummary;
    const meanOf = (f: (g: Generation) => number) => gens.reduce((a, g) => a + f(g), 0) / gens.length;
    expect(results.meanPeakGB).toBeCloseTo(
      meanOf((g) => g.kv!.memento.peakGB),
      12,
    );
    expect(results.meanPeakGB).toBeGreaterThan(0);
    expect(results.pass1).toBe(1);
    expect(results.usageMismatches).toBe(0);
    expect(results.meanUsageCompletionTokens).toBe(meanOf((g) => g.usage!.completionTokens));

    const manifest = JSON.parse(readFileSync(join(out, "run.json"), "utf8")) as RunManifest;
    expect(manifest).toMatchObject({
      architecture: "Phi-4-reasoning",
      server: "vllm-memento",
      serverMasking: { maskDelimiters: true },
    });
    expect(manifest.extraBody).toBeUndefined();
    const html = join(dir, "report.html");
    const report = await runInProcess(["eval", "report", out, "-o", html]);
    expect(report.code, report.err).toBe(0);
    expect(readFileSync(html, "utf8")).toContain("KV bytes for Phi-4-reasoning");
  });

  it("refuses a missing or unknown architecture in one line listing the presets, before any request", async () => {
    const bench = benchmark(1);
    for (const extra of [[], ["-a", "llama-9000"]]) {
      const r = await runInProcess(vllmArgs(bench, join(dir, "o"), ...extra));
      expect(r.code, extra.join(" ")).toBe(2);
      const lines = r.err.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^memento: .*architecture/);
      for (const preset of Object.keys(ARCHITECTURE_PRESETS)) expect(lines[0]).toContain(preset);
    }
    expect(fake.bodies).toHaveLength(0);
  });

  it("refuses request-level masking or special tokens skipped, and masking flags without vllm-memento", async () => {
    const bench = benchmark(1);
    const o = join(dir, "o");
    for (const args of [
      vllmArgs(bench, o, "-a", "qwen3-8b", "--extra-body", '{"block_masking":{"keepLastNBlocks":-1}}'),
      vllmArgs(bench, o, "-a", "qwen3-8b", "--extra-body", '{"keep_last_n_blocks":0}'),
      vllmArgs(bench, o, "-a", "qwen3-8b", "--extra-body", '{"skip_special_tokens":true}'),
      ["eval", "run", "-b", bench, "-e", fake.baseURL, "-m", "memento", "-o", o, "-k", "2"],
    ]) {
      const r = await runInProcess(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.err).toMatch(/^memento: /);
    }
    expect(fake.bodies).toHaveLength(0);
  });

  it("takes token counts from usage: none is a failure; a count our tokenizer disputes is warned", async () => {
    const bench = benchmark(2);
    fake.omitUsage = true;
    const none = await runInProcess(vllmArgs(bench, join(dir, "a"), "-a", "qwen3-8b"));
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/memento: 2 of 2 generations failed \(first: .*no usage/);

    fake.omitUsage = false;
    fake.usageSkewTokens = 40; // a served tokenizer that is not ours
    const skewed = await runInProcess(vllmArgs(bench, join(dir, "b"), "-a", "qwen3-8b"));
    expect(skewed.code, skewed.err).toBe(0);
    expect(skewed.err).toMatch(/^warning: in 2 of 2 responses the server's usage\.completion_tokens differs/m);
  });
});
