/**
 * `memento toy generate` (the toy task's problems and reference responses) and `memento train export` (SFT
 * examples for GPU trainers).
 *
 * 1. `toy generate` streams: each problem is drawn, serialised and written before the next is drawn, so memory
 *    does not grow with --count and a reader that closes the pipe early (`| head`) ends the command at once.
 * 2. --output writes through a temporary file renamed at the end: the file appears whole or not at all.
 * 3. Every flag is checked before the first line is written.
 */
import type { Command } from "commander";
import { UserError } from "../errors.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { writeJsonlAtomic } from "../data/writers.js";
import {
  DEFAULT_TEST_SEED,
  DEFAULT_TRAIN_SEED,
  type ToyParams,
  type ToySplit,
  generateDatasetItems,
  resolveToyParams,
} from "../train/toy-task.js";
import { type ExportReport, exportSft } from "../train/sft-data.js";
import { toyTokenizer } from "../train/char-tokenizer.js";
import { checkOutputFile } from "../io/files.js";
import { optionalInteger, parseChoice, parseInteger, pathOption } from "./options.js";
import { commandGroup } from "./group.js";

const TOY_SPLITS: readonly ToySplit[] = ["train", "test"];

/** The `memento train` command group (created on first use; other train commands attach to the same group). */
export function trainCommand(program: Command): Command {
  return commandGroup(program, "train", "training: SFT data export for GPU trainers, the toy model");
}

/** The `memento toy` command group. */
export function toyCommand(program: Command): Command {
  return commandGroup(
    program,
    "toy",
    "the toy Memento task (a shifted Fibonacci pair mod 10, one block per round of steps)",
  );
}

export interface ToyGenerateOptions {
  count: string;
  seed?: string;
  split?: string;
  output?: string;
  minBlocks?: string;
  maxBlocks?: string;
  stepsPerBlock?: string;
  /** Write evaluation benchmark records {id, problem, answer, kind: "math"} (for `memento eval run`) instead of training rows. */
  benchmark?: boolean;
}

/**
 * The records `memento toy generate` writes, produced lazily one per problem (see `generateDatasetItems`). The
 * options are checked here, before the first record is drawn, so a bad flag fails before any output.
 */
export function toyGenerateRecords(opts: ToyGenerateOptions): Iterable<Record<string, string>> {
  const split = parseChoice<ToySplit>("--split", opts.split ?? "train", TOY_SPLITS);
  const count = parseInteger("--count", opts.count, { min: 0 });
  const defaultSeed = split === "train" ? DEFAULT_TRAIN_SEED : DEFAULT_TEST_SEED;
  const seed = optionalInteger("--seed", opts.seed, { min: 0 }) ?? defaultSeed;
  const params: Partial<ToyParams> = {
    minBlocks: optionalInteger("--min-blocks", opts.minBlocks, { min: 1 }),
    maxBlocks: optionalInteger("--max-blocks", opts.maxBlocks, { min: 1 }),
    stepsPerBlock: optionalInteger("--steps-per-block", opts.stepsPerBlock, { min: 1 }),
  };
  resolveToyParams(params);
  const items = generateDatasetItems(seed, count, params, split);
  const width = Math.max(4, String(Math.max(0, count - 1)).length);
  return mapIterable(
    items,
    (d, i): Record<string, string> =>
      opts.benchmark
        ? { id: `toy-${split}-${String(i).padStart(width, "0")}`, problem: d.prompt, answer: d.answer, kind: "math" }
        : { prompt: d.prompt, response: d.response, answer: d.answer },
  );
}

function* mapIterable<T, U>(items: Iterable<T>, f: (item: T, index: number) => U): Generator<U> {
  let i = 0;
  for (const item of items) yield f(item, i++);
}

/** The JSONL lines `memento toy generate` writes, collected (exported for tests; the command itself streams). */
export function toyGenerateLines(opts: ToyGenerateOptions): string[] {
  return [...toyGenerateRecords(opts)].map((r) => JSON.stringify(r));
}

/** Bytes gathered before each write to stdout; the writer yields to the event loop after each. */
export const STDOUT_CHUNK_BYTES = 64 * 1024;

/**
 * Writes `lines` to `out` as they are produced:
 * 1. in chunks of about STDOUT_CHUNK_BYTES, waiting for `drain` when the stream asks to (memory stays flat);
 * 2. yielding to the event loop after every chunk, so a closed reader (EPIPE, `| head`) is noticed at once:
 *    writing then stops and the function returns normally (the reader got all it wanted); any other stream
 *    error is rethrown;
 * 3. when `lines` throws, the lines produced before are written first, then the error propagates.
 * Returns the number of lines written.
 */
