/**
 * SFT training examples for Memento models: chat rendering, labels, the two stages' attention patterns,
 * batching/packing, and the export for GPU trainers (`memento train export`).
 *
 * CHAT RENDERING (the same for the Qwen3 tokenizer and the toy character tokenizer; no system prompt):
 *
 *   <|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>
 *
 * The prompt part is everything up to and including `<|im_start|>assistant\n`; `prompt_length` is its number of
 * tokens (checked to be a prefix of the whole example's tokens). The response is the Memento response
 * `<think>\n<|block_start|>...<|block_end|>\n<|summary_start|>...<|summary_end|>\n...</think>\n\n{answer}`.
 *
 * LABELS: aligned with the ids (Hugging Face convention: `labels[i] = input_ids[i]`, the model shifts them
 * internally, so token i is predicted from positions < i); -100 on the prompt tokens; the loss covers every
 * assistant token, the Memento markers and the closing `<|im_end|>` included.
 *
 * ATTENTION. Stage 1: causal. Stage 2: memento attention, i.e. the block tracker (src/masking/tracker.ts) run
 * over the example with keepLastNBlocks 0, requireAssistantSection true, maskDelimiters false,
 * compactOnSummaryEnd true (the defaults of STAGE2_MASKING): once a block's memento is closed by
 * `<|summary_end|>` at position t, the block's content (strictly between its `<|block_start|>` and
 * `<|block_end|>`) is invisible to every query after t; its delimiters and its memento stay visible.
 *
 * EXPORT FORMAT (one JSON object per line, or one Parquet row with the same columns as list<int32>):
 *
 *   input_ids              int[n]   token ids of the rendered example
 *   labels                 int[n]   = input_ids, with -100 on the first prompt_length positions (unshifted)
 *   prompt_length          int      number of prompt tokens
 *   memento_visible_until  int[n]   per KEY k: the position of the token whose processing evicts k (that token
 *                                   still sees k); -1 = never evicted
 *   view_at                int[n]   per QUERY q: q itself, except for mementos recomputed in restart mode
 *                                   (not used by the default export), where it is the eviction trigger + 1
 *
 * Stage-2 mask rule, exactly: query q may attend to key k iff
 *
 *   k <= q  and  view_at[q] <= VU[k],   where VU[k] = visible_until[k] if it is >= 0, else a large sentinel
 *
 * In PyTorch, with int64 tensors `vu` and `va` of one example (n tokens):
 *
 *   vu = torch.where(vu < 0, torch.iinfo(torch.int32).max, vu)
 *   q = torch.arange(n)[:, None]; k = torch.arange(n)[None, :]
 *   allowed = (k <= q) & (va[:, None] <= vu[None, :])          # bool [n, n], True = may attend
 *   attn_bias = torch.zeros(n, n).masked_fill(~allowed, float("-inf"))
 *
 * Position ids stay 0..n-1 (RoPE uses the original positions; eviction only hides keys). Stage 1 ignores the
 * two mask columns (plain causal). Examples longer than `maxTokens` are reported and skipped, never truncated.
 */
import { UserError } from "../errors.js";
import { parseOpenMementosRow, rowToResponse } from "../format/openmementos.js";
import type { SpecialTokenIds } from "../format/tokenizer.js";
import { IM_END, IM_START } from "../format/tokens.js";
import { validateResponse } from "../format/validate.js";
import { DEFAULT_MASKING, trackerIdsOf, type MaskingConfig, type TrackerTokenIds } from "../masking/config.js";
import { type CompactAttentionPattern, NEVER, causalPattern, mementoPattern } from "../masking/masks.js";
import { readRecords } from "../data/readers.js";
import { AtomicFile, writeFileAtomic } from "../data/writers.js";
import { parquetWriteBuffer } from "hyparquet-writer";
import type { ColumnSource, SchemaElement } from "hyparquet-writer";
import { extname } from "node:path";

/** Label value that the loss ignores (PyTorch's CrossEntropyLoss default). */
export const IGNORE_INDEX = -100;

