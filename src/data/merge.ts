/**
 * `memento data merge` as a library call: the N shard directories of `memento data build --shard K/N` into one
 * OpenMementos dataset, equal to one unsharded build's. The shard set is checked first (src/data/merge-check.ts:
 * finished, one build, 1/N..N/N each once); this module reads the records and writes the merged directory.
 *
 * Policy:
 * 1. A shard's traces are the ids its outputs list (`openmementos.jsonl` rows' `meta.id` and `failed.jsonl`),
 *    each taken whole from its journal, so the merge does not depend on the `--schema` the shard was written
 *    with. Every id must hash into its shard (src/data/shard.ts), once, and their number must equal the
 *    manifest's `total`; hence each trace is in the merged set exactly once.
 * 2. Order: by id (UTF-16 code-unit order). The input order across shards is not recorded anywhere, and sorting
 *    makes the merged files the same whatever N was.
 * 3. Outputs, each written atomically with the build's writers: `openmementos.jsonl` (and `.parquet` with
 *    `parquet`), `failed.jsonl`, the first shard's `seed-report.json` (every shard selects seeds from the whole
 *    input, so they agree), `journal.jsonl` (the merged records: the directory then resumes as a finished
 *    unsharded build, e.g. with `--retry-failed`), `stats.json` and `stats.html` over the merged rows, and
 *    `manifest.json`: the unsharded build's identity, `status: "finished"`, summed counts and usage, and
 *    `mergedFrom` (each shard's directory, K/N and counts).
 * 4. The output directory is new, empty, or an earlier merge (overwritten); never a shard or another build.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { readRecords } from "./readers.js";
import { JOURNAL_FILE, MANIFEST_FILE, SEED_REPORT_FILE } from "./runner.js";
import { checkShardSet, type ShardBuild } from "./merge-check.js";
import { formatShard, shardOfId } from "./shard.js";
import { computeStats, renderStatsHtml, type DatasetStats } from "./stats.js";
import type { PipelineRecord } from "./types.js";
import {
  FAILED_FILE,
  recordToRow,
  rowProblem,
  writeFileAtomic,
  writeJsonlAtomic,
  writeRecords,
  type OutputSchema,
} from "./writers.js";

/** The dataset file a build (and a merge) writes, in its output directory. */
export const DATASET_JSONL_FILE = "openmementos.jsonl";
export const DATASET_PARQUET_FILE = "openmementos.parquet";
/** The merged set's statistics (src/data/stats.ts), JSON and the self-contained HTML figure. */
export const MERGED_STATS_FILE = "stats.json";
export const MERGED_STATS_HTML_FILE = "stats.html";

export interface MergeOptions {
  /** The shard directories, in any order. */
  shardDirs: readonly string[];
  outputDir: string;
  /** Columns of the merged outputs (default "full", as `data build`). */
  schema?: OutputSchema;
  /** Also write `openmementos.parquet`. */
  parquet?: boolean;
}

export interface MergedShard {
  dir: string;
  shard: string;
  total: number;
  completed: number;
  failed: number;
}

export interface MergeSummary {
  shards: MergedShard[];
  selectedTraces: number;
  total: number;
  completed: number;
  failed: number;
  stats: DatasetStats;
  outputs: string[];
}

/** Every record of a JSONL file, by its `id` field (the last line per id wins, as in io/journal.ts). */
async function readJournal(path: string): Promise<Map<string, PipelineRecord>> {
  if (!existsSync(path)) throw new UserError(`${path}: missing; the shard's journal is needed to merge it`);
  const byId = new Map<string, PipelineRecord>();
  for await (const { record } of readRecords(path, { format: "jsonl" })) {
    const rec = record as unknown as PipelineRecord;
    if (typeof rec.id === "string") byId.set(rec.id, rec);
  }
  return byId;
}

/** The trace ids a finished shard's outputs list: dataset rows' `meta.id`, then `failed.jsonl` ids. */
async function outputIds(dir: string): Promise<string[]> {
  const ids: string[] = [];
  for (const [file, idOf] of [
    [DATASET_JSONL_FILE, (r: Record<string, unknown>) => (r.meta as { id?: unknown } | undefined)?.id],
    [FAILED_FILE, (r: Record<string, unknown>) => r.id],
  ] as const) {
    const path = join(dir, file);
    if (!existsSync(path)) throw new UserError(`${path}: missing; is the shard's build finished?`);
    for await (const { record, line } of readRecords(path, { format: "jsonl" })) {
      const id = idOf(record);
      if (typeof id !== "string") throw new UserError(`${path}:${line}: a row without a trace id`);
      ids.push(id);
    }
  }
  return ids;
}

/** A shard's records (policy 1), checked: each id in its shard, once, as many as the manifest says. */
async function loadShardRecords(build: ShardBuild): Promise<PipelineRecord[]> {
  const journal = await readJournal(join(build.dir, JOURNAL_FILE));
  const seen = new Set<string>();
  const records: PipelineRecord[] = [];
  const shard = formatShard(build.spec);
  for (const id of await outputIds(build.dir)) {
    const home = shardOfId(id, build.spec.count);
    if (home !== build.spec.index)
      throw new UserError(`${build.dir}: trace ${id} belongs to shard ${home}/${build.spec.count}, not ${shard}`);
    if (seen.has(id)) throw new UserError(`${build.dir}: trace ${id} appears twice in its outputs`);
    seen.add(id);
    const rec = journal.get(id);
    if (!rec) throw new UserError(`${build.dir}: trace ${id} is in its outputs but not in ${JOURNAL_FILE}`);
    records.push(rec);
  }
  if (records.length !== build.totalTraces)
    throw new UserError(
      `${build.dir}: its outputs hold ${records.length} traces but its manifest says ${build.totalTraces}`,
    );
  return records;
}

