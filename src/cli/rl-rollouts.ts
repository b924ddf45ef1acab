/**
 * `memento rl rollouts`: parses the options, loads the benchmark and the tokenizer, runs `collectRollouts`
 * (src/rl/rollouts.ts) with a progress line, prints where the records went. Exit status: 0 when every group
 * completed; 1 with one `memento: ...` line when any group failed (they are retried by rerunning); 2 for a user
 * error (an unreachable endpoint, a resume with other options, a bad flag); 130 when interrupted.
 */
import type { Command } from "commander";
import { basename, join } from "node:path";
import { UserError } from "../errors.js";
import { loadBenchmark } from "../eval/benchmark.js";
import { FIELD_OPTION_FLAGS, FIELD_OPTION_HELP, parseFields } from "./benchmark-fields.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { ensureOutputDir } from "../io/files.js";
import { DEFAULT_ADVANTAGE_SCALE, type AdvantageScale } from "../rl/advantages.js";
import {
  collectRollouts,
  DEFAULT_GROUP_SIZE,
  DEFAULT_ROLLOUT_ATTEMPTS,
  DEFAULT_ROLLOUT_CONCURRENCY,
  DEFAULT_ROLLOUT_MAX_TOKENS,
  DEFAULT_ROLLOUT_SEED,
  DEFAULT_ROLLOUT_TEMPERATURE,
  DEFAULT_ROLLOUT_TIMEOUT_MS,
  ROLLOUTS_JSONL,
  ROLLOUTS_PARQUET,
} from "../rl/rollouts.js";
import { addMaskingOptions, maskingFromOptions } from "./masking-options.js";
import { choiceOption, integerOption, numberOption, pathOption } from "./options.js";
import { ProgressReporter } from "./progress.js";
import { onInterrupt } from "./interrupt.js";

/** Exit status of a run in which some group failed (0 ok, 2 user error, 130 interrupted). */
export const EXIT_GROUPS_FAILED = 1;

interface RolloutsCli {
  benchmark: string;
  field?: string[];
  endpoint: string;
  model: string;
  apiKey?: string;
  out?: string;
  group: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  seed: number;
  concurrency: number;
  limit?: number;
  promptTemplate?: string;
  extraBody?: string;
  tokenizer?: string;
  advantageScale: AdvantageScale;
  timeout: number;
  attempts: number;
  forceNew?: boolean;
}