/** What SFT needs of a tokenizer: MementoTokenizer (Qwen3) and CharTokenizer both fit. */
export interface SftTokenizer {
  encode(text: string): number[];
  readonly specialTokens: Readonly<SpecialTokenIds>;
}

export interface SftExample {
  ids: Int32Array;
  /** `ids` with IGNORE_INDEX on the prompt positions (unshifted). */
  labels: Int32Array;
  promptLength: number;
}

/** The prompt part of the chat (ends with the assistant header). */
export function renderSftPrompt(prompt: string): string {
  return `${IM_START}user\n${prompt}${IM_END}\n${IM_START}assistant\n`;
}

/** The whole example's text. */
export function renderSftText(prompt: string, response: string): string {
  return `${renderSftPrompt(prompt)}${response}${IM_END}`;
}

/** Tokenises one (prompt, response) pair into an example with labels. */
export function buildSftExample(tokenizer: SftTokenizer, prompt: string, response: string): SftExample {
  const promptIds = tokenizer.encode(renderSftPrompt(prompt));
  const all = tokenizer.encode(renderSftText(prompt, response));
  for (let i = 0; i < promptIds.length; i++) {
    if (all[i] !== promptIds[i]) {
      throw new UserError(
        "sft: the prompt's tokens are not a prefix of the example's tokens (does the response start with text that merges with the assistant header?)",
      );
    }
  }
  const ids = Int32Array.from(all);
  const labels = Int32Array.from(all);
  labels.fill(IGNORE_INDEX, 0, promptIds.length);
  return { ids, labels, promptLength: promptIds.length };
}

/** The tracker ids of a tokenizer (moved to src/masking/config.ts; re-exported for callers here). */
export { trackerIdsOf };

/** Stage-2 masking: evict every completed block, only inside the assistant section. */
export const STAGE2_MASKING: Readonly<MaskingConfig> = Object.freeze({
  ...DEFAULT_MASKING,
  keepLastNBlocks: 0,
  requireAssistantSection: true,
});

export type SftStage = 1 | 2;

/** The attention pattern of an example for a stage (Stage 2 with STAGE2_MASKING unless `masking` overrides). */
export function stagePattern(
  example: Pick<SftExample, "ids" | "promptLength">,
  stage: SftStage,
  ids: TrackerTokenIds,
  masking: Partial<MaskingConfig> = {},
): CompactAttentionPattern {
  if (stage === 1) return causalPattern(example.ids.length);
  return mementoPattern(example.ids, example.promptLength, ids, { ...STAGE2_MASKING, ...masking });
}

// ---------------------------------------------------------------------------------------------------------------
// Batching and packing
// ---------------------------------------------------------------------------------------------------------------

/** Indices of `examples` sorted by length (ascending; stable). */
export function sortByLength(examples: readonly Pick<SftExample, "ids">[]): number[] {
  return examples.map((_, i) => i).sort((a, b) => examples[a].ids.length - examples[b].ids.length || a - b);
}

/**
 * Splits example indices into batches of at most `batchSize` examples of similar length (sorted by length, then
 * cut), optionally with the batch order shuffled by `shuffle(i)` (a [0, 1) generator). Length-sorting keeps
 * padding small.
 */
export function lengthBatches(
  examples: readonly Pick<SftExample, "ids">[],
  batchSize: number,
  random?: () => number,
): number[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UserError(`sft: batch size must be a positive integer, got ${batchSize}`);
  const order = sortByLength(examples);
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
  if (random) {
    for (let i = batches.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [batches[i], batches[j]] = [batches[j], batches[i]];
    }
  }
  return batches;
}

/** A padded batch, row-major [rows, length]. */
export interface PaddedBatch {
  rows: number;
  length: number;
  ids: Int32Array;
  /** IGNORE_INDEX on prompt and padding positions. */
  labels: Int32Array;
  /** Logical (RoPE) positions; 0 on padding. */
  positions: Int32Array;
  /** Real tokens per row. */
  lengths: Int32Array;
  /** Per row: visible-until of each key (NEVER on padding and never-evicted keys). */
  visibleUntil: Int32Array;
  /** Per row: view-at of each query (the position itself on padding). */
  viewAt: Int32Array;
}

