import type { Command } from "commander";
import { UserError } from "../errors.js";
import { estimateTokens, splitSentences, splitStats, type SplitOptions } from "../data/split.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { dataCommand } from "./data-segment.js";
import { readStdin } from "./io.js";
import { integerOption, pathOption } from "./options.js";

export interface DataSplitOptions {
  /** Tokenizer directory for the "< minTokens" rule (default: the bundled Qwen3 tokenizer). */
  tokenizer?: string;
  /** Use the built-in token estimate instead of a tokenizer. */
  estimate?: boolean;
  minTokens?: number;
  /** Add naive-vs-ours boundary counts. */
  stats?: boolean;
  pretty?: boolean;
}

/** The JSON value `memento data split` prints for one input (exported for tests). */
export function dataSplitOutput(input: string, opts: DataSplitOptions = {}): Record<string, unknown> {
  let countTokens: (text: string) => number = estimateTokens;
  if (!opts.estimate) {
    const tok = loadTokenizer(opts.tokenizer);
    countTokens = (text) => tok.count(text);
  }
  const splitOpts: SplitOptions = { countTokens, minTokens: opts.minTokens };
  const r = splitSentences(input, splitOpts);
  const out: Record<string, unknown> = { sentences: r.sentences, spans: r.spans };
  if (opts.stats) out.stats = splitStats(input, splitOpts);
  return out;
}

export function register(program: Command): void {
  dataCommand(program)
    .command("split")
    .description(
      "structure-aware sentence splitting of a raw reasoning trace on stdin (text inside <think>...</think> when present); " +
        "prints JSON {sentences, spans} with spans as [start, end) char offsets into the input",
    )
    .addOption(
      pathOption(
        "--tokenizer <dir>",
        "tokenizer directory for the short-fragment rule (default: the bundled Qwen3 tokenizer)",
      ),
    )
    .option("--estimate", "count tokens with the built-in estimate (words + punctuation) instead of a tokenizer")
    .addOption(
      integerOption("--min-tokens <n>", "fragments with fewer tokens merge into a neighbour (default 5)", { min: 0 }),
    )
    .option("--stats", "add stats: naive vs structure-aware sentence and boundary counts")
    .option("--pretty", "indent the JSON output")
    .action(async (opts: DataSplitOptions) => {
      if (opts.estimate && opts.tokenizer !== undefined)
        throw new UserError("--estimate and --tokenizer are mutually exclusive");
      const input = await readStdin();
      const out = dataSplitOutput(input, opts);
      process.stdout.write(JSON.stringify(out, null, opts.pretty ? 2 : undefined) + "\n");
    });
}
