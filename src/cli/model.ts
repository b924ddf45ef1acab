import type { Command } from "commander";
import { checkOutputDir } from "../io/files.js";
import { addMementoTokensToCheckpoint, REPORT_FILE, type AddTokensReport } from "../model/add-tokens.js";
import { writeJson } from "./io.js";
import { integerOption, numberOption } from "./options.js";
import { commandGroup } from "./group.js";

/**
 * The `model` command group (Hugging Face checkpoints). Returns the group when another file already created
 * it, else creates it, so every `model` subcommand shares one group whatever the registration order.
 */
export function modelCommand(program: Command): Command {
  return commandGroup(program, "model", "Hugging Face checkpoints (safetensors): add the Memento tokens, ...");
}

export interface AddTokensCliOptions {
  seed: number;
  std: number;
  embedding?: string;
  lmHead?: string;
  force?: boolean;
  json?: boolean;
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${n} bytes`;
}

/** The human-readable summary printed by `memento model add-tokens` (exported for tests). */
export function formatAddTokensReport(r: AddTokensReport): string {
  const lines = [
    `wrote ${r.output} (${r.shards.length} weight file${r.shards.length === 1 ? "" : "s"}, ${r.tensorsCopied} tensors copied unchanged)`,
    `${r.embedding}${r.lmHead ? ` and ${r.lmHead}` : ""} (${r.dtype}, hidden ${r.hiddenSize}, ${r.tiedEmbeddings ? "tied" : "untied"}): ` +
      (r.grown
        ? `grown from ${r.rowsBefore} to ${r.rowsAfter} rows; config vocab_size ${r.configVocabSize.before} -> ${r.configVocabSize.after}`
        : `spare rows used, ${r.rowsAfter} rows kept`),
    `init: mean of the related words' token rows + N(0, ${r.std}^2), seed ${r.seed}`,
  ];
  for (const t of r.tokens) {
    lines.push(
      `  ${t.token} id ${t.id} <- ${t.words.join(", ")}: ${t.meanOf.length} token ids [${t.meanOf.join(", ")}]`,
    );
  }
  if (r.alreadyInTokenizer.length) lines.push(`already in the tokenizer: ${r.alreadyInTokenizer.join(", ")}`);
  if (r.filesSkipped.length) lines.push(`skipped (not copied): ${r.filesSkipped.join(", ")}`);
  lines.push(`report: ${REPORT_FILE}`);
  return lines.join("\n");
}

export function register(program: Command): void {
  modelCommand(program)
    .command("add-tokens")
    .description(
      "add the four Memento tokens to a Hugging Face safetensors checkpoint DIR and its tokenizer, writing OUT: " +
        "each new embedding (and untied lm_head) row = mean of its related words' token rows + N(0, std^2); " +
        "tensors are streamed, so memory stays small whatever the checkpoint size",
    )
    .argument(
      "<dir>",
      "checkpoint directory (config.json, model.safetensors or model.safetensors.index.json + shards, tokenizer.json, tokenizer_config.json)",
    )
    .argument("<out>", "output directory (created; must be empty unless --force)")
    .addOption(integerOption("--seed <n>", "seed of the noise PRNG", { min: 0, max: 0xffffffff }).default(0))
    .addOption(numberOption("--std <x>", "standard deviation of the noise (0: exact means)", { min: 0 }).default(0.01))
    .option("--embedding <name>", "embedding tensor name (default model.embed_tokens.weight)")
    .option("--lm-head <name>", "output head tensor name (default lm_head.weight)")
    .option("--force", "write into a non-empty OUT")
    .option("--json", "print the full report as JSON")
    .exitOverride()
    .action((dir: string, out: string, opts: AddTokensCliOptions) => {
      checkOutputDir(out, "OUT");
      const report = addMementoTokensToCheckpoint(dir, out, {
        seed: opts.seed,
        std: opts.std,
        embedding: opts.embedding,
        lmHead: opts.lmHead,
        force: opts.force,
        onFile: opts.json ? undefined : (file, bytes) => process.stderr.write(`  ${file}: ${formatBytes(bytes)}\n`),
      });
      if (opts.json) writeJson(report, true);
      else process.stdout.write(formatAddTokensReport(report) + "\n");
    });
}