function parseExtraBody(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new UserError("--extra-body: not valid JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new UserError("--extra-body: expected a JSON object");
  return v as Record<string, unknown>;
}

/** Adds `rollouts` to the `rl` group. */
export function registerRollouts(rl: Command): void {
  const cmd = rl
    .command("rollouts")
    .description(
      "RL groups from any OpenAI-compatible endpoint (ours, vLLM): token ids and log-probabilities, rewards from " +
        "our checkers, group advantages and the Stage-2 mask, as JSONL + Parquet records for a GPU trainer; resumable",
    )
    .addOption(
      pathOption("-b, --benchmark <file>", "JSONL or Parquet problems, as `eval run` reads them").makeOptionMandatory(),
    )
    .requiredOption("-e, --endpoint <url>", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")
    .requiredOption("-m, --model <name>", "model name sent to the endpoint")
    .option("--api-key <key>", "API key (default: $OPENAI_API_KEY, or none for local servers)")
    .addOption(pathOption("-o, --out <dir>", "run directory (default: runs/rollouts-<benchmark>)"))
    .addOption(integerOption("-g, --group <n>", "samples per problem", { min: 1 }).default(DEFAULT_GROUP_SIZE))
    .addOption(
      numberOption("--temperature <t>", "sampling temperature", { min: 0 }).default(DEFAULT_ROLLOUT_TEMPERATURE),
    )
    .addOption(numberOption("--top-p <p>", "nucleus sampling", { above: 0 }).default(1))
    .addOption(integerOption("--top-k <k>", "top-k sampling (-1: off, not sent)", { min: -1 }).default(-1))
    .addOption(
      integerOption("--max-tokens <n>", "max new tokens per sample", { min: 1 }).default(DEFAULT_ROLLOUT_MAX_TOKENS),
    )
    .addOption(
      integerOption("--seed <n>", "base seed; each sample's seed derives from it, the problem id and the index", {
        min: 0,
      }).default(DEFAULT_ROLLOUT_SEED),
    )
    .addOption(
      integerOption("-c, --concurrency <n>", "requests in flight", { min: 1 }).default(DEFAULT_ROLLOUT_CONCURRENCY),
    )
    .addOption(integerOption("--limit <n>", "first N problems only", { min: 1 }))
    .option(FIELD_OPTION_FLAGS, FIELD_OPTION_HELP)
    .option("--prompt-template <text>", "user message template with {problem} (default: the problem + instruction)")
    .option("--extra-body <json>", "extra JSON fields for every request (e.g. our server's block_masking)")
    .addOption(pathOption("-t, --tokenizer <dir>", "the model's tokenizer: chat template, prompt ids (default: Qwen3)"))
    .addOption(
      choiceOption("--advantage-scale <s>", "std: GRPO's (r - mean) / std; none: r - mean", [
        "std",
        "none",
      ] as const).default(DEFAULT_ADVANTAGE_SCALE),
    )
    .addOption(
      numberOption("--timeout <s>", "per-request timeout in seconds", { above: 0 }).default(
        DEFAULT_ROLLOUT_TIMEOUT_MS / 1000,
      ),
    )
    .addOption(integerOption("--attempts <n>", "tries per request", { min: 1 }).default(DEFAULT_ROLLOUT_ATTEMPTS))
    .option(
      "--force-new",
      "the run directory holds a run with other options: move it aside to DIR.prev-<time> and start over",
    );
  // The masking flags set the records' Stage-2 mask (over `train export`'s); match the serving endpoint's.
  addMaskingOptions(cmd);
  cmd.action(async (o: RolloutsCli) => {
    const extraBody = parseExtraBody(o.extraBody);
    const masking = maskingFromOptions(o);
    const fields = parseFields(o.field ?? []);
    const problems = await loadBenchmark(o.benchmark, fields, o.limit);
    const tokenizer = loadTokenizer(o.tokenizer);
    const out = o.out ?? `runs/rollouts-${basename(o.benchmark).replace(/\.(jsonl|parquet)$/i, "")}`;
    ensureOutputDir(out, "--out");
    const interrupt = onInterrupt();
    const progress = new ProgressReporter("rollouts (groups)");
    try {
      const r = await collectRollouts({
        problems,
        benchmark: o.benchmark,
        fields,
        ...(o.promptTemplate !== undefined ? { promptTemplate: o.promptTemplate } : {}),
        outDir: out,
        endpoint: o.endpoint,
        model: o.model,
        apiKey: o.apiKey ?? process.env.OPENAI_API_KEY,
        group: o.group,
        sampling: {
          temperature: o.temperature,
          topP: o.topP,
          topK: o.topK,
          maxTokens: o.maxTokens,
          seed: o.seed,
        },
        ...(extraBody ? { extraBody } : {}),
        tokenizer,
        ...(o.tokenizer !== undefined ? { tokenizerDir: o.tokenizer } : {}),
        ...(Object.keys(masking).length ? { masking } : {}),
        advantageScale: o.advantageScale,
        concurrency: o.concurrency,
        timeoutMs: o.timeout * 1000,
        attempts: o.attempts,
        forceNew: o.forceNew,
        onMovedAside: (path) => process.stderr.write(`--force-new: moved the earlier run to ${path}\n`),
        signal: interrupt.signal,
        onProgress: (p) => progress.update(p),
      });
      progress.stop();
      if (r.interrupted) {
        process.stderr.write(
          `interrupted after ${r.progress.done}/${r.progress.total} groups; run the same command to resume (${out})\n`,
        );
        process.exitCode = 130;
        return;
      }
      const s = r.summary;
      const mean = s.meanReward === null ? "n/a" : s.meanReward.toFixed(4);
      process.stdout.write(
        `${s.groups} groups, ${s.samples} samples, mean reward ${mean}, ${s.zeroSignalGroups} groups with equal ` +
          `rewards, ${s.completionTokens} completion tokens; ids: ${JSON.stringify(s.tokenSources)}\n`,
      );
      if (r.adopted) process.stderr.write(`note: ${out} had no recorded options; they are recorded from now on\n`);
      if (s.failedGroups > 0) {
        process.stderr.write(
          `memento: ${s.failedGroups} of ${s.problems} groups failed (first: ${s.firstError ?? "unknown error"}); ` +
            `the records hold the ${s.groups} completed; rerun the same command to retry the failed ones\n`,
        );
        process.exitCode = EXIT_GROUPS_FAILED;
        return;
      }
      process.stderr.write(`wrote ${join(out, ROLLOUTS_JSONL)} and ${join(out, ROLLOUTS_PARQUET)}\n`);
    } finally {
      progress.stop();
      interrupt.release();
    }
  });
}
