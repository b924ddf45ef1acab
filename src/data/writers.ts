/**
 * Output writers of the data pipeline: `PipelineRecord`s to JSONL and Parquet in the OpenMementos schema.
 *
 * Columns:
 *   default: problem, response, domain, source, difficulty
 *   full:    default + sentences (list<string>), blocks (list<list<int32>>, inclusive sentence ranges),
 *            block_summaries (list<string>)
 *   meta:    (unless `meta: false`) the pipeline metadata of the record, last column. In Parquet a UTF-8 string
 *            column holding JSON text; in JSONL a JSON object. Its fields: `id` (the record id, so outputs can be
 *            matched to seeds and failures), everything of `PipelineRecord.meta` verbatim (provider, heuristic,
 *            models, boundaryScores, segmentationObjective, blockTokens, mementoHistory, ...) and two derived
 *            conveniences: `rounds` (number of memento rounds per block) and `judgeScores` (per block, the judge
 *            score of every round). `rowToRecord` strips the derived fields again.
 * `difficulty` is written as an optional INT32 column when every value is an integer (or null), else as an
 * optional string column (numbers as their decimal text).
 *
 * Failed records (status "failed", or a "completed" record that lacks a field the schema needs) go to
 * `failed.jsonl` next to the output (one `{id, stage, reason, domain, source}` per line); it is always written,
 * empty when nothing failed, so a stale one from an earlier run never survives. Nothing is dropped silently.
 *
 * Every file is written atomically: to a temporary file in the same directory, fsync'd, then renamed over the
 * target (and the directory fsync'd where the platform allows).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import type { ColumnSource, SchemaElement } from "hyparquet-writer";
import { UserError } from "../errors.js";
import type { MementoHistory, PipelineRecord } from "./types.js";

export type OutputSchema = "default" | "full";
export type OutputFormat = "jsonl" | "parquet";

export const DEFAULT_COLUMNS = ["problem", "response", "domain", "source", "difficulty"] as const;
export const FULL_COLUMNS = [...DEFAULT_COLUMNS, "sentences", "blocks", "block_summaries"] as const;
export const FAILED_FILE = "failed.jsonl";

export type RecordMeta = NonNullable<PipelineRecord["meta"]>;

/** The `meta` column's content. */
export interface OutputMeta extends Partial<RecordMeta> {
  id: string;
  rounds?: number[];
  judgeScores?: number[][];
}

/** One output row (JSONL form: `meta` as an object). */
export interface OutputRow {
  problem: string;
  response: string;
  domain: string;
  source: string;
  difficulty: number | string | null;
  sentences?: string[];
  blocks?: [number, number][];
  block_summaries?: string[];
  meta?: OutputMeta;
}

export interface FailedRow {
  id: string;
  stage: string;
  reason: string;
  domain: string;
  source: string;
}

export interface WriteOptions {
  schema?: OutputSchema;
  /** Write the `meta` column (default true). */
  meta?: boolean;
  /** Default: from the extension (`.parquet` -> parquet, else jsonl). */
  format?: OutputFormat;
  /** Where failures go (default `failed.jsonl` in the output's directory). */
  failedPath?: string;
  /** Parquet rows per row group (default 1000). */
  rowGroupSize?: number;
}

export interface WriteResult {
  path: string;
  format: OutputFormat;
  written: number;
  failed: number;
  failedPath: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Atomic files
// ---------------------------------------------------------------------------------------------------------------

let tmpCounter = 0;

/**
 * A file written through a temporary sibling and renamed into place on `commit()`; `abort()` removes the
 * temporary. Writes are synchronous (simple and ordered; the pipeline's output is written once at the end).
 */
export class AtomicFile {
  readonly tmpPath: string;
  private fd: number | null;

