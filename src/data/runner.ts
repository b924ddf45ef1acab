/**
 * `memento data build` as a library call: seeds from the input, every trace through the pipeline, journalled,
 * and the OpenMementos outputs rebuilt from the journal.
 *
 * Policy:
 * 1. Resumable: every finished trace is journalled (see io/pool.ts); the same command resumes.
 * 2. Resumes are checked (io/manifest.ts): `manifest.json` is written before any work with the build's identity
 *    (`buildIdentity`: every option that changes a row, and the input's fingerprint), and a rerun with another
 *    identity is refused in one line naming the differing options; `forceNew` moves the old directory aside.
 * 3. `lenient`: malformed input lines are skipped, each reported through `onSkipLine` and counted in the seed
 *    report's `skippedLines`, instead of stopping the build at the first one.
 * 4. `shard` (`--shard K/N`, src/data/shard.ts): seeds are selected from the whole input as usual, `limit` cuts
 *    them, then only the traces of shard K are processed. The shard is part of the identity (a resume with
 *    another is refused); the finished manifest records `selectedTraces` (before sharding) so that
 *    `memento data merge` (src/data/merge.ts) can check the shards cut the same selection.
 */
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { checkJobIdentity, fileFingerprint, moveAside, type JobIdentity } from "../io/manifest.js";
import { runJournalled, type JobProgress } from "../io/pool.js";
import { readRecords, type ReadIssue } from "./readers.js";
import { selectSeeds, type SeedOptions, type SeedReport } from "./seed.js";
import { processTrace, type PipelineOptions } from "./pipeline.js";
import { formatShard, inShard, type ShardSpec } from "./shard.js";
import { writeFileAtomic, writeRecords, type OutputSchema } from "./writers.js";
import type { PipelineRecord, Provider, SeedTrace } from "./types.js";

/** Files a build writes in its output directory. */
export const JOURNAL_FILE = "journal.jsonl";
export const MANIFEST_FILE = "manifest.json";
export const SEED_REPORT_FILE = "seed-report.json";

/** Progress of a build, in traces (the shared journalled-job progress). */
export type BuildProgress = JobProgress;

export interface BuildOptions extends Omit<PipelineOptions, "provider" | "tokenizer" | "signal"> {
  input: string;
  outputDir: string;
  provider: Provider;
  tokenizer: MementoTokenizer;
  /** Traces processed concurrently. */
  workers?: number;
  /** Only the first N selected traces (cut before sharding). */
  limit?: number;
  /** Process only this shard of the selected traces (`--shard K/N`); default: all of them. */
  shard?: ShardSpec;
  seed?: Omit<SeedOptions, "countTokens" | "source">;
  schema?: OutputSchema;
  /** Also write Parquet next to the JSONL. */
  parquet?: boolean;
  /** Process again the traces the journal holds as failed. */
  retryFailed?: boolean;
  /** Skip malformed input lines (each reported through `onSkipLine`) instead of failing. Default false. */
  lenient?: boolean;
  onSkipLine?: (issue: ReadIssue) => void;
  /**
   * Flags outside these options that change what a row holds (the provider's temperature, JSON mode), keyed by
   * flag, recorded with the build's identity.
   */
  providerOptions?: Record<string, unknown>;
  /** Move an existing output directory aside and start over (`--force-new`). */
  forceNew?: boolean;
  /** Called with the new name when `forceNew` moved the old directory aside. */
  onMovedAside?: (path: string) => void;
  signal?: AbortSignal;
  onProgress?: (p: BuildProgress, last?: PipelineRecord) => void;
  /** Cost so far, when the provider counts it. */
  cost?: () => number;
}

export interface BuildSummary extends BuildProgress {
  seedReport: SeedReport;
  outputs: string[];
  interrupted: boolean;
  /** Whether an output directory without a recorded identity (an older build) was adopted. */
  adopted: boolean;
  /** Seed-selected traces after `limit`, before sharding (equals `total` when unsharded). */
  selectedTraces: number;
}

/**
 * The identity of a build (io/manifest.ts): each option that changes a row, under its flag, and the input's
 * fingerprint. Workers, limits, rate limits, retries, the output schema and Parquet only change how fast, how
 * much or in which files, so they are left out.
 */
export function buildIdentity(opts: BuildOptions): JobIdentity {
  return {
    options: {
      "--provider": opts.provider.name,
      "--score-model": opts.provider.models.score,
      "--compress-model": opts.provider.models.compress,
      "--judge-model": opts.provider.models.judge,
      ...opts.providerOptions,
      "--windows": opts.windows ?? [16],
      "--min-block-tokens": opts.minBlockTokens,
      "--min-blocks": opts.minBlocks,
      "--variance-weight": opts.varianceWeight,
      "--judge-threshold": opts.judgeThreshold,
      "--max-rounds": opts.maxRounds,
      "--min-chars": opts.seed?.minChars,
      "--field": opts.seed?.fields,
      // Absent when unsharded, so builds recorded before sharding existed still resume.
      "--shard": opts.shard ? formatShard(opts.shard) : undefined,
    },
    input: { "--input": fileFingerprint(opts.input) },
  };
}

