/**
 * `memento data build`: parses the options, builds the provider, runs `buildDataset` (src/data/runner.ts) with a
 * progress bar, and prints the summary. Rerunning the same command resumes; a rerun with options that change the
 * rows is refused in one line (`--force-new` moves the old directory aside). `--lenient` skips malformed input
 * lines, printing the first MAX_SKIPPED_LINES_SHOWN and the count. `--shard K/N` processes only shard K of the
 * selected traces (src/data/shard.ts); `memento data merge` (./data-merge.ts) combines the N shard directories.
 */
import { Option, type Command } from "commander";
import { UserError } from "../errors.js";
import { ensureOutputDir } from "../io/files.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { createProvider, type ProviderOptions } from "../data/providers/index.js";
import { OpenAIProvider } from "../data/providers/openai.js";
import { parseFieldMapping, formatSeedReport, DEFAULT_MIN_CHARS } from "../data/seed.js";
import { buildDataset } from "../data/runner.js";
import { formatShard, parseShardSpec, type ShardSpec } from "../data/shard.js";
import type { ReadIssue } from "../data/readers.js";
import { dataCommand } from "./data-segment.js";
import { ProgressReporter } from "./progress.js";
import { choiceOption, integerOption, numberOption, parseInteger, pathOption } from "./options.js";

/** Malformed lines printed one by one under --lenient; past this only the count is printed. */
export const MAX_SKIPPED_LINES_SHOWN = 20;

interface BuildCliOptions {
  input: string;
  outputDir: string;
  provider?: "openai" | "offline";
  baseUrl?: string;
  apiKey?: string;
  model?: string;
  scoreModel?: string;
  compressModel?: string;
  judgeModel?: string;
  jsonMode: boolean;
  temperature?: number;
  workers: number;
  limit?: number;
  shard?: ShardSpec;
  windows: number[];
  minBlockTokens: number;
  minBlocks: number;
  varianceWeight: number;
  judgeThreshold: number;
  maxRounds: number;
  minChars: number;
  field?: string[];
  schema: "full" | "default";
  parquet?: boolean;
  retryFailed?: boolean;
  lenient?: boolean;
  forceNew?: boolean;
  rpm?: number;
  tpm?: number;
  timeout: number;
  attempts: number;
  priceIn?: number;
  priceOut?: number;
  tokenizer?: string;
}

/** `openai` when a key is configured (flag or OPENAI_API_KEY) or a base URL is given, else `offline`. */
function providerOptions(o: BuildCliOptions): ProviderOptions {
  const apiKey = o.apiKey ?? process.env.OPENAI_API_KEY;
  const kind = o.provider ?? (apiKey || o.baseUrl ? "openai" : "offline");
  if (kind === "offline") return { provider: "offline" };
  const model = o.model;
  const models =
    o.scoreModel || o.compressModel || o.judgeModel
      ? { score: o.scoreModel ?? model, compress: o.compressModel ?? model, judge: o.judgeModel ?? model }
      : undefined;
  if (!model && !(models?.score && models.compress && models.judge)) {
    throw new UserError(
      "--model is required with --provider openai (or all of --score-model, --compress-model, --judge-model)",
    );
  }
  const limited = o.rpm !== undefined || o.tpm !== undefined;
  const priced = o.priceIn !== undefined || o.priceOut !== undefined;
  return {
    provider: "openai",
    baseURL: o.baseUrl,
    // Local servers (vLLM, llama.cpp, Ollama, ours) accept any key; the client insists on one.
    apiKey: apiKey ?? "not-needed",
    model,
    models: models as { score: string; compress: string; judge: string } | undefined,
    jsonMode: o.jsonMode,
    temperature: o.temperature,
    retry: { attempts: o.attempts, timeoutMs: o.timeout * 1000 },
    rateLimit: limited ? { requestsPerMinute: o.rpm, tokensPerMinute: o.tpm } : undefined,
    prices: priced ? { inputPerMillion: o.priceIn ?? 0, outputPerMillion: o.priceOut ?? 0 } : undefined,
  };
}

