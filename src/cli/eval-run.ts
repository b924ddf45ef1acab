/**
 * `memento eval run`: parses the options, loads the benchmark, runs `runEval` (src/eval/runner.ts) with a progress
 * bar, prints the summary table. Exit status: 0 when every generation completed; EXIT_GENERATIONS_FAILED (1) with
 * one `memento: ...` line when any failed (they are retried by rerunning); 2 for a user error, including a resume
 * with other options (`--force-new` moves the old directory aside); 130 when interrupted.
 *
 * `--server vllm-memento` (src/eval/server-kind.ts): the server owns masking, so nothing of ours is sent, the
 * masking flags describe its launch settings for the KV replay, and `--architecture` must be given. A
 * `warning: ...` line says when the server's usage counts disagree with our tokenizer's (src/eval/usage.ts).
 */
import type { Command } from "commander";
import { basename } from "node:path";
import { UserError } from "../errors.js";
import { ensureOutputDir } from "../io/files.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { resolveArchitecture } from "../kv/resolve.js";
import { loadBenchmark } from "../eval/benchmark.js";
import { FIELD_OPTION_FLAGS, FIELD_OPTION_HELP, parseFields } from "./benchmark-fields.js";
import { runEval } from "../eval/runner.js";
import { formatSummaryTable } from "../eval/summary.js";
import { PAPER_SAMPLING, type RequestSampling } from "../eval/types.js";
import {
  DEFAULT_EVAL_ARCHITECTURE,
  DEFAULT_SERVER_KIND,
  requireServedArchitecture,
  SERVER_KIND_HELP,
  SERVER_KINDS,
  type ServerKind,
} from "../eval/server-kind.js";
import { ARCHITECTURE_PRESETS } from "../kv/architecture.js";
import { addMaskingOptions, maskingFromOptions } from "./masking-options.js";
import { evalCommand } from "./eval-report.js";
import { ProgressReporter } from "./progress.js";
import { choiceOption, integerOption, numberOption, pathOption } from "./options.js";
import { onInterrupt } from "./interrupt.js";

interface EvalRunCli {
  benchmark: string;
  endpoint: string;
  model: string;
  apiKey?: string;
  out?: string;
  label?: string;
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  minP?: number;
  maxTokens: number;
  seed?: number;
  concurrency: number;
  limit?: number;
  field?: string[];
  promptTemplate?: string;
  extraBody?: string;
  server: ServerKind;
  architecture?: string;
  tokenizer?: string;
  timeout: number;
  forceNew?: boolean;
}

/** Exit status of a run in which some generation failed (0 ok, 2 user error, 130 interrupted). */
export const EXIT_GENERATIONS_FAILED = 1;

/** The --server help: each kind and what it means. */
const serverHelp = () =>
  "who owns block masking: " + SERVER_KINDS.map((k) => `${k} (${SERVER_KIND_HELP[k]})`).join("; ");