  constructor(readonly path: string) {
    const dir = dirname(path);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw fsError(dir, "cannot create directory", e);
    }
    this.tmpPath = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.${tmpCounter++}.tmp`);
    try {
      this.fd = openSync(this.tmpPath, "wx");
    } catch (e) {
      throw fsError(path, "cannot write file", e);
    }
  }

  write(data: string | Uint8Array): void {
    if (this.fd === null) throw new Error("AtomicFile: write after commit/abort");
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
  }

  commit(): void {
    if (this.fd === null) throw new Error("AtomicFile: commit after commit/abort");
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
      renameSync(this.tmpPath, this.path);
    } catch (e) {
      this.abort();
      throw fsError(this.path, "cannot write file", e);
    }
    syncDir(dirname(this.path));
  }

  abort(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = null;
    }
    rmSync(this.tmpPath, { force: true });
  }
}

function fsError(path: string, what: string, e: unknown): UserError {
  const code = (e as NodeJS.ErrnoException).code;
  return new UserError(`${path}: ${what}${code ? ` (${code})` : ""}`);
}

function syncDir(dir: string): void {
  // Makes the rename durable; not supported everywhere (e.g. Windows), where it is skipped.
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/** Writes `data` to `path` atomically (temp file in the same directory, fsync, rename). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const f = new AtomicFile(path);
  try {
    f.write(data);
  } catch (e) {
    f.abort();
    throw e;
  }
  f.commit();
}

/** Writes values as JSONL atomically. */
export function writeJsonlAtomic(path: string, values: Iterable<unknown>): number {
  const f = new AtomicFile(path);
  let n = 0;
  try {
    for (const v of values) {
      f.write(JSON.stringify(v) + "\n");
      n++;
    }
  } catch (e) {
    f.abort();
    throw e;
  }
  f.commit();
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Records <-> rows
// ---------------------------------------------------------------------------------------------------------------

function derivedMeta(history: readonly MementoHistory[]): { rounds: number[]; judgeScores: number[][] } {
  return {
    rounds: history.map((h) => h.rounds.length),
    judgeScores: history.map((h) => h.rounds.map((r) => r.judgment.score)),
  };
}

/** Why a record cannot be written as a row of `schema`, or null when it can. */
export function rowProblem(rec: PipelineRecord, schema: OutputSchema = "default"): string | null {
  if (rec.status !== "completed") return rec.error?.message ?? "failed";
  if (typeof rec.response !== "string") return "completed record has no response";
  if (schema === "full") {
    for (const k of ["sentences", "blocks", "block_summaries"] as const) {
      if (!Array.isArray(rec[k])) return `completed record has no ${k} (needed by the full schema)`;
    }
  }
  return null;
}

/** The output row of a completed record (throws when `rowProblem` is not null). */
export function recordToRow(rec: PipelineRecord, options: Pick<WriteOptions, "schema" | "meta"> = {}): OutputRow {
  const schema = options.schema ?? "default";
  const problem = rowProblem(rec, schema);
  if (problem !== null) throw new Error(`recordToRow(${rec.id}): ${problem}`);
  const row: OutputRow = {
    problem: rec.problem,
    response: rec.response!,
    domain: rec.domain,
    source: rec.source,
    difficulty: rec.difficulty,
  };
  if (schema === "full") {
    row.sentences = rec.sentences;
    row.blocks = rec.blocks;
    row.block_summaries = rec.block_summaries;
  }
  if (options.meta ?? true) {
    const meta: OutputMeta = { id: rec.id };
    if (rec.meta) Object.assign(meta, rec.meta, derivedMeta(rec.meta.mementoHistory ?? []));
    row.meta = meta;
  }
  return row;
}

/**
 * Rebuilds a completed `PipelineRecord` from an output row (JSONL object or Parquet row; `meta` as an object or
 * JSON text). The id comes from `meta.id`, else `fallbackId`.
 */
export function rowToRecord(row: Record<string, unknown>, fallbackId = ""): PipelineRecord {
  const meta = parseMeta(row.meta);
  const rec: PipelineRecord = {
    id: typeof meta?.id === "string" ? meta.id : fallbackId,
    status: "completed",
    problem: String(row.problem ?? ""),
    response: String(row.response ?? ""),
    domain: String(row.domain ?? ""),
    source: String(row.source ?? ""),
    difficulty: typeof row.difficulty === "number" || typeof row.difficulty === "string" ? row.difficulty : null,
  };
  if (Array.isArray(row.sentences)) rec.sentences = row.sentences as string[];
  if (Array.isArray(row.blocks)) rec.blocks = row.blocks as [number, number][];
  if (Array.isArray(row.block_summaries)) rec.block_summaries = row.block_summaries as string[];
  if (meta) {
    const { id: _id, rounds: _rounds, judgeScores: _scores, ...rest } = meta;
    if (Object.keys(rest).length > 0) rec.meta = rest as RecordMeta;
  }
  return rec;
}

/** `meta` as an object: accepts an object or JSON text; null when absent or not an object. */
export function parseMeta(v: unknown): OutputMeta | null {
  let m = v;
  if (typeof v === "string") {
    try {
      m = JSON.parse(v);
    } catch {
      return null;
    }
  }
  return m !== null && typeof m === "object" && !Array.isArray(m) ? (m as OutputMeta) : null;
}

export function failedRow(rec: PipelineRecord, reason: string): FailedRow {
  return {
    id: rec.id,
    stage: rec.error?.stage ?? (rec.status === "failed" ? "unknown" : "write"),
    reason,
    domain: rec.domain,
    source: rec.source,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Parquet
// ---------------------------------------------------------------------------------------------------------------

const STRING: Omit<SchemaElement, "name"> = { type: "BYTE_ARRAY", converted_type: "UTF8" };

function listOf(name: string, element: SchemaElement[]): SchemaElement[] {
  return [
    { name, repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 },
    { name: "list", repetition_type: "REPEATED", num_children: 1 },
    ...element,
  ];
}

/** The Parquet schema (flattened SchemaElement list) and column data of `rows`. */
export function parquetColumns(
  rows: readonly OutputRow[],
  options: Pick<WriteOptions, "schema" | "meta"> = {},
): { schema: SchemaElement[]; columnData: ColumnSource[] } {
  const full = (options.schema ?? "default") === "full";
  const withMeta = options.meta ?? true;
  const intDifficulty = rows.every(
    (r) =>
      r.difficulty === null ||
      (typeof r.difficulty === "number" && Number.isInteger(r.difficulty) && Math.abs(r.difficulty) < 2 ** 31),
  );
  const schema: SchemaElement[] = [{ name: "root", num_children: 0 }];
  const columnData: ColumnSource[] = [];
  const add = (elements: SchemaElement[], data: unknown[]): void => {
    schema.push(...elements);
    columnData.push({ name: elements[0].name, data: data as ColumnSource["data"] });
  };
  for (const k of ["problem", "response", "domain", "source"] as const)
    add(
      [{ name: k, ...STRING, repetition_type: "REQUIRED" }],
      rows.map((r) => r[k]),
    );
  add(
    [
      intDifficulty
        ? { name: "difficulty", type: "INT32", repetition_type: "OPTIONAL" }
        : { name: "difficulty", ...STRING, repetition_type: "OPTIONAL" },
    ],
    rows.map((r) => (r.difficulty === null ? null : intDifficulty ? r.difficulty : String(r.difficulty))),
  );
  if (full) {
    add(
      listOf("sentences", [{ name: "element", ...STRING, repetition_type: "REQUIRED" }]),
      rows.map((r) => r.sentences ?? null),
    );
    add(
      listOf("blocks", [
        { name: "element", repetition_type: "REQUIRED", converted_type: "LIST", num_children: 1 },
        { name: "list", repetition_type: "REPEATED", num_children: 1 },
        { name: "element", type: "INT32", repetition_type: "REQUIRED" },
      ]),
      rows.map((r) => r.blocks ?? null),
    );
    add(
      listOf("block_summaries", [{ name: "element", ...STRING, repetition_type: "REQUIRED" }]),
      rows.map((r) => r.block_summaries ?? null),
    );
  }
  if (withMeta)
    add(
      [{ name: "meta", ...STRING, repetition_type: "OPTIONAL" }],
      rows.map((r) => (r.meta ? JSON.stringify(r.meta) : null)),
    );
  schema[0].num_children = columnData.length;
  return { schema, columnData };
}

/** Encodes rows as a Parquet file in memory. */
export function encodeParquet(
  rows: readonly OutputRow[],
  options: Pick<WriteOptions, "schema" | "meta" | "rowGroupSize"> = {},
): Uint8Array {
  const { schema, columnData } = parquetColumns(rows, options);
  const buf = parquetWriteBuffer({
    columnData,
    schema,
    rowGroupSize: options.rowGroupSize ?? 1000,
    kvMetadata: [{ key: "memento.schema", value: options.schema ?? "default" }],
    createdBy: "memento data pipeline",
  });
  return new Uint8Array(buf);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing records
// ---------------------------------------------------------------------------------------------------------------

export function formatFromPath(path: string): OutputFormat {
  return extname(path).toLowerCase() === ".parquet" ? "parquet" : "jsonl";
}

/**
 * Writes the completed records to `path` (JSONL or Parquet) and the failed ones to `failed.jsonl` beside it,
 * both atomically. Records keep their input order.
 */
export function writeRecords(
  records: readonly PipelineRecord[],
  path: string,
  options: WriteOptions = {},
): WriteResult {
  const schema = options.schema ?? "default";
  const format = options.format ?? formatFromPath(path);
  const failedPath = options.failedPath ?? join(dirname(path), FAILED_FILE);
  if (failedPath === path) throw new UserError(`${path}: the output and the failures file must differ`);
  const rows: OutputRow[] = [];
  const failed: FailedRow[] = [];
  for (const rec of records) {
    const problem = rowProblem(rec, schema);
    if (problem !== null) failed.push(failedRow(rec, problem.replace(/\s+/g, " ")));
    else rows.push(recordToRow(rec, options));
  }
  if (format === "parquet") writeFileAtomic(path, encodeParquet(rows, options));
  else writeJsonlAtomic(path, rows);
  writeJsonlAtomic(failedPath, failed);
  return { path, format, written: rows.length, failed: failed.length, failedPath };
}