/** `--windows 16,11`: boundary-scoring window sizes, each an integer >= 2. */
function parseWindows(raw: string): number[] {
  return raw.split(",").map((w) => parseInteger("--windows", w.trim(), { min: 2 }));
}

export function register(program: Command): void {
  dataCommand(program)
    .command("build")
    .description(
      "turn raw reasoning traces into Memento training data (OpenMementos schema); rerun the same command to resume",
    )
    .addOption(
      pathOption(
        "-i, --input <file>",
        "JSONL or Parquet traces (OpenThoughts conversations, problem/response, or cot)",
      ).makeOptionMandatory(),
    )
    .addOption(pathOption("-o, --output-dir <dir>", "where the journal and the outputs go").makeOptionMandatory())
    .addOption(
      choiceOption(
        "--provider <kind>",
        "where the LLM calls go (default: openai when an API key or base URL is set, else offline)",
        ["openai", "offline"],
      ),
    )
    .option("--base-url <url>", "OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...)")
    .option("--api-key <key>", "API key (default: $OPENAI_API_KEY)")
    .option("-m, --model <name>", "model for every stage")
    .option("--score-model <name>", "model for boundary scoring")
    .option("--compress-model <name>", "model for writing and refining mementos")
    .option("--judge-model <name>", "model for judging mementos")
    .option("--no-json-mode", "do not ask for response_format json_object")
    .addOption(numberOption("--temperature <t>", "sampling temperature for the provider", { min: 0 }))
    .addOption(integerOption("-w, --workers <n>", "traces processed concurrently", { min: 1 }).default(4))
    .addOption(integerOption("--limit <n>", "only the first N selected traces", { min: 0 }))
    .addOption(
      new Option(
        "--shard <K/N>",
        "process only shard K of N of the selected traces (by a hash of each trace's id; merge with `data merge`)",
      ).argParser((raw: string) => parseShardSpec("--shard", raw)),
    )
    .addOption(
      new Option("--windows <list>", "boundary-scoring window sizes, one pass each, averaged (e.g. 16,11)")
        .argParser(parseWindows)
        .default([16], "16"),
    )
    .addOption(numberOption("--min-block-tokens <n>", "every block at least this many tokens", { min: 0 }).default(200))
    .addOption(integerOption("--min-blocks <n>", "at least this many blocks where feasible", { min: 1 }).default(3))
    .addOption(numberOption("--variance-weight <x>", "lambda on std/mean of block sizes", { min: 0 }).default(0.5))
    .addOption(numberOption("--judge-threshold <n>", "mementos judged below this are refined", { min: 0 }).default(8))
    .addOption(integerOption("--max-rounds <n>", "refinement rounds at most", { min: 0 }).default(2))
    .addOption(
      integerOption("--min-chars <n>", "drop traces whose reasoning is shorter", { min: 0 }).default(DEFAULT_MIN_CHARS),
    )
    .option("--field <key=name...>", "field mapping, e.g. --field problem=question")
    .addOption(choiceOption("--schema <s>", "columns of the outputs", ["full", "default"]).default("full"))
    .option("--parquet", "also write openmementos.parquet")
    .option("--retry-failed", "process again the traces that failed in an earlier run")
    .option("--lenient", "skip malformed input lines (each reported) instead of stopping at the first")
    .option(
      "--force-new",
      "the output directory holds a build with other options: move it aside to DIR.prev-<time> and start over " +
        "(without it such a resume is refused, naming the options that differ)",
    )
    .addOption(numberOption("--rpm <n>", "requests per minute limit", { above: 0 }))
    .addOption(numberOption("--tpm <n>", "tokens per minute limit", { min: 1 }))
    .addOption(numberOption("--timeout <s>", "per-request timeout in seconds", { above: 0 }).default(180))
    .addOption(
      integerOption("--attempts <n>", "attempts per request on 429/5xx/timeouts/resets", { min: 1 }).default(6),
    )
    .addOption(numberOption("--price-in <usd>", "USD per 1M prompt tokens, for the cost counter", { min: 0 }))
    .addOption(numberOption("--price-out <usd>", "USD per 1M completion tokens, for the cost counter", { min: 0 }))
    .addOption(pathOption("--tokenizer <dir>", "tokenizer for token counts (default: Qwen3)"))
    .action(async (o: BuildCliOptions) => {
      const tokenizer = loadTokenizer(o.tokenizer);
      const popts = providerOptions(o);
      ensureOutputDir(o.outputDir, "--output-dir");
      const provider = createProvider(
        popts.provider === "offline" ? { ...popts, countTokens: (t: string) => tokenizer.count(t) } : popts,
      );
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      const progress = new ProgressReporter(`data build (${provider.name}${provider.heuristic ? ", heuristic" : ""})`);
      let skipped = 0;
      const reportSkipped = (issue: ReadIssue) => {
        if (++skipped <= MAX_SKIPPED_LINES_SHOWN)
          process.stderr.write(`skipped ${issue.file}:${issue.line}: ${issue.message}\n`);
      };
      try {
        const summary = await buildDataset({
          input: o.input,
          outputDir: o.outputDir,
          provider,
          tokenizer,
          workers: o.workers,
          limit: o.limit,
          shard: o.shard,
          windows: o.windows,
          minBlockTokens: o.minBlockTokens,
          minBlocks: o.minBlocks,
          varianceWeight: o.varianceWeight,
          judgeThreshold: o.judgeThreshold,
          maxRounds: o.maxRounds,
          seed: { minChars: o.minChars, fields: parseFieldMapping(o.field ?? []) },
          schema: o.schema,
          parquet: o.parquet,
          retryFailed: o.retryFailed,
          lenient: o.lenient,
          onSkipLine: (issue) => reportSkipped(issue),
          providerOptions: { "--temperature": o.temperature, "--json-mode": o.jsonMode },
          forceNew: o.forceNew,
          onMovedAside: (path) => process.stderr.write(`--force-new: moved the earlier build to ${path}\n`),
          signal: controller.signal,
          cost: provider instanceof OpenAIProvider ? () => provider.costUsd() : undefined,
          onProgress: (p) => progress.update(p),
        });
        progress.stop();
        const err = process.stderr;
        if (summary.interrupted) {
          err.write(
            `interrupted after ${summary.done}/${summary.total}: progress is saved in ${o.outputDir}/journal.jsonl; run the same command to resume\n`,
          );
          process.exitCode = 130;
          return;
        }
        err.write(
          `done: ${summary.completed} completed, ${summary.failed} failed (of ${summary.total}; ${summary.resumed} from an earlier run); ` +
            `seeds read ${summary.seedReport.read}, kept ${summary.seedReport.kept}\n`,
        );
        if (o.shard)
          err.write(
            `shard ${formatShard(o.shard)}: ${summary.total} of ${summary.selectedTraces} selected traces; ` +
              `combine the ${o.shard.count} shard directories with memento data merge\n`,
          );
        if (skipped > MAX_SKIPPED_LINES_SHOWN)
          err.write(`skipped ${skipped} malformed input lines in all (the first ${MAX_SKIPPED_LINES_SHOWN} shown)\n`);
        if (summary.adopted)
          err.write(`note: ${o.outputDir} had no recorded options; this build's options are recorded from now on\n`);
        err.write(`seed selection: ${formatSeedReport(summary.seedReport).join("; ")}\n`);
        for (const path of summary.outputs) err.write(`wrote ${path}\n`);
        if (provider.heuristic)
          err.write(
            "note: the offline provider is heuristic (rule-based scores, extractive mementos); use --provider openai for LLM-written data\n",
          );
      } finally {
        progress.stop();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
