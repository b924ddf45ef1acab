/**
 * `memento data split`: the structure-aware sentence split of a raw trace on stdin, as JSON; or, with
 * `--compare FIXTURE`, the boundary agreement with the public reference splitter on the reference texts the
 * fixture names (a table, or JSON with `--json`). Parses options and prints; the rules live in
 * `src/data/split.ts`, the scoring in `src/data/split/compare.ts`.
 */
import type { Command } from "commander";
import { UserError } from "../errors.js";
import {
  DEFAULT_MIN_SENTENCE_TOKENS,
  estimateTokens,
  splitSentences,
  splitStats,
  type SplitOptions,
} from "../data/split.js";
import {
  DEFAULT_BOUNDARY_TOLERANCE_CHARS,
  type SplitComparison,
  compareWithReference,
  loadSplitFixture,
} from "../data/split/compare.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { dataCommand } from "./data-segment.js";
import { readStdin } from "./io.js";
import { integerOption, pathOption } from "./options.js";

/** Where `--compare` reads the reference texts unless `--reference-dir` says otherwise (next to a checkout). */
export const DEFAULT_REFERENCE_DIR = "../shared/reference";

export interface DataSplitOptions {
  /** Tokenizer directory for the "< minTokens" rule (default: the bundled Qwen3 tokenizer). */
  tokenizer?: string;
  /** Use the built-in token estimate instead of a tokenizer. */
  estimate?: boolean;
  minTokens?: number;
  /** Add naive-vs-ours boundary counts. */
  stats?: boolean;
  pretty?: boolean;
  /** Fixture of reference boundaries: print the agreement instead of splitting stdin. */
  compare?: string;
  /** Directory holding the texts the fixture names (default `DEFAULT_REFERENCE_DIR`). */
  referenceDir?: string;
  /** Boundary match tolerance in chars (default `DEFAULT_BOUNDARY_TOLERANCE_CHARS`). */
  tolerance?: number;
  /** With --compare: JSON instead of the table. */
  json?: boolean;
}

function splitOptionsOf(opts: DataSplitOptions): SplitOptions {
  let countTokens: (text: string) => number = estimateTokens;
  if (!opts.estimate) {
    const tok = loadTokenizer(opts.tokenizer);
    countTokens = (text) => tok.count(text);
  }
  return { countTokens, minTokens: opts.minTokens };
}

/** The JSON value `memento data split` prints for one input (exported for tests). */
export function dataSplitOutput(input: string, opts: DataSplitOptions = {}): Record<string, unknown> {
  const splitOpts = splitOptionsOf(opts);
  const r = splitSentences(input, splitOpts);
  const out: Record<string, unknown> = { sentences: r.sentences, spans: r.spans };
  if (opts.stats) out.stats = splitStats(input, splitOpts);
  return out;
}

/** `--compare`: ours against the fixture's reference boundaries (exported for tests). */
export function dataSplitComparison(fixturePath: string, opts: DataSplitOptions = {}): SplitComparison {
  const fixture = loadSplitFixture(fixturePath);
  return compareWithReference(
    fixture,
    opts.referenceDir ?? DEFAULT_REFERENCE_DIR,
    splitOptionsOf(opts),
    opts.tolerance ?? DEFAULT_BOUNDARY_TOLERANCE_CHARS,
  );
}

/** The `--compare` table: one row per text, then the pooled boundaries. */
export function comparisonTable(c: SplitComparison): string {
  const f = (x: number) => x.toFixed(3);
  const rows = [["text", "reference", "ours", "ours/ref", "precision", "recall", "F1"]];
  for (const t of c.texts)
    rows.push([
      t.name,
      `${t.referenceSentences}`,
      `${t.sentences}`,
      t.countRatio.toFixed(2),
      f(t.precision),
      f(t.recall),
      f(t.f1),
    ]);
  const o = c.overall;
  rows.push([
    "all boundaries",
    `${o.expected}`,
    `${o.found}`,
    o.expected > 0 ? (o.found / o.expected).toFixed(2) : "-",
    f(o.precision),
    f(o.recall),
    f(o.f1),
  ]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "),
  );
  return (
    `${lines.join("\n")}\n` +
    `rows per text count sentences; the last counts boundaries (sentence starts after the first), ` +
    `matched within ${c.toleranceChars} chars\n`
  );
}

export function register(program: Command): void {
  dataCommand(program)
    .command("split")
    .description(
      "structure-aware sentence splitting of a raw reasoning trace on stdin (text inside <think>...</think> when present); " +
        "prints JSON {sentences, spans} with spans as [start, end) char offsets into the input. " +
        "With --compare FIXTURE: boundary agreement with the public reference splitter on the reference texts",
    )
    .addOption(
      pathOption(
        "--tokenizer <dir>",
        "tokenizer directory for the short-fragment rule (default: the bundled Qwen3 tokenizer)",
      ),
    )
    .option("--estimate", "count tokens with the built-in estimate (words + punctuation) instead of a tokenizer")
    .addOption(
      integerOption(
        "--min-tokens <n>",
        `fragments with fewer tokens merge into a neighbour (default ${DEFAULT_MIN_SENTENCE_TOKENS})`,
        { min: 0 },
      ),
    )
    .option("--stats", "add stats: naive vs structure-aware sentence and boundary counts")
    .option("--pretty", "indent the JSON output")
    .addOption(
      pathOption(
        "--compare <fixture>",
        "instead of reading stdin, score our boundaries against a reference fixture " +
          "(test/fixtures/split-reference-boundaries.json): sentence counts, precision, recall, F1 per text",
      ),
    )
    .addOption(
      pathOption(
        "--reference-dir <dir>",
        `with --compare: directory of the texts the fixture names (default ${DEFAULT_REFERENCE_DIR})`,
      ),
    )
    .addOption(
      integerOption(
        "--tolerance <chars>",
        `with --compare: boundaries this close are the same (default ${DEFAULT_BOUNDARY_TOLERANCE_CHARS})`,
        { min: 0 },
      ),
    )
    .option("--json", "with --compare: print JSON instead of the table")
    .action(async (opts: DataSplitOptions) => {
      if (opts.estimate && opts.tokenizer !== undefined)
        throw new UserError("--estimate and --tokenizer are mutually exclusive");
      if (opts.compare === undefined) {
        for (const flag of ["referenceDir", "tolerance", "json"] as const)
          if (opts[flag] !== undefined) throw new UserError(`--${kebab(flag)} needs --compare`);
        const input = await readStdin();
        const out = dataSplitOutput(input, opts);
        process.stdout.write(JSON.stringify(out, null, opts.pretty ? 2 : undefined) + "\n");
        return;
      }
      if (opts.stats) throw new UserError("--stats does not apply to --compare");
      const comparison = dataSplitComparison(opts.compare, opts);
      if (opts.json) process.stdout.write(JSON.stringify(comparison, null, opts.pretty ? 2 : undefined) + "\n");
      else process.stdout.write(comparisonTable(comparison));
    });
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