/** Refuses an output directory that is a shard or holds anything but an earlier merge (policy 4). */
function checkMergeOutputDir(outputDir: string, builds: readonly ShardBuild[]): void {
  const target = resolve(outputDir);
  const shard = builds.find((b) => resolve(b.dir) === target);
  if (shard) throw new UserError(`--output-dir ${outputDir} is one of the shards being merged`);
  if (!existsSync(outputDir) || readdirSync(outputDir).length === 0) return;
  const manifestPath = join(outputDir, MANIFEST_FILE);
  let earlierMerge = false;
  try {
    earlierMerge = Array.isArray(JSON.parse(readFileSync(manifestPath, "utf8")).mergedFrom);
  } catch {
    earlierMerge = false;
  }
  if (!earlierMerge)
    throw new UserError(
      `--output-dir ${outputDir} is not empty and holds no earlier merge; merge into a new directory`,
    );
}

const byId = (a: PipelineRecord, b: PipelineRecord): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function sumUsage(builds: readonly ShardBuild[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const b of builds) {
    const usage = b.manifest.usage as Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(usage ?? {})) if (typeof v === "number") sum[k] = (sum[k] ?? 0) + v;
  }
  return sum;
}

function sumCost(builds: readonly ShardBuild[]): number | null {
  const costs = builds.map((b) => b.manifest.costUsd);
  return costs.every((c) => typeof c === "number") ? (costs as number[]).reduce((a, c) => a + c, 0) : null;
}

/** Writes the merged dataset, failures, journal and seed report; returns the dataset paths written. */
function writeMergedDataset(records: readonly PipelineRecord[], opts: MergeOptions, first: ShardBuild): string[] {
  const schema = opts.schema ?? "full";
  const dir = opts.outputDir;
  const jsonl = writeRecords(records, join(dir, DATASET_JSONL_FILE), { schema });
  const outputs = [jsonl.path, jsonl.failedPath];
  const parquetPath = join(dir, DATASET_PARQUET_FILE);
  if (opts.parquet) outputs.push(writeRecords(records, parquetPath, { schema, failedPath: jsonl.failedPath }).path);
  else rmSync(parquetPath, { force: true }); // an earlier merge's, which `data stats` would read instead
  writeJsonlAtomic(join(dir, JOURNAL_FILE), records);
  const seedReport = join(first.dir, SEED_REPORT_FILE);
  if (existsSync(seedReport)) writeFileAtomic(join(dir, SEED_REPORT_FILE), readFileSync(seedReport));
  return outputs;
}

/** `memento data merge`: checks the shards, merges their records (policy 1-2) and writes the outputs (policy 3). */
export async function mergeShards(opts: MergeOptions): Promise<MergeSummary> {
  const builds = checkShardSet(opts.shardDirs);
  checkMergeOutputDir(opts.outputDir, builds);
  const perShard: PipelineRecord[][] = [];
  for (const b of builds) perShard.push(await loadShardRecords(b));
  const records = perShard.flat().sort(byId);
  // Each selected trace hashes into exactly one shard, so the shards together must hold all of them.
  if (records.length !== builds[0].selectedTraces)
    throw new UserError(
      `the shards hold ${records.length} traces but their build selected ${builds[0].selectedTraces}`,
    );
  const shards: MergedShard[] = builds.map((b, i) => {
    const completed = perShard[i].filter((r) => r.status === "completed").length;
    return {
      dir: b.dir,
      shard: formatShard(b.spec),
      total: b.totalTraces,
      completed,
      failed: b.totalTraces - completed,
    };
  });
  const first = builds[0];
  const outputs = writeMergedDataset(records, opts, first);
  const jsonlPath = outputs[0];
  // The rows `data stats` would read from the merged file, without reading it back.
  const schema = opts.schema ?? "full";
  const rows = records.filter((r) => rowProblem(r, schema) === null).map((r) => recordToRow(r, { schema }));
  const { stats, values } = computeStats(rows as unknown as Record<string, unknown>[]);
  stats.files = [jsonlPath];
  writeFileAtomic(join(opts.outputDir, MERGED_STATS_FILE), JSON.stringify(stats, null, 2) + "\n");
  writeFileAtomic(join(opts.outputDir, MERGED_STATS_HTML_FILE), renderStatsHtml(stats, values));
  outputs.push(join(opts.outputDir, MERGED_STATS_FILE), join(opts.outputDir, MERGED_STATS_HTML_FILE));
  const completed = shards.reduce((a, s) => a + s.completed, 0);
  const summary: MergeSummary = {
    shards,
    selectedTraces: first.selectedTraces,
    total: records.length,
    completed,
    failed: records.length - completed,
    stats,
    outputs,
  };
  const m = first.manifest;
  const manifest = {
    inputPath: m.inputPath,
    ...first.identity,
    status: "finished",
    provider: m.provider,
    heuristic: m.heuristic,
    models: m.models,
    schema,
    skippedLines: m.skippedLines,
    selectedTraces: summary.selectedTraces,
    total: summary.total,
    completed: summary.completed,
    failed: summary.failed,
    usage: sumUsage(builds),
    costUsd: sumCost(builds),
    mergedFrom: shards,
    mergedAt: new Date().toISOString(),
  };
  writeFileAtomic(join(opts.outputDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");
  outputs.push(join(opts.outputDir, MANIFEST_FILE));
  return summary;
}
