import type { Command } from "commander";
import { traceCommand } from "./trace-validate.js";
import { loadResponses } from "../format/load.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { resolveArchitecture } from "../kv/resolve.js";
import { formatTraceStatsTable, traceStats } from "../kv/trace-stats.js";
import { UserError } from "../errors.js";
import { writeJson } from "./io.js";

interface Options {
  architecture: string;
  tokenizer?: string;
  keep: string;
  maskDelimiters?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  traceCommand(program)
    .command("stats")
    .description("blocks, tokens per block and memento, compression, and peak/AUC KV (memento vs full attention) per trace")
    .argument("<file>", "a response text file, JSONL of responses or OpenMementos rows, or a segments JSON")
    .option("-a, --architecture <name|config.json>", "architecture for bytes", "qwen3-8b")
    .option("-t, --tokenizer <dir>", "Hugging Face tokenizer directory (default: Qwen3)")
    .option("-k, --keep <n>", "keepLastNBlocks for the memento replay", "0")
    .option("--mask-delimiters", "evict the block delimiters too (Phi-4 style)")
    .option("--json", "print JSON, one object per trace")
    .action((file: string, opts: Options) => {
      const keep = Number(opts.keep);
      if (!Number.isInteger(keep) || keep < 0) throw new UserError(`--keep must be an integer >= 0, got "${opts.keep}"`);
      const architecture = resolveArchitecture(opts.architecture);
      const tokenizer = loadTokenizer(opts.tokenizer);
      const loaded = loadResponses(file);
      const stats = loaded.responses.map((r) =>
        traceStats({ id: r.id, text: r.text, problem: r.problem }, { tokenizer, architecture, masking: { keepLastNBlocks: keep, maskDelimiters: opts.maskDelimiters ?? false } }),
      );
      if (opts.json) {
        for (const s of stats) writeJson(s);
        return;
      }
      process.stdout.write(formatTraceStatsTable(stats, architecture.name) + "\n");
    });
}
