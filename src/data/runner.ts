import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { JsonlJournal } from "../io/journal.js";
import { readRecords } from "./readers.js";
import { selectSeeds, type SeedOptions, type SeedReport } from "./seed.js";
import { processTrace, type PipelineOptions } from "./pipeline.js";
import { writeFileAtomic, writeRecords, type OutputSchema } from "./writers.js";
import type { PipelineRecord, Provider, SeedTrace, Usage } from "./types.js";

/** Files a build writes in its output directory. */
export const JOURNAL_FILE = "journal.jsonl";
export const MANIFEST_FILE = "manifest.json";
export const SEED_REPORT_FILE = "seed-report.json";

export interface BuildProgress {
  total: number;
  done: number;
  completed: number;
  failed: number;
  /** Traces already in the journal when this run started. */
  resumed: number;
  usage: Usage;
  cost: number;
}

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
    { ...opts.seed, countTokens: (t) => tok.count(t), source: basename(opts.input).replace(/\.(jsonl|parquet|json)$/i, "") },
  );
  const traces: SeedTrace[] = opts.limit !== undefined ? seeds.traces.slice(0, opts.limit) : seeds.traces;
  writeFileAtomic(join(opts.outputDir, SEED_REPORT_FILE), JSON.stringify(seeds.report, null, 2) + "\n");

  // Every finished trace is journalled (fsync'd); the outputs are rebuilt from it, in input order, once per id.
  const journal = new JsonlJournal<PipelineRecord>(join(opts.outputDir, JOURNAL_FILE), (r) => r.id);
  const isDone = (t: SeedTrace) => {
    const r = journal.records.get(t.id);
    return r !== undefined && (r.status === "completed" || !opts.retryFailed);
  };
  const todo = traces.filter((t) => !isDone(t));
  const progress: BuildProgress = {
    total: traces.length,
    done: traces.length - todo.length,
    completed: 0,
    failed: 0,
    resumed: traces.length - todo.length,
    usage: opts.provider.usage(),
    cost: opts.cost?.() ?? 0,
  };
  const count = () => {
    progress.completed = 0;
    progress.failed = 0;
    for (const t of traces) {
      const r = journal.records.get(t.id);
      if (r?.status === "completed") progress.completed++;
      else if (r?.status === "failed") progress.failed++;
    }
  };
  count();
  opts.onProgress?.({ ...progress });

  // A fixed pool of workers pulling from a shared cursor: at most `workers` traces in flight, results journalled
  // in completion order (the outputs are re-sorted into input order at the end).
  let cursor = 0;
  const workers = Math.max(1, Math.floor(opts.workers ?? 4));
  const worker = async () => {
    while (cursor < todo.length && !opts.signal?.aborted) {
      const trace = todo[cursor++];
      let rec: PipelineRecord;
      try {
        rec = await processTrace(trace, { ...opts, signal: opts.signal });
      } catch (e) {
        if (opts.signal?.aborted) return; // interrupted: leave it for the next run
        throw e;
      }
      journal.append(rec);
      progress.done++;
      if (rec.status === "completed") progress.completed++;
      else progress.failed++;
      progress.usage = opts.provider.usage();
      progress.cost = opts.cost?.() ?? 0;
      opts.onProgress?.({ ...progress }, rec);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(workers, Math.max(1, todo.length)) }, worker));
  } finally {
    journal.close();
  }

  const interrupted = opts.signal?.aborted === true && progress.done < progress.total;
  const outputs: string[] = [];
  if (!interrupted) {
    const ordered = traces.map((t) => journal.records.get(t.id)).filter((r): r is PipelineRecord => r !== undefined);
    const jsonl = join(opts.outputDir, "openmementos.jsonl");
    const res = writeRecords(ordered, jsonl, { schema: opts.schema ?? "full" });
    outputs.push(res.path, res.failedPath);
    if (opts.parquet) outputs.push(writeRecords(ordered, join(opts.outputDir, "openmementos.parquet"), { schema: opts.schema ?? "full", failedPath: res.failedPath }).path);
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
