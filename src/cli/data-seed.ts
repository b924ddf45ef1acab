import { basename } from "node:path";
import type { Command } from "commander";
import { UserError } from "../errors.js";
import { readRecords } from "../data/readers.js";
import { formatSeedReport, parseFieldMapping, SeedSelector, DEFAULT_MIN_CHARS, type SeedReport } from "../data/seed.js";
import { AtomicFile } from "../data/writers.js";
import { checkOutputFile } from "../io/files.js";
import { dataCommand } from "./data-segment.js";
import { integerOption, pathOption } from "./options.js";
import { register as registerDataStats } from "./data-stats.js";

export interface DataSeedOptions {
  input: string;
  output?: string;
  minChars?: number;
  minTokens?: number;
  maxCjk?: number;
  field?: string[];
  source?: string;
  lenient?: boolean;
  /** commander's negation of --no-dedupe. */
  dedupe?: boolean;
}

/**
 * `memento data seed`: streams INPUT (JSONL or Parquet), writes the kept SeedTraces as JSONL to OUTPUT
 * (atomically) or stdout, and returns the report. Report lines go to `log` (stderr in the CLI).
 */
export async function runDataSeed(
  opts: DataSeedOptions,
  log: (line: string) => void = (l) => process.stderr.write(l + "\n"),
): Promise<SeedReport> {
  if (!opts.input) throw new UserError("--input is required");
  const selector = new SeedSelector({
    fields: parseFieldMapping(opts.field ?? []),
    minChars: opts.minChars,
    minTokens: opts.minTokens,
    maxCjk: opts.maxCjk,
    source: opts.source ?? basename(opts.input).replace(/\.(jsonl|ndjson|json|parquet)$/i, ""),
    dedupe: opts.dedupe ?? true,
  });
  if (opts.output !== undefined) checkOutputFile(opts.output, "--output");
  let skippedLines = 0;
  const sink = opts.output ? new AtomicFile(opts.output) : null;
  const write = (line: string): void => {
    if (sink) sink.write(line);
    else process.stdout.write(line);
  };
  try {
    for await (const { record } of readRecords(opts.input, {
      lenient: opts.lenient,
      onSkip: (i) => {
        skippedLines++;
        log(`skipped ${i.file}:${i.line}: ${i.message}`);
      },
    })) {
      const r = selector.add(record);
      if ("trace" in r) write(JSON.stringify(r.trace) + "\n");
    }
  } catch (e) {
    sink?.abort();
    throw e;
  }
  sink?.commit();
  const report = selector.report;
  if (skippedLines) report.skippedLines = skippedLines;
  for (const line of formatSeedReport(report)) log(line);
  if (opts.output) log(`wrote ${report.kept} traces to ${opts.output}`);
  return report;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  dataCommand(program)
    .command("seed")
    .description(
      "select seed traces (stage 0): read a JSONL or Parquet file of raw reasoning traces (OpenThoughts conversations, " +
        "problem/response, cot, question/answer, ... auto-detected), drop those without a closing </think>, with CJK text, " +
        `shorter than --min-chars (default ${DEFAULT_MIN_CHARS}) or with an empty problem, tag domains, deduplicate; ` +
        "writes SeedTrace JSONL to --output (or stdout) and the report to stderr, one line per reason",
    )
    .addOption(pathOption("--input <file>", "input records (.jsonl or .parquet)").makeOptionMandatory())
    .addOption(pathOption("--output <file>", "output SeedTrace JSONL (written atomically; default stdout)"))
    .addOption(
      integerOption(
        "--min-chars <n>",
        `minimum reasoning length in characters (default ${DEFAULT_MIN_CHARS}; 0 disables)`,
        { min: 0 },
      ),
    )
    .addOption(
      integerOption("--min-tokens <n>", "also require this many tokens (built-in estimate); off by default", {
        min: 0,
      }),
    )
    .addOption(integerOption("--max-cjk <n>", "CJK characters tolerated in the reasoning (default 0)", { min: 0 }))
    .option(
      "--field <key=field>",
      "map a field: id, problem, response, reasoning, answer, conversations, domain, source, difficulty (repeatable; dotted paths allowed)",
      collect,
      [],
    )
    .option("--source <name>", "source for records without one (default: the input file name)")
    .option("--lenient", "skip malformed JSONL lines (reported) instead of failing")
    .option("--no-dedupe", "keep duplicate problem+reasoning pairs")
    .action(async (opts: DataSeedOptions) => {
      await runDataSeed(opts);
    });
}

/** Registers `data seed` and `data stats` (one entry in the command table for both). */
export function registerSeedAndStats(program: Command): void {
  register(program);
  registerDataStats(program);
}
