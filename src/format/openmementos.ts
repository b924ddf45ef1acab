/**
 * OpenMementos rows (the dataset's `full` configuration) and their conversion to and from Memento responses.
 *
 * A row: `{problem, response, domain, source, difficulty, sentences, blocks, block_summaries}` where
 * `blocks[k] = [first, last]` is an INCLUSIVE range of sentence indices, the ranges are contiguous, in order and
 * cover every sentence exactly once, and `block_summaries[k]` is the memento of block k.
 *
 * Sentence joiner: the pipeline's sentence splitter drops the whitespace between sentences, so the original
 * separators cannot be recovered from `sentences`. We join the sentences of a block with a single space
 * (`SENTENCE_JOINER`), which is how the block texts in the paper's appendix traces read (one flowing paragraph
 * per block). `rowToResponse` takes another joiner as an option; `responseToRow` does not depend on the joiner
 * because it matches sentences against the block text with all whitespace runs treated as equal.
 */
import { z } from "zod";
import { UserError } from "../errors.js";
import { type ParsedResponse, buildResponse, decomposeResponse, parseResponse } from "./response.js";

export const SENTENCE_JOINER = " ";

const blockRange = z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]);

/** Shape of one row (no cross-field checks). */
export const openMementosRowShape = z.object({
  problem: z.string(),
  response: z.string(),
  domain: z.string(),
  source: z.string(),
  // Integer levels in OpenMementos; null (unknown) or a label when a source has no numeric difficulty.
  difficulty: z.union([z.number().int(), z.string(), z.null()]),
  sentences: z.array(z.string()),
  blocks: z.array(blockRange),
  block_summaries: z.array(z.string()),
});

/** One row with its structural invariants checked (contiguous inclusive ranges covering all sentences). */
export const openMementosRowSchema = openMementosRowShape.superRefine((row, ctx) => {
  const n = row.sentences.length;
  let expected = 0;
  for (let k = 0; k < row.blocks.length; k++) {
    const [a, b] = row.blocks[k];
    if (a !== expected) {
      const msg =
        k === 0
          ? `block 0 starts at sentence ${a}; the first block must start at sentence 0`
          : a <= expected - 1
            ? `block ${k} starts at sentence ${a}, overlapping block ${k - 1} which ends at ${expected - 1} (blocks must be in order and not overlap)`
            : `block ${k} starts at sentence ${a} but block ${k - 1} ends at ${expected - 1}: sentences ${expected}..${a - 1} are in no block`;
      ctx.addIssue({ code: "custom", path: ["blocks", k, 0], message: msg });
      return;
    }
    if (b < a) {
      ctx.addIssue({
        code: "custom",
        path: ["blocks", k],
        message: `block ${k} is [${a}, ${b}]: end before start (ranges are inclusive)`,
      });
      return;
    }
    if (b >= n) {
      ctx.addIssue({
        code: "custom",
        path: ["blocks", k, 1],
        message: `block ${k} ends at sentence ${b} but there are only ${n} sentences (ranges are inclusive)`,
      });
      return;
    }
    expected = b + 1;
  }
  if (expected !== n) {
    ctx.addIssue({
      code: "custom",
      path: ["blocks"],
      message:
        row.blocks.length === 0
          ? `no blocks for ${n} sentences`
          : `blocks cover sentences 0..${expected - 1} but there are ${n} sentences (the last ${n - expected} are in no block)`,
    });
  }
  if (row.block_summaries.length !== row.blocks.length) {
    ctx.addIssue({
      code: "custom",
      path: ["block_summaries"],
      message: `${row.block_summaries.length} block_summaries for ${row.blocks.length} blocks (need exactly one per block)`,
    });
  }
});

export type OpenMementosRow = z.infer<typeof openMementosRowShape>;

export interface RowIssue {
  /** Dotted path into the row, e.g. "blocks.3.0". */
  path: string;
  message: string;
}

/** Checks a row; returns all issues (empty when valid). */
export function checkOpenMementosRow(value: unknown): RowIssue[] {
  const r = openMementosRowSchema.safeParse(value);
  if (r.success) return [];
  return r.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
}

/** Parses a row, throwing a one-line UserError naming the first problem. */
export function parseOpenMementosRow(value: unknown, where = "row"): OpenMementosRow {
  const issues = checkOpenMementosRow(value);
  if (issues.length > 0) {
    const i = issues[0];
    throw new UserError(`${where}: invalid OpenMementos row: ${i.path ? i.path + ": " : ""}${i.message}`);
  }
  return value as OpenMementosRow;
}

/** Block texts of a row: the sentences of each inclusive range joined with `joiner`. */
export function rowBlockTexts(row: Pick<OpenMementosRow, "sentences" | "blocks">, joiner = SENTENCE_JOINER): string[] {
  return row.blocks.map(([a, b]) => row.sentences.slice(a, b + 1).join(joiner));
}

