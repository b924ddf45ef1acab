import type { Command } from "commander";
import { UserError } from "../errors.js";
import { addMementoTokensToCheckpoint, REPORT_FILE, type AddTokensReport } from "../model/add-tokens.js";
import { writeJson } from "./io.js";

/**
 * The `model` command group (Hugging Face checkpoints). Returns the group when another file already created
 * it, else creates it, so every `model` subcommand shares one group whatever the registration order.
 */
export function modelCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === "model");
  if (existing) return existing;
  return program.command("model").description("Hugging Face checkpoints (safetensors): add the Memento tokens, ...").exitOverride();
}

export interface AddTokensCliOptions {
  seed: string;
  std: string;
  embedding?: string;
  lmHead?: string;
  force?: boolean;
  json?: boolean;
}

function parseSeed(s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(n) || n > 0xffffffff) throw new UserError(`--seed must be an integer in [0, 2^32), got ${JSON.stringify(s)}`);
  return n;
}

function parseStd(s: string): number {
  const n = Number(s);
  if (s.trim() === "" || !Number.isFinite(n) || n < 0) throw new UserError(`--std must be a finite number >= 0, got ${JSON.stringify(s)}`);
  return n;
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
      (r.grown ? `grown from ${r.rowsBefore} to ${r.rowsAfter} rows; config vocab_size ${r.configVocabSize.before} -> ${r.configVocabSize.after}` : `spare rows used, ${r.rowsAfter} rows kept`),
    `init: mean of the related words' token rows + N(0, ${r.std}^2), seed ${r.seed}`,
  ];
  for (const t of r.tokens) {
    lines.push(`  ${t.token} id ${t.id} <- ${t.words.join(", ")}: ${t.meanOf.length} token ids [${t.meanOf.join(", ")}]`);
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
    .argument("<dir>", "checkpoint directory (config.json, model.safetensors or model.safetensors.index.json + shards, tokenizer.json, tokenizer_config.json)")
    .argument("<out>", "output directory (created; must be empty unless --force)")
    .option("--seed <n>", "seed of the noise PRNG", "0")
    .option("--std <x>", "standard deviation of the noise (0: exact means)", "0.01")
    .option("--embedding <name>", "embedding tensor name (default model.embed_tokens.weight)")
    .option("--lm-head <name>", "output head tensor name (default lm_head.weight)")
    .option("--force", "write into a non-empty OUT")
    .option("--json", "print the full report as JSON")
    .exitOverride()
    .action((dir: string, out: string, opts: AddTokensCliOptions) => {
      const report = addMementoTokensToCheckpoint(dir, out, {
        seed: parseSeed(opts.seed),
        std: parseStd(opts.std),
        embedding: opts.embedding,
        lmHead: opts.lmHead,
        force: opts.force,
        onFile: opts.json ? undefined : (file, bytes) => process.stderr.write(`  ${file}: ${formatBytes(bytes)}\n`),
      });
      if (opts.json) writeJson(report, true);
      else process.stdout.write(formatAddTokensReport(report) + "\n");
    });
}
