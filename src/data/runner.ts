import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { runJournalled, type JobProgress } from "../io/pool.js";
import { readRecords } from "./readers.js";
import { selectSeeds, type SeedOptions, type SeedReport } from "./seed.js";
import { processTrace, type PipelineOptions } from "./pipeline.js";
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
  /** Only the first N selected traces. */
  limit?: number;
  seed?: Omit<SeedOptions, "countTokens" | "source">;
  schema?: OutputSchema;
  /** Also write Parquet next to the JSONL. */
  parquet?: boolean;
  /** Process again the traces the journal holds as failed. */
  retryFailed?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: BuildProgress, last?: PipelineRecord) => void;
  /** Cost so far, when the provider counts it. */
  cost?: () => number;
}

export interface BuildSummary extends BuildProgress {
  seedReport: SeedReport;
  outputs: string[];
  interrupted: boolean;
}

/**
 * `memento data build`: select seeds from the input, run each through the pipeline with `workers` traces at a
 * time, journal every result, and write the OpenMementos outputs. Running the same command again resumes.
 */
export async function buildDataset(opts: BuildOptions): Promise<BuildSummary> {
  mkdirSync(opts.outputDir, { recursive: true });
  const tok = opts.tokenizer;
  const seeds = await selectSeeds(
    (async function* () {
      for await (const item of readRecords(opts.input)) yield item.record as Record<string, unknown>;
    })(),
    {
      ...opts.seed,
      countTokens: (t) => tok.count(t),
      source: basename(opts.input).replace(/\.(jsonl|parquet|json)$/i, ""),
    },
  );
  const traces: SeedTrace[] = opts.limit !== undefined ? seeds.traces.slice(0, opts.limit) : seeds.traces;
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
  writeFileAtomic(
    join(opts.outputDir, MANIFEST_FILE),
    JSON.stringify(
      {
        input: opts.input,
        provider: opts.provider.name,
        heuristic: opts.provider.heuristic,
        models: opts.provider.models,
        schema: opts.schema ?? "full",
        total: progress.total,
        completed: progress.completed,
        failed: progress.failed,
        interrupted,
        usage: opts.provider.usage(),
        costUsd: opts.cost?.() ?? null,
        finishedAt: new Date().toISOString(),
      },
      null,
      2,
    ) + "\n",
  );
  return { ...progress, seedReport: seeds.report, outputs, interrupted };
}
