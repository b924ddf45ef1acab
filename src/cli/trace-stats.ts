/**
 * `memento trace stats FILE`: parses the options, loads the responses, prints one row (or JSON object) per trace.
 * Unreadable, binary, empty or non-Memento input is a one-line user error (exit 2), checked before any output.
 */
import type { Command } from "commander";
import { traceCommand } from "./trace-validate.js";
import { loadResponses } from "../format/load.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { resolveArchitecture } from "../kv/resolve.js";
import { formatTraceStatsTable, requireMementoTraces, traceStats } from "../kv/trace-stats.js";
import { writeJson } from "./io.js";
import { addMaskingOptions, maskingFromOptions } from "./masking-options.js";
import { pathOption } from "./options.js";

/** The options besides the masking flags (read by maskingFromOptions). */
interface Options {
  architecture: string;
  tokenizer?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const stats = traceCommand(program)
    .command("stats")
    .description(
      "blocks, tokens per block and memento, compression, and peak/AUC KV (memento vs full attention) per trace",
    )
    .argument("<file>", "a response text file, JSONL of responses or OpenMementos rows, or a segments JSON")
    .option("-a, --architecture <name|config.json>", "architecture for bytes", "qwen3-8b")
    .addOption(pathOption("-t, --tokenizer <dir>", "Hugging Face tokenizer directory (default: Qwen3)"));
  addMaskingOptions(stats)
    .option("--json", "print JSON, one object per trace")
    .action((file: string, opts: Options) => {
      const masking = maskingFromOptions(opts);
      const architecture = resolveArchitecture(opts.architecture);
      const tokenizer = loadTokenizer(opts.tokenizer);
      const loaded = loadResponses(file);
      requireMementoTraces(loaded.responses, file);
      const perTrace = loaded.responses.map((r) =>
        traceStats({ id: r.id, text: r.text, problem: r.problem }, { tokenizer, architecture, masking }),
      );
      if (opts.json) {
        for (const s of perTrace) writeJson(s);
        return;
      }
      process.stdout.write(formatTraceStatsTable(perTrace, architecture.name, masking) + "\n");
    });
}