export function register(program: Command): void {
  const run = evalCommand(program)
    .command("run")
    .description("n generations per problem from an OpenAI-compatible endpoint, checked and measured (KV), resumable")
    .addOption(
      pathOption(
        "-b, --benchmark <file>",
        "JSONL or Parquet benchmark (AIME, MATH-500, GPQA, LiveCodeBench exports, the toy set)",
      ).makeOptionMandatory(),
    )
    .requiredOption("-e, --endpoint <url>", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
    .requiredOption("-m, --model <name>", "model name sent to the endpoint")
    .option("--api-key <key>", "API key (default: $OPENAI_API_KEY, or none for local servers)")
    .addOption(pathOption("-o, --out <dir>", "run directory (default: runs/<benchmark>-<label>)"))
    .option("-l, --label <name>", "label in reports (e.g. memento, vanilla)", "run")
    .addOption(integerOption("-n, --n <n>", "generations per problem", { min: 1 }).default(1))
    .addOption(
      numberOption("--temperature <t>", "sampling temperature", { min: 0 }).default(PAPER_SAMPLING.temperature),
    )
    .addOption(numberOption("--top-p <p>", "nucleus sampling", { min: 0 }).default(PAPER_SAMPLING.top_p))
    .addOption(integerOption("--top-k <k>", "top-k sampling", { min: -1 }).default(PAPER_SAMPLING.top_k))
    .addOption(numberOption("--min-p <p>", "min-p sampling", { min: 0 }))
    .addOption(integerOption("--max-tokens <n>", "max new tokens", { min: 1 }).default(PAPER_SAMPLING.max_tokens))
    .addOption(integerOption("--seed <n>", "base seed (sample i uses seed + i)", { min: 0 }))
    .addOption(integerOption("-c, --concurrency <n>", "requests in flight", { min: 1 }).default(4))
    .addOption(integerOption("--limit <n>", "first N problems only", { min: 1 }))
    .option(FIELD_OPTION_FLAGS, FIELD_OPTION_HELP)
    .option("--prompt-template <text>", "user message template with {problem}")
    .option(
      "--extra-body <json>",
      "extra JSON fields for every request (e.g. block_masking for memento serve; refused with vllm-memento)",
    )
    .addOption(choiceOption("--server <kind>", serverHelp(), SERVER_KINDS).default(DEFAULT_SERVER_KIND))
    .option(
      "-a, --architecture <name|config.json>",
      `architecture for KV bytes: ${Object.keys(ARCHITECTURE_PRESETS).join(", ")} or a config.json ` +
        `(default: ${DEFAULT_EVAL_ARCHITECTURE}; required with --server vllm-memento)`,
    )
    .addOption(pathOption("-t, --tokenizer <dir>", "tokenizer for KV replay (default: Qwen3)"))
    .addOption(numberOption("--timeout <s>", "per-request timeout in seconds", { above: 0 }).default(600))
    .option(
      "--force-new",
      "the run directory holds a run with other options: move it aside to DIR.prev-<time> and start over " +
        "(without it such a resume is refused, naming the options that differ; -n, --limit and --label may change)",
    );
  // With --server vllm-memento: the masking the server was launched with, for the KV replay (nothing is sent).
  addMaskingOptions(run).action(async (o: EvalRunCli) => {
    const sampling: RequestSampling = {
      temperature: o.temperature,
      top_p: o.topP,
      top_k: o.topK,
      max_tokens: o.maxTokens,
      ...(o.minP !== undefined ? { min_p: o.minP } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
    };
    let extraBody: Record<string, unknown> | undefined;
    if (o.extraBody) {
      try {
        extraBody = JSON.parse(o.extraBody) as Record<string, unknown>;
      } catch {
        throw new UserError("--extra-body: not valid JSON");
      }
      if (!extraBody || typeof extraBody !== "object" || Array.isArray(extraBody))
        throw new UserError("--extra-body: expected a JSON object");
    }
    const masking = maskingFromOptions(o);
    requireServedArchitecture(o.server, o.architecture, Object.keys(ARCHITECTURE_PRESETS));
    const fields = parseFields(o.field ?? []);
    const problems = await loadBenchmark(o.benchmark, fields, o.limit);
    const architecture = resolveArchitecture(o.architecture ?? DEFAULT_EVAL_ARCHITECTURE);
    const tokenizer = loadTokenizer(o.tokenizer);
    const label = o.label ?? "run";
    const out = o.out ?? `runs/${basename(o.benchmark).replace(/\.(jsonl|parquet)$/i, "")}-${label}`;
    ensureOutputDir(out, "--out");
    const interrupt = onInterrupt();
    const progress = new ProgressReporter(`eval ${label}`);
    try {
      const r = await runEval({
        problems,
        benchmark: o.benchmark,
        fields,
        outDir: out,
        endpoint: o.endpoint,
        model: o.model,
        apiKey: o.apiKey ?? process.env.OPENAI_API_KEY,
        label,
        n: o.n,
        sampling,
        extraBody,
        server: o.server,
        masking,
        concurrency: o.concurrency,
        promptTemplate: o.promptTemplate,
        tokenizer,
        ...(o.tokenizer !== undefined ? { tokenizerDir: o.tokenizer } : {}),
        architecture,
        timeoutMs: o.timeout * 1000,
        forceNew: o.forceNew,
        onMovedAside: (path) => process.stderr.write(`--force-new: moved the earlier run to ${path}\n`),
        signal: interrupt.signal,
        onProgress: (p) => progress.update(p),
      });
      progress.stop();
      if (r.interrupted) {
        process.stderr.write(
          `interrupted after ${r.progress.done}/${r.progress.total}; run the same command to resume (${out})\n`,
        );
        process.exitCode = 130;
        return;
      }
      process.stdout.write(formatSummaryTable([r.summary]) + "\n");
      if (r.adopted)
        process.stderr.write(`note: ${out} had no recorded options; this run's are recorded from now on\n`);
      const s = r.summary;
      if ((s.usageMismatches ?? 0) > 0)
        process.stderr.write(
          `warning: in ${s.usageMismatches} of ${s.completed} responses the server's usage.completion_tokens differs ` +
            "from our tokenizer's count: the KV figures are for another tokenizer; give -t with the served model's\n",
        );
      if (s.errors > 0) {
        // One line: the verdict, what the numbers cover, the first cause, and the way out.
        process.stderr.write(
          `memento: ${s.errors} of ${s.generations} generations failed (first: ${r.firstError ?? "unknown error"}); ` +
            `results.json scores the ${s.generations - s.errors} completed; ` +
            "rerun the same command to retry the failed ones\n",
        );
        process.exitCode = EXIT_GENERATIONS_FAILED;
        return;
      }
      process.stderr.write(`wrote ${out}/results.json\n`);
    } finally {
      progress.stop();
      interrupt.release();
    }
  });
}