export interface PadOptions {
  /** Pad id (the tokenizer's `<|endoftext|>`). */
  padId: number;
  /** Pad every row to this length (default: the longest example). Longer examples are an error. */
  length?: number;
  /** One pattern per example (default: causal). */
  patterns?: readonly CompactAttentionPattern[];
}

/**
 * Right-pads examples into one batch. Padding positions carry label IGNORE_INDEX; as queries they see nothing
 * useful and as keys they come after every real token, so causal/Stage-2 rules already hide them from real queries.
 */
export function padBatch(examples: readonly SftExample[], opts: PadOptions): PaddedBatch {
  const longest = examples.reduce((m, e) => Math.max(m, e.ids.length), 0);
  const length = opts.length ?? longest;
  if (longest > length)
    throw new UserError(`sft: an example has ${longest} tokens, more than the batch length ${length}`);
  const rows = examples.length;
  const ids = new Int32Array(rows * length).fill(opts.padId);
  const labels = new Int32Array(rows * length).fill(IGNORE_INDEX);
  const positions = new Int32Array(rows * length);
  const lengths = new Int32Array(rows);
  const visibleUntil = new Int32Array(rows * length).fill(NEVER);
  const viewAt = new Int32Array(rows * length);
  examples.forEach((e, r) => {
    const n = e.ids.length;
    const off = r * length;
    ids.set(e.ids, off);
    labels.set(e.labels, off);
    lengths[r] = n;
    const p = opts.patterns?.[r];
    if (p && p.length !== n) throw new UserError(`sft: pattern ${r} has length ${p.length}, example has ${n}`);
    for (let i = 0; i < length; i++) {
      positions[off + i] = i < n ? i : 0;
      viewAt[off + i] = p && i < n ? p.viewAt[i] : i;
      if (p && i < n) visibleUntil[off + i] = p.visibleUntil[i];
    }
  });
  return { rows, length, ids, labels, positions, lengths, visibleUntil, viewAt };
}

/** Several examples concatenated into one row of at most `length` tokens. */
export interface PackedRow {
  ids: Int32Array;
  labels: Int32Array;
  /** Positions restart at 0 for every example. */
  positions: Int32Array;
  /** Start offset of each example in the row, then the row's used length. */
  offsets: number[];
  /** Which examples (indices into the input) the row holds. */
  members: number[];
  /** The combined pattern: block-diagonal (no attention across examples), each block the example's own pattern. */
  pattern: CompactAttentionPattern;
}

/**
 * First-fit-decreasing packing of examples into rows of at most `length` tokens. The packed compact pattern keeps
 * examples apart: a key k of an example ending at e (exclusive) gets visibleUntil = min(own, e - 1), so queries of
 * later examples (view_at >= e) never see it; within an example the example's own pattern applies (offsets
 * shifted). Rows are padded by the caller (padBatch with `patterns: rows.map(r => r.pattern)`).
 */