export async function writeLinesStreaming(lines: Iterable<string>, out: NodeJS.WritableStream): Promise<number> {
  let failure: NodeJS.ErrnoException | undefined;
  const onError = (e: NodeJS.ErrnoException): void => {
    failure ??= e;
  };
  out.on("error", onError);
  let written = 0;
  let chunk = "";
  const flush = async (): Promise<void> => {
    const ok = out.write(chunk);
    chunk = "";
    if (!ok && failure === undefined) await new Promise<void>((done) => waitDrainOrError(out, done));
    // `drain` can come on the next tick; only a macrotask lets I/O errors (EPIPE) in.
    await new Promise<void>((done) => setImmediate(done));
  };
  try {
    for (const line of lines) {
      chunk += line + "\n";
      written++;
      if (chunk.length >= STDOUT_CHUNK_BYTES) await flush();
      if (failure !== undefined) break;
    }
  } finally {
    // Also when producing failed: the lines made before the failure still go out.
    if (failure === undefined && chunk.length > 0) await flush();
    out.off("error", onError);
    // A late EPIPE must not become an uncaught error once our listener is gone.
    if (failure !== undefined) out.on("error", () => {});
  }
  if (failure !== undefined && failure.code !== "EPIPE") throw failure;
  return written;
}

function waitDrainOrError(out: NodeJS.WritableStream, done: () => void): void {
  const finish = (): void => {
    out.off("drain", finish);
    out.off("error", finish);
    done();
  };
  out.once("drain", finish);
  out.once("error", finish);
}

export interface TrainExportOptions {
  input: string;
  output: string;
  tokenizer?: string;
  toyTokenizer?: boolean;
  maxTokens?: string;
}

/** Runs `memento train export`; skipped rows are reported on stderr, the summary is returned (exported for tests). */
export async function trainExport(opts: TrainExportOptions): Promise<ExportReport> {
  if (opts.toyTokenizer && opts.tokenizer !== undefined)
    throw new UserError("--toy-tokenizer and --tokenizer are mutually exclusive");
  const tokenizer = opts.toyTokenizer ? toyTokenizer() : loadTokenizer(opts.tokenizer);
  const maxTokens = optionalInteger("--max-tokens", opts.maxTokens, { min: 1 });
  checkOutputFile(opts.output, "--output");
  return exportSft(opts.input, opts.output, {
    tokenizer,
    maxTokens,
    onSkip: (s) => process.stderr.write(`memento: ${opts.input}:${s.line}: skipped (${s.reason}): ${s.message}\n`),
  });
}

export function register(program: Command): void {
  toyCommand(program)
    .command("generate")
    .description(
      "write toy problems as JSONL {prompt, response, answer}; train and test splits are disjoint whatever the seeds",
    )
    .requiredOption("--count <n>", "number of problems")
    .option("--seed <s>", `random seed (default ${DEFAULT_TRAIN_SEED} for train, ${DEFAULT_TEST_SEED} for test)`)
    .option("--split <split>", "train or test (held-out)", "train")
    .addOption(pathOption("--output <file>", "write to this JSONL file instead of stdout"))
    .option("--min-blocks <n>", "fewest rounds (blocks) per problem (default 4)")
    .option("--max-blocks <n>", "most rounds (blocks) per problem, at most 9 (default 9)")
    .option("--steps-per-block <n>", "steps per round (block) (default 10)")
    .option(
      "--benchmark",
      'write evaluation records {id, problem, answer, kind: "math"} for `memento eval run` instead; ' +
        "assets/toy-benchmark.jsonl is `--split test --count 200 --benchmark`",
    )
    .exitOverride()
    .action(async (opts: ToyGenerateOptions) => {
      const records = toyGenerateRecords(opts);
      if (opts.output !== undefined) {
        checkOutputFile(opts.output, "--output");
        writeJsonlAtomic(opts.output, records);
        return;
      }
      await writeLinesStreaming(
        mapIterable(records, (r) => JSON.stringify(r)),
        process.stdout,
      );
    });

  trainCommand(program)
    .command("export")
    .description(
      "tokenise OpenMementos rows or {prompt, response} rows (JSONL or Parquet) into SFT examples for GPU trainers: one record " +
        "{input_ids, labels, prompt_length, memento_visible_until, view_at} per row (JSONL, or Parquet when --output ends in .parquet); " +
        "Stage-2 mask: k <= q && view_at[q] <= visible_until[k] (-1 = never evicted); prints a JSON summary",
    )
    .addOption(pathOption("--input <file>", "JSONL or Parquet rows").makeOptionMandatory())
    .addOption(pathOption("--output <file>", "output .jsonl or .parquet").makeOptionMandatory())
    .addOption(
      pathOption("--tokenizer <dir>", "tokenizer directory (default: the bundled Qwen3 tokenizer + Memento tokens)"),
    )
    .option("--toy-tokenizer", "use the toy character tokenizer")
    .option("--max-tokens <n>", "skip (and report) examples longer than this; never truncates")
    .exitOverride()
    .action(async (opts: TrainExportOptions) => {
      const report = await trainExport(opts);
      const { skipped, ...rest } = report;
      const summary = { ...rest, skippedCount: skipped.length, skipped: skipped.slice(0, 100) };
      process.stdout.write(JSON.stringify(summary) + "\n");
    });
}
