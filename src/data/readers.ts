/**
 * Record readers for the data pipeline: JSONL and Parquet, streamed.
 *
 * - JSONL (`.jsonl`, `.ndjson`, `.json`, anything that is not Parquet): read line by line through `readline`, so
 *   memory stays constant whatever the file size. Blank lines are skipped. Every other line must hold one JSON
 *   object; a bad line is a `UserError` naming `FILE:LINE` or, in lenient mode, is skipped and reported through
 *   `onSkip` (and counted by `readAllRecords`).
 * - Parquet (detected by the `PAR1` magic, whatever the extension): the footer is read first, then one row group
 *   at a time is decoded (hyparquet reads the file through byte-range slices, not as a whole), so memory is
 *   bounded by the largest row group. INT64 values are converted to numbers when they are safe integers (else
 *   kept as bigint); null/absent values are dropped from the record.
 *
 * `index` is the 0-based position of the record in the file: the row number for Parquet, the number of
 * non-blank lines before it for JSONL (a skipped bad line still takes its index).
 */
import { createReadStream, openSync, readSync, closeSync } from "node:fs";
import { createInterface } from "node:readline";
import {
  type AsyncBuffer,
  asyncBufferFromFile,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
} from "hyparquet";
import { UserError } from "../errors.js";

export type RecordFormat = "jsonl" | "parquet";

export interface ReadIssue {
  file: string;
  /** 1-based line (JSONL) or 0-based row + 1 (Parquet). */
  line: number;
  message: string;
}

export interface ReadOptions {
  /** Force a format instead of sniffing the file. */
  format?: RecordFormat;
  /** Skip bad lines (calling `onSkip`) instead of throwing. Default false. */
  lenient?: boolean;
  onSkip?: (issue: ReadIssue) => void;
}

export interface ReadItem {
  record: Record<string, unknown>;
  /** 0-based position in the file (see the module comment). */
  index: number;
  /** 1-based line number for JSONL; row number + 1 for Parquet. */
  line: number;
}

const PARQUET_MAGIC = "PAR1";

function cannotRead(path: string, e: unknown): UserError {
  const code = (e as NodeJS.ErrnoException).code;
  return new UserError(`${path}: cannot read file${code ? ` (${code})` : ""}`);
}

/** Sniffs the format: Parquet when the file starts with `PAR1`, JSONL otherwise. Throws a UserError when unreadable. */
export function detectFormat(path: string): RecordFormat {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw cannotRead(path, e);
  }
  try {
    const buf = Buffer.alloc(4);
    const n = readSync(fd, buf, 0, 4, 0);
    return n === 4 && buf.toString("latin1") === PARQUET_MAGIC ? "parquet" : "jsonl";
  } catch (e) {
    throw cannotRead(path, e);
  } finally {
    closeSync(fd);
  }
}

/** Streams the records of a JSONL or Parquet file. */
export async function* readRecords(path: string, opts: ReadOptions = {}): AsyncGenerator<ReadItem> {
  const format = opts.format ?? detectFormat(path);
  if (format === "parquet") yield* readParquet(path);
  else yield* readJsonl(path, opts);
}

async function* readJsonl(path: string, opts: ReadOptions): AsyncGenerator<ReadItem> {
  const stream = createReadStream(path, { encoding: "utf8" });
  // Surface open errors (ENOENT, EISDIR) as a UserError rather than an unhandled stream error.
  const opened = new Promise<void>((resolve, reject) => {
    stream.once("ready", () => resolve());
    stream.once("error", (e) => reject(cannotRead(path, e)));
  });
  await opened;
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  let index = 0;
  try {
    for await (const raw of rl) {
      line++;
      // A UTF-8 byte-order mark on the first line is not part of the JSON.
      const text = line === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
      if (text.trim() === "") continue;
      const i = index++;
      let value: unknown;
      let problem: string | null = null;
      try {
        value = JSON.parse(text);
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          problem = `expected a JSON object, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`;
        }
      } catch (e) {
        problem = `invalid JSON (${(e as Error).message.replace(/\s+/g, " ")})`;
      }
      if (problem !== null) {
        const issue: ReadIssue = { file: path, line, message: problem };
        if (!opts.lenient) throw new UserError(`${path}:${line}: ${problem}`);
        opts.onSkip?.(issue);
        continue;
      }
      yield { record: value as Record<string, unknown>, index: i, line };
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw cannotRead(path, e);
  } finally {
    rl.close();
    stream.destroy();
  }
}

/** Converts Parquet values to plain JSON-like values: safe bigints to numbers, null/undefined fields dropped. */
export function normaliseParquetValue(v: unknown): unknown {
  if (typeof v === "bigint")
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(normaliseParquetValue);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, normaliseParquetValue);
  if (v !== null && typeof v === "object" && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = normaliseParquetValue(x);
    return out;
  }
  return v;
}

async function* readParquet(path: string): AsyncGenerator<ReadItem> {
  let file: AsyncBuffer;
  try {
    file = await asyncBufferFromFile(path);
  } catch (e) {
    throw cannotRead(path, e);
  }
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    throw new UserError(`${path}: invalid Parquet file (${(e as Error).message.replace(/\s+/g, " ")})`);
  }
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd });
    } catch (e) {
      throw new UserError(
        `${path}: cannot decode Parquet rows ${rowStart}..${rowEnd - 1} (${(e as Error).message.replace(/\s+/g, " ")})`,
      );
    }
    for (let k = 0; k < rows.length; k++) {
      const index = rowStart + k;
      yield { record: normaliseParquetValue(rows[k]) as Record<string, unknown>, index, line: index + 1 };
    }
    rowStart = rowEnd;
  }
}

export interface ReadAllResult {
  records: Record<string, unknown>[];
  skipped: ReadIssue[];
}

/** Reads a whole file into memory (for small files and tests). */
export async function readAllRecords(path: string, opts: ReadOptions = {}): Promise<ReadAllResult> {
  const skipped: ReadIssue[] = [];
  const records: Record<string, unknown>[] = [];
  const onSkip = (i: ReadIssue): void => {
    skipped.push(i);
    opts.onSkip?.(i);
  };
  for await (const item of readRecords(path, { ...opts, onSkip })) records.push(item.record);
  return { records, skipped };
}