export function packExamples(
  examples: readonly SftExample[],
  length: number,
  patterns?: readonly CompactAttentionPattern[],
): PackedRow[] {
  const order = examples.map((_, i) => i).sort((a, b) => examples[b].ids.length - examples[a].ids.length || a - b);
  const bins: { used: number; members: number[] }[] = [];
  for (const i of order) {
    const n = examples[i].ids.length;
    if (n > length) throw new UserError(`sft: example ${i} has ${n} tokens, more than the row length ${length}`);
    const bin = bins.find((b) => b.used + n <= length);
    if (bin) {
      bin.members.push(i);
      bin.used += n;
    } else bins.push({ used: n, members: [i] });
  }
  return bins.map((bin) => {
    const members = [...bin.members].sort((a, b) => a - b);
    const total = members.reduce((s, i) => s + examples[i].ids.length, 0);
    const ids = new Int32Array(total);
    const labels = new Int32Array(total);
    const positions = new Int32Array(total);
    const visibleUntil = new Int32Array(total);
    const viewAt = new Int32Array(total);
    const offsets: number[] = [];
    let off = 0;
    for (const i of members) {
      const e = examples[i];
      const n = e.ids.length;
      const p = patterns?.[i] ?? causalPattern(n);
      if (p.length !== n) throw new UserError(`sft: pattern ${i} has length ${p.length}, example has ${n}`);
      offsets.push(off);
      ids.set(e.ids, off);
      labels.set(e.labels, off);
      const end = off + n;
      for (let t = 0; t < n; t++) {
        positions[off + t] = t;
        const vu = p.visibleUntil[t];
        visibleUntil[off + t] = Math.min(vu === NEVER ? NEVER : vu + off, end - 1);
        viewAt[off + t] = p.viewAt[t] + off;
      }
      off = end;
    }
    offsets.push(off);
    return { ids, labels, positions, offsets, members, pattern: { length: total, visibleUntil, viewAt } };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Export for GPU trainers
// ---------------------------------------------------------------------------------------------------------------

export interface ExportRecord {
  input_ids: number[];
  labels: number[];
  prompt_length: number;
  memento_visible_until: number[];
  view_at: number[];
}

/** The export record of an example and its Stage-2 pattern (NEVER written as -1). */
export function exportRecord(example: SftExample, pattern: CompactAttentionPattern): ExportRecord {
  return {
    input_ids: Array.from(example.ids),
    labels: Array.from(example.labels),
    prompt_length: example.promptLength,
    memento_visible_until: Array.from(pattern.visibleUntil, (v) => (v === NEVER ? -1 : v)),
    view_at: Array.from(pattern.viewAt),
  };
}

/** Dense mask (row-major, 1 = may attend) rebuilt from an export record with the documented rule. */
export function maskFromExport(rec: Pick<ExportRecord, "memento_visible_until" | "view_at">): Uint8Array {
  const n = rec.view_at.length;
  const out = new Uint8Array(n * n);
  const big = 2 ** 31 - 1;
  for (let q = 0; q < n; q++) {
    for (let k = 0; k <= q; k++) {
      const vu = rec.memento_visible_until[k] < 0 ? big : rec.memento_visible_until[k];
      if (rec.view_at[q] <= vu) out[q * n + k] = 1;
    }
  }
  return out;
}

/**
 * The (prompt, response) of an input row: an OpenMementos row (`problem`, `sentences`, `blocks`,
 * `block_summaries`: the response is rebuilt from its blocks and mementos), a `{prompt|problem, response}` row
 * (response used as is). Throws a UserError naming what is wrong.
 */
export function rowToPair(row: Record<string, unknown>, where = "row"): { prompt: string; response: string } {
  if ("sentences" in row && "blocks" in row && "block_summaries" in row) {
    const r = parseOpenMementosRow(row, where);
    return { prompt: r.problem, response: rowToResponse(r) };
  }
  const prompt =
    typeof row.prompt === "string" ? row.prompt : typeof row.problem === "string" ? row.problem : undefined;
  if (prompt === undefined) throw new UserError(`${where}: no "prompt" or "problem" string`);
  if (typeof row.response !== "string") throw new UserError(`${where}: no "response" string`);
  return { prompt, response: row.response };
}

export interface ExportOptions {
  tokenizer: SftTokenizer;
  /** Longest example kept, in tokens (default: no limit). */
  maxTokens?: number;
  /** Stage-2 masking overrides (default STAGE2_MASKING). */
  masking?: Partial<MaskingConfig>;
  /** Called for each skipped row (for progress output). */
  onSkip?: (s: SkippedRow) => void;
}

export interface SkippedRow {
  /** 1-based line (JSONL) or row number + 1 (Parquet). */
  line: number;
  reason: "too_long" | "invalid";
  message: string;
  /** Token count, for too_long. */
  tokens?: number;
}

export interface ExportReport {
  input: string;
  output: string;
  format: "jsonl" | "parquet";
  read: number;
  written: number;
  skipped: SkippedRow[];
  maxTokens: number | null;
  /** Total / longest tokens of the written examples. */
  tokens: number;
  longest: number;
  /** Keys evicted at least once, summed over written examples. */
  evictedKeys: number;
}

/** One example's record for a (prompt, response) pair, or the reason it is skipped. */
export function exportPair(
  pair: { prompt: string; response: string },
  opts: Pick<ExportOptions, "tokenizer" | "maxTokens" | "masking">,
): { record: ExportRecord } | { reason: SkippedRow["reason"]; message: string; tokens?: number } {
  const v = validateResponse(pair.response);
  if (!v.valid) {
    const d = v.diagnostics.find((x) => x.severity === "error")!;
    return { reason: "invalid", message: `invalid Memento response: ${d.code}: ${d.message}` };
  }
  const ex = buildSftExample(opts.tokenizer, pair.prompt, pair.response);
  if (opts.maxTokens !== undefined && ex.ids.length > opts.maxTokens) {
    return {
      reason: "too_long",
      message: `${ex.ids.length} tokens > --max-tokens ${opts.maxTokens}`,
      tokens: ex.ids.length,
    };
  }
  const pattern = stagePattern(ex, 2, trackerIdsOf(opts.tokenizer), opts.masking);
  return { record: exportRecord(ex, pattern) };
}

const INT_LIST_COLUMNS = ["input_ids", "labels", "memento_visible_until", "view_at"] as const;

function parquetOf(records: readonly ExportRecord[]): Uint8Array {
  const schema: SchemaElement[] = [{ name: "root", num_children: 5 }];
  const columnData: ColumnSource[] = [];
  for (const name of INT_LIST_COLUMNS) {
    schema.push(
      { name, repetition_type: "REQUIRED", converted_type: "LIST", num_children: 1 },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { name: "element", type: "INT32", repetition_type: "REQUIRED" },
    );
    columnData.push({ name, data: records.map((r) => r[name]) as ColumnSource["data"] });
  }
  schema.push({ name: "prompt_length", type: "INT32", repetition_type: "REQUIRED" });
  columnData.push({ name: "prompt_length", data: records.map((r) => r.prompt_length) as ColumnSource["data"] });
  return new Uint8Array(
    parquetWriteBuffer({
      columnData,
      schema,
      rowGroupSize: 1000,
      kvMetadata: [{ key: "memento.sft_export", value: "1" }],
      createdBy: "memento train export",
    }),
  );
}

/**
 * Reads `input` (JSONL or Parquet rows, see rowToPair), writes one export record per kept row to `output`
 * (Parquet when it ends in .parquet, else JSONL; written atomically). Rows that are invalid or longer than
 * maxTokens are skipped and listed in the report. A JSONL output is streamed; a Parquet one is built in memory.
 */
export async function exportSft(input: string, output: string, opts: ExportOptions): Promise<ExportReport> {
  if (opts.maxTokens !== undefined && (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1)) {
    throw new UserError(`--max-tokens: expected a positive integer, got ${opts.maxTokens}`);
  }
  const format = extname(output).toLowerCase() === ".parquet" ? "parquet" : "jsonl";
  const report: ExportReport = {
    input,
    output,
    format,
    read: 0,
    written: 0,
    skipped: [],
    maxTokens: opts.maxTokens ?? null,
    tokens: 0,
    longest: 0,
    evictedKeys: 0,
  };
  const file = format === "jsonl" ? new AtomicFile(output) : null;
  const kept: ExportRecord[] = [];
  try {
    for await (const item of readRecords(input)) {
      report.read++;
      let result: ReturnType<typeof exportPair>;
      try {
        result = exportPair(rowToPair(item.record, `${input}:${item.line}`), opts);
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        result = { reason: "invalid", message: e.message };
      }
      if ("reason" in result) {
        const s: SkippedRow = { line: item.line, reason: result.reason, message: result.message };
        if (result.tokens !== undefined) s.tokens = result.tokens;
        report.skipped.push(s);
        opts.onSkip?.(s);
        continue;
      }
      const rec = result.record;
      report.written++;
      report.tokens += rec.input_ids.length;
      report.longest = Math.max(report.longest, rec.input_ids.length);
      for (const v of rec.memento_visible_until) if (v >= 0) report.evictedKeys++;
      if (file) file.write(JSON.stringify(rec) + "\n");
      else kept.push(rec);
    }
  } catch (e) {
    file?.abort();
    throw e;
  }
  if (file) file.commit();
  else writeFileAtomic(output, parquetOf(kept));
  return report;
}
