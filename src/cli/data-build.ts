import type { Command } from "commander";
import { UserError } from "../errors.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { createProvider, type ProviderOptions } from "../data/providers/index.js";
import { OpenAIProvider } from "../data/providers/openai.js";
import { parseFieldMapping, formatSeedReport, DEFAULT_MIN_CHARS } from "../data/seed.js";
import { buildDataset } from "../data/runner.js";
import { dataCommand } from "./data-segment.js";
import { ProgressReporter } from "./progress.js";

interface BuildCliOptions {
  input: string;
  outputDir: string;
  provider?: string;
  baseUrl?: string;
  apiKey?: string;
  model?: string;
  scoreModel?: string;
  compressModel?: string;
  judgeModel?: string;
  jsonMode: boolean;
  temperature?: string;
  workers: string;
  limit?: string;
  windows: string;
  minBlockTokens: string;
  minBlocks: string;
  varianceWeight: string;
  judgeThreshold: string;
  maxRounds: string;
  minChars: string;
  field?: string[];
  schema: string;
  parquet?: boolean;
  retryFailed?: boolean;
  rpm?: string;
  tpm?: string;
  timeout: string;
  attempts: string;
  priceIn?: string;
  priceOut?: string;
  tokenizer?: string;
}

function num(flag: string, v: string | undefined, opts: { int?: boolean; min?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min)) {
    throw new UserError(`${flag}: expected ${opts.int ? "an integer" : "a number"}${opts.min !== undefined ? ` >= ${opts.min}` : ""}, got "${v}"`);
  }
  return n;
}

/** `openai` when a key is configured (flag or OPENAI_API_KEY) or a base URL is given, else `offline`. */
function providerOptions(o: BuildCliOptions): ProviderOptions {
  const apiKey = o.apiKey ?? process.env.OPENAI_API_KEY;
  const kind = o.provider ?? (apiKey || o.baseUrl ? "openai" : "offline");
  if (kind === "offline") return { provider: "offline" };
  if (kind !== "openai") throw new UserError(`--provider: expected openai or offline, got "${kind}"`);
  const model = o.model;
  const models = o.scoreModel || o.compressModel || o.judgeModel
    ? { score: o.scoreModel ?? model, compress: o.compressModel ?? model, judge: o.judgeModel ?? model }
    : undefined;
  if (!model && !(models?.score && models.compress && models.judge)) {
    throw new UserError("--model is required with --provider openai (or all of --score-model, --compress-model, --judge-model)");
  }
  const priceIn = num("--price-in", o.priceIn, { min: 0 });
  const priceOut = num("--price-out", o.priceOut, { min: 0 });
  return {
    provider: "openai",
    baseURL: o.baseUrl,
    // Local servers (vLLM, llama.cpp, Ollama, ours) accept any key; the client insists on one.
    apiKey: apiKey ?? "not-needed",
    model,
    models: models as { score: string; compress: string; judge: string } | undefined,
    jsonMode: o.jsonMode,
    temperature: num("--temperature", o.temperature, { min: 0 }),
    retry: { attempts: num("--attempts", o.attempts, { int: true, min: 1 }), timeoutMs: (num("--timeout", o.timeout, { min: 0.001 }) ?? 180) * 1000 },
    rateLimit: o.rpm || o.tpm ? { requestsPerMinute: num("--rpm", o.rpm, { min: 0.001 }), tokensPerMinute: num("--tpm", o.tpm, { min: 1 }) } : undefined,
    prices: priceIn !== undefined || priceOut !== undefined ? { inputPerMillion: priceIn ?? 0, outputPerMillion: priceOut ?? 0 } : undefined,
  };
}