export interface RowToResponseOptions {
  joiner?: string;
  /**
   * The final answer to put after `</think>`. Default: the answer of the row's own `response` (everything after
   * its `</think>`), or "" when it has none.
   */
  answer?: string;
}

/** Builds the canonical Memento response of a (validated) row; see `buildResponse` for the layout. */
export function rowToResponse(row: OpenMementosRow, options: RowToResponseOptions = {}): string {
  const valid = parseOpenMementosRow(row);
  const answer = options.answer ?? decomposeResponse(parseResponse(valid.response)).answer;
  return buildResponse({ blocks: rowBlockTexts(valid, options.joiner), mementos: valid.block_summaries, answer });
}

export type RowMeta = Pick<OpenMementosRow, "problem" | "domain" | "source" | "difficulty">;

const normalizeWs = (s: string): string => s.replace(/\s+/g, " ").trim();

/**
 * Rebuilds a row from a response and the sentence list its blocks were made of. Each top-level block's text must
 * be the concatenation of consecutive sentences (whitespace between and inside them may differ); the sentence
 * ranges are found by a linear walk. Mementos are taken in block order. Throws a UserError on a mismatch.
 */
export function responseToRow(
  response: string | ParsedResponse,
  sentences: readonly string[],
  meta: RowMeta,
): OpenMementosRow {
  const parsed = typeof response === "string" ? parseResponse(response) : response;
  const parts = decomposeResponse(parsed);
  const normSentences = sentences.map(normalizeWs);
  const blocks: [number, number][] = [];
  let s = 0;
  for (let k = 0; k < parts.blocks.length; k++) {
    const target = normalizeWs(parts.blocks[k]);
    const first = s;
    let pos = 0;
    // Consume sentences until the block text is used up. Empty sentences are skipped over and stay with the
    // block being built (trailing ones go to the last block below).
    while (pos < target.length) {
      if (s >= normSentences.length) {
        throw new UserError(
          `block ${k}: the sentences run out before the block text does (at ${JSON.stringify(target.slice(pos, pos + 40))})`,
        );
      }
      const sent = normSentences[s];
      if (sent !== "") {
        // Normalised sentences never start with a space, so a space here is the separator (which may be absent).
        if (pos > 0 && target[pos] === " ") pos++;
        if (!target.startsWith(sent, pos)) throw mismatch(k, s, target, pos);
        pos += sent.length;
      }
      s++;
    }
    if (s === first) throw new UserError(`block ${k} is empty; it matches no sentence`);
    blocks.push([first, s - 1]);
  }
  // Trailing empty sentences belong to the last block.
  while (s < normSentences.length && normSentences[s] === "" && blocks.length > 0) {
    blocks[blocks.length - 1][1] = s;
    s++;
  }
  if (s !== sentences.length) {
    throw new UserError(`the blocks use ${s} of ${sentences.length} sentences; sentence ${s} is in no block`);
  }
  const row: OpenMementosRow = {
    ...meta,
    response: parsed.source,
    sentences: [...sentences],
    blocks,
    block_summaries: [...parts.mementos],
  };
  return parseOpenMementosRow(row, "responseToRow");
}

function mismatch(k: number, s: number, target: string, pos: number): UserError {
  return new UserError(
    `block ${k}: sentence ${s} does not continue the block text at ${JSON.stringify(target.slice(pos, pos + 40))}`,
  );
}

export interface RowConsistencyIssue {
  message: string;
  /** Block index, when the issue concerns one block. */
  block?: number;
}

/**
 * Compares a row's `response` with its `sentences`/`blocks`/`block_summaries`: same number of blocks, each
 * block's text equal to its sentences (whitespace runs treated as equal), each memento equal to its summary
 * (ignoring surrounding whitespace).
 */
export function checkRowConsistency(row: OpenMementosRow): RowConsistencyIssue[] {
  const issues: RowConsistencyIssue[] = [];
  const parts = decomposeResponse(parseResponse(row.response));
  if (parts.blocks.length !== row.blocks.length) {
    issues.push({ message: `response has ${parts.blocks.length} blocks but the row lists ${row.blocks.length}` });
    return issues;
  }
  const expected = rowBlockTexts(row);
  for (let k = 0; k < expected.length; k++) {
    if (normalizeWs(parts.blocks[k]) !== normalizeWs(expected[k])) {
      issues.push({
        block: k,
        message: `block ${k} of the response differs from sentences ${row.blocks[k][0]}..${row.blocks[k][1]}`,
      });
    }
    if (k < row.block_summaries.length && parts.mementos[k].trim() !== row.block_summaries[k].trim()) {
      issues.push({ block: k, message: `memento ${k} of the response differs from block_summaries[${k}]` });
    }
  }
  return issues;
}
