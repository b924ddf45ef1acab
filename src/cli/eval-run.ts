import type { Command } from "commander";
import { basename } from "node:path";
import { UserError } from "../errors.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { resolveArchitecture } from "../kv/resolve.js";
import { loadBenchmark, type BenchmarkFields } from "../eval/benchmark.js";
import { runEval } from "../eval/runner.js";
import { formatSummaryTable } from "../eval/summary.js";
import { PAPER_SAMPLING, type SamplingParams } from "../eval/types.js";
import { evalCommand } from "./eval-report.js";
import { ProgressReporter } from "./progress.js";

interface EvalRunCli {
  benchmark: string;
  endpoint: string;
  model: string;
  apiKey?: string;
  out?: string;
  label?: string;
  n: string;
  temperature: string;
  topP: string;
  topK: string;
  minP?: string;
  maxTokens: string;
  seed?: string;
  concurrency: string;
  limit?: string;
  field?: string[];
  promptTemplate?: string;
  extraBody?: string;
  architecture: string;
  tokenizer?: string;
  timeout: string;
}

function number(flag: string, v: string | undefined, int = false, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min) {
    throw new UserError(`${flag}: expected ${int ? "an integer" : "a number"} >= ${min}, got "${v}"`);
  }
  return n;
}

function parseFields(pairs: string[]): BenchmarkFields {
  const out: BenchmarkFields = {};
  const keys = ["id", "prompt", "answer", "kind", "options", "tests", "subject"] as const;
  for (const p of pairs) {
    const m = /^([a-z]+)=(.+)$/.exec(p);
    if (!m || !(keys as readonly string[]).includes(m[1])) throw new UserError(`--field: expected KEY=NAME with KEY one of ${keys.join(", ")}, got "${p}"`);
    out[m[1] as (typeof keys)[number]] = m[2];
  }
  return out;
}

export function register(program: Command): void {
  evalCommand(program)
    .command("run")
    .description("n generations per problem from an OpenAI-compatible endpoint, checked and measured (KV), resumable")
    .requiredOption("-b, --benchmark <file>", "JSONL or Parquet benchmark (AIME, MATH-500, GPQA, LiveCodeBench exports, the toy set)")
    .requiredOption("-e, --endpoint <url>", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
    .requiredOption("-m, --model <name>", "model name sent to the endpoint")
    .option("--api-key <key>", "API key (default: $OPENAI_API_KEY, or none for local servers)")
    .option("-o, --out <dir>", "run directory (default: runs/<benchmark>-<label>)")
    .option("-l, --label <name>", "label in reports (e.g. memento, vanilla)", "run")
    .option("-n, --n <n>", "generations per problem", "1")
    .option("--temperature <t>", "sampling temperature", String(PAPER_SAMPLING.temperature))
    .option("--top-p <p>", "nucleus sampling", String(PAPER_SAMPLING.top_p))
    .option("--top-k <k>", "top-k sampling", String(PAPER_SAMPLING.top_k))
    .option("--min-p <p>", "min-p sampling")
    .option("--max-tokens <n>", "max new tokens", String(PAPER_SAMPLING.max_tokens))
    .option("--seed <n>", "base seed (sample i uses seed + i)")
    .option("-c, --concurrency <n>", "requests in flight", "4")
    .option("--limit <n>", "first N problems only")
    .option("--field <key=name...>", "benchmark field mapping, e.g. --field prompt=question --field answer=solution")
    .option("--prompt-template <text>", "user message template with {problem}")
    .option("--extra-body <json>", "extra JSON fields for every request (e.g. server-side masking options)")
    .option("-a, --architecture <name|config.json>", "architecture for KV bytes", "qwen3-8b")
    .option("-t, --tokenizer <dir>", "tokenizer for KV replay (default: Qwen3)")
    .option("--timeout <s>", "per-request timeout in seconds", "600")
    .action(async (o: EvalRunCli) => {
      const sampling: SamplingParams = {
        temperature: number("--temperature", o.temperature)!,
        top_p: number("--top-p", o.topP)!,
        top_k: number("--top-k", o.topK, true, -1)!,
        max_tokens: number("--max-tokens", o.maxTokens, true, 1)!,
        ...(o.minP !== undefined ? { min_p: number("--min-p", o.minP) } : {}),
        ...(o.seed !== undefined ? { seed: number("--seed", o.seed, true) } : {}),
      };
      let extraBody: Record<string, unknown> | undefined;
      if (o.extraBody) {
        try {
          extraBody = JSON.parse(o.extraBody) as Record<string, unknown>;
        } catch {
          throw new UserError("--extra-body: not valid JSON");
        }
        if (!extraBody || typeof extraBody !== "object" || Array.isArray(extraBody)) throw new UserError("--extra-body: expected a JSON object");
      }
      const n = number("--n", o.n, true, 1)!;
      const problems = await loadBenchmark(o.benchmark, parseFields(o.field ?? []), number("--limit", o.limit, true, 1));
      const architecture = resolveArchitecture(o.architecture);
      const tokenizer = loadTokenizer(o.tokenizer);
      const label = o.label ?? "run";
      const out = o.out ?? `runs/${basename(o.benchmark).replace(/\.(jsonl|parquet)$/i, "")}-${label}`;
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      const progress = new ProgressReporter(`eval ${label}`);
      try {
        const r = await runEval({
          problems,
          benchmark: o.benchmark,
          outDir: out,
          endpoint: o.endpoint,
          model: o.model,
          apiKey: o.apiKey ?? process.env.OPENAI_API_KEY,
          label,
          n,
          sampling,
          extraBody,
          concurrency: number("--concurrency", o.concurrency, true, 1),
          promptTemplate: o.promptTemplate,
          tokenizer,
          architecture,
          timeoutMs: number("--timeout", o.timeout, false, 0.001)! * 1000,
          signal: controller.signal,
          onProgress: (p) => progress.update(p),
        });
        progress.stop();
        if (r.interrupted) {
          process.stderr.write(`interrupted after ${r.progress.done}/${r.progress.total}; run the same command to resume (${out})\n`);
          process.exitCode = 130;
          return;
        }
        process.stdout.write(formatSummaryTable([r.summary]) + "\n");
        process.stderr.write(`wrote ${out}/results.json (${r.progress.failed} generation errors; rerun to retry them)\n`);
      } finally {
        progress.stop();
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
    });
}