export function register(program: Command): void {
  dataCommand(program)
    .command("build")
    .description("turn raw reasoning traces into Memento training data (OpenMementos schema); rerun the same command to resume")
    .requiredOption("-i, --input <file>", "JSONL or Parquet traces (OpenThoughts conversations, problem/response, or cot)")
    .requiredOption("-o, --output-dir <dir>", "where the journal and the outputs go")
    .option("--provider <kind>", "openai | offline (default: openai when an API key or base URL is set, else offline)")
    .option("--base-url <url>", "OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...)")
    .option("--api-key <key>", "API key (default: $OPENAI_API_KEY)")
    .option("-m, --model <name>", "model for every stage")
    .option("--score-model <name>", "model for boundary scoring")
    .option("--compress-model <name>", "model for writing and refining mementos")
    .option("--judge-model <name>", "model for judging mementos")
    .option("--no-json-mode", "do not ask for response_format json_object")
    .option("--temperature <t>", "sampling temperature for the provider")
    .option("-w, --workers <n>", "traces processed concurrently", "4")
    .option("--limit <n>", "only the first N selected traces")
    .option("--windows <list>", "boundary-scoring window sizes, one pass each, averaged (e.g. 16,11)", "16")
    .option("--min-block-tokens <n>", "every block at least this many tokens", "200")
    .option("--min-blocks <n>", "at least this many blocks where feasible", "3")
    .option("--variance-weight <x>", "lambda on std/mean of block sizes", "0.5")
    .option("--judge-threshold <n>", "mementos judged below this are refined", "8")
    .option("--max-rounds <n>", "refinement rounds at most", "2")
    .option("--min-chars <n>", "drop traces whose reasoning is shorter", String(DEFAULT_MIN_CHARS))
    .option("--field <key=name...>", "field mapping, e.g. --field problem=question")
    .option("--schema <s>", "full | default columns", "full")
    .option("--parquet", "also write openmementos.parquet")
    .option("--retry-failed", "process again the traces that failed in an earlier run")
    .option("--rpm <n>", "requests per minute limit")
    .option("--tpm <n>", "tokens per minute limit")
    .option("--timeout <s>", "per-request timeout in seconds", "180")
    .option("--attempts <n>", "attempts per request on 429/5xx/timeouts/resets", "6")
    .option("--price-in <usd>", "USD per 1M prompt tokens, for the cost counter")
    .option("--price-out <usd>", "USD per 1M completion tokens, for the cost counter")
    .option("--tokenizer <dir>", "tokenizer for token counts (default: Qwen3)")
    .action(async (o: BuildCliOptions) => {
      if (o.schema !== "full" && o.schema !== "default") throw new UserError(`--schema: expected full or default, got "${o.schema}"`);
      const windows = o.windows.split(",").map((w) => num("--windows", w.trim(), { int: true, min: 2 }) as number);
      const tokenizer = loadTokenizer(o.tokenizer);
      const popts = providerOptions(o);
      const provider = createProvider(popts.provider === "offline" ? { ...popts, countTokens: (t: string) => tokenizer.count(t) } : popts);
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      const progress = new ProgressReporter(`data build (${provider.name}${provider.heuristic ? ", heuristic" : ""})`);
      try {
        const summary = await buildDataset({
          input: o.input,
          outputDir: o.outputDir,
          provider,
          tokenizer,
          workers: num("--workers", o.workers, { int: true, min: 1 }),
          limit: num("--limit", o.limit, { int: true, min: 0 }),
          windows,
          minBlockTokens: num("--min-block-tokens", o.minBlockTokens, { min: 0 }),
          minBlocks: num("--min-blocks", o.minBlocks, { int: true, min: 1 }),
          varianceWeight: num("--variance-weight", o.varianceWeight, { min: 0 }),
          judgeThreshold: num("--judge-threshold", o.judgeThreshold, { min: 0 }),
          maxRounds: num("--max-rounds", o.maxRounds, { int: true, min: 0 }),
          seed: { minChars: num("--min-chars", o.minChars, { int: true, min: 0 }), fields: parseFieldMapping(o.field ?? []) },
          schema: o.schema,
          parquet: o.parquet,
          retryFailed: o.retryFailed,
          signal: controller.signal,
          cost: provider instanceof OpenAIProvider ? () => provider.costUsd() : undefined,
          onProgress: (p) => progress.update(p),
        });
        progress.stop();
        const err = process.stderr;
        if (summary.interrupted) {
          err.write(`interrupted after ${summary.done}/${summary.total}: progress is saved in ${o.outputDir}/journal.jsonl; run the same command to resume\n`);
          process.exitCode = 130;
          return;
        }
        err.write(
          `done: ${summary.completed} completed, ${summary.failed} failed (of ${summary.total}; ${summary.resumed} from an earlier run); ` +
            `seeds read ${summary.seedReport.read}, kept ${summary.seedReport.kept}\n`,
        );
        err.write(`seed selection: ${formatSeedReport(summary.seedReport).join("; ")}\n`);
        for (const path of summary.outputs) err.write(`wrote ${path}\n`);
        if (provider.heuristic) err.write("note: the offline provider is heuristic (rule-based scores, extractive mementos); use --provider openai for LLM-written data\n");
      } finally {
        progress.stop();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