/**
 * `memento data build`: select seeds from the input, run each through the pipeline with `workers` traces at a
 * time, journal every result, and write the OpenMementos outputs. Running the same command again resumes.
 */
export async function buildDataset(opts: BuildOptions): Promise<BuildSummary> {
  const identity = buildIdentity(opts);
  const manifestPath = join(opts.outputDir, MANIFEST_FILE);
  if (opts.forceNew) {
    const aside = moveAside(opts.outputDir);
    if (aside) opts.onMovedAside?.(aside);
  }
  const verdict = checkJobIdentity(manifestPath, identity, { what: "build", dirFlag: "--output-dir" });
  mkdirSync(opts.outputDir, { recursive: true });
  const startedAt = new Date().toISOString();
  const writeManifest = (fields: Record<string, unknown>) =>
    writeFileAtomic(
      manifestPath,
      JSON.stringify({ inputPath: opts.input, ...identity, startedAt, ...fields }, null, 2) + "\n",
    );
  // Recorded before any work, so a build killed at any moment is still checked when resumed.
  writeManifest({ status: "running" });
  const tok = opts.tokenizer;
  let skippedLines = 0;
  const seeds = await selectSeeds(
    (async function* () {
      const read = readRecords(opts.input, {
        lenient: opts.lenient,
        onSkip: (issue) => {
          skippedLines++;
          opts.onSkipLine?.(issue);
        },
      });
      for await (const item of read) yield item.record as Record<string, unknown>;
    })(),
    {
      ...opts.seed,
      countTokens: (t) => tok.count(t),
      source: basename(opts.input).replace(/\.(jsonl|parquet|json)$/i, ""),
    },
  );
  if (skippedLines) seeds.report.skippedLines = skippedLines;
  const selected: SeedTrace[] = opts.limit !== undefined ? seeds.traces.slice(0, opts.limit) : seeds.traces;
  const shard = opts.shard;
  const traces = shard ? selected.filter((t) => inShard(t.id, shard)) : selected;
  writeFileAtomic(join(opts.outputDir, SEED_REPORT_FILE), JSON.stringify(seeds.report, null, 2) + "\n");

  // Every finished trace is journalled (fsync'd), in completion order; the outputs are rebuilt from the journal,
  // in input order, once per id.
  const run = await runJournalled<SeedTrace, PipelineRecord>({
    items: traces,
    journal: join(opts.outputDir, JOURNAL_FILE),
    itemKey: (t) => t.id,
    recordKey: (r) => r.id,
    // processTrace returns a per-trace problem as a failed record; anything else it throws is fatal to the run.
    work: (trace) => processTrace(trace, { ...opts, signal: opts.signal }),
    succeeded: (r) => r.status === "completed",
    retryFailed: opts.retryFailed,
    concurrency: opts.workers,
    signal: opts.signal,
    meter: () => ({ usage: opts.provider.usage(), cost: opts.cost?.() ?? 0 }),
    onProgress: opts.onProgress,
  });
  const progress = run.progress;
  const interrupted = run.status === "interrupted";
  const outputs: string[] = [];
  if (!interrupted) {
    const ordered = traces.map((t) => run.records.get(t.id)).filter((r): r is PipelineRecord => r !== undefined);
    const jsonl = join(opts.outputDir, "openmementos.jsonl");
    const res = writeRecords(ordered, jsonl, { schema: opts.schema ?? "full" });
    outputs.push(res.path, res.failedPath);
    if (opts.parquet)
      outputs.push(
        writeRecords(ordered, join(opts.outputDir, "openmementos.parquet"), {
          schema: opts.schema ?? "full",
          failedPath: res.failedPath,
        }).path,
      );
  }
  writeManifest({
    status: interrupted ? "interrupted" : "finished",
    provider: opts.provider.name,
    heuristic: opts.provider.heuristic,
    models: opts.provider.models,
    schema: opts.schema ?? "full",
    selectedTraces: selected.length,
    total: progress.total,
    completed: progress.completed,
    failed: progress.failed,
    skippedLines,
    interrupted,
    usage: opts.provider.usage(),
    costUsd: opts.cost?.() ?? null,
    finishedAt: new Date().toISOString(),
  });
  return {
    ...progress,
    seedReport: seeds.report,
    outputs,
    interrupted,
    adopted: verdict === "adopted",
    selectedTraces: selected.length,
  };
}
