/**
 * The segments JSON of real Memento model outputs (the `memento_output_*.json` reference files):
 *
 *   {problem, problem_source, answer, label?, segments: [{type, block_idx, text, char_len, approx_tokens}]}
 *
 * Measured on the three reference files (29 segments):
 * - `type` is "block", "summary" or "answer"; blocks and summaries alternate with `block_idx` 1, 1, 2, 2, ...,
 *   and one final "answer" segment (block_idx 0) holds the text after `</think>`. The top-level `answer` is the
 *   extracted final answer ("504", "C", the code), not that text.
 * - `char_len` equals the text length in every segment (Unicode code points, as Python's `len`; none of the
 *   texts has characters outside the BMP, so UTF-16 length agrees too).
 * - `approx_tokens` equals `floor(char_len / 4)` in every segment.
 * - Texts carry no leading or trailing whitespace.
 */
import { z } from "zod";
import { UserError } from "../errors.js";
import {
  CANONICAL_AFTER_SUMMARY,
  CANONICAL_BLOCK_SUMMARY_GAP,
  CANONICAL_THINK_CLOSE,
  CANONICAL_THINK_OPEN,
  type ParsedResponse,
  decomposeResponse,
  parseResponse,
} from "./response.js";
import { BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START } from "./tokens.js";

export const referenceSegmentSchema = z.object({
  type: z.enum(["block", "summary", "answer"]),
  block_idx: z.number().int().nonnegative(),
  text: z.string(),
  char_len: z.number().int().nonnegative(),
  approx_tokens: z.number().int().nonnegative(),
});

export const referenceTraceSchema = z.object({
  problem: z.string(),
  problem_source: z.string(),
  answer: z.string(),
  label: z.string().optional(),
  segments: z.array(referenceSegmentSchema),
});

export type ReferenceSegment = z.infer<typeof referenceSegmentSchema>;
export type ReferenceTrace = z.infer<typeof referenceTraceSchema>;

/** Length as the reference files count it: Unicode code points. */
export function charLen(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate followed by a low surrogate is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** `approx_tokens` as the reference files compute it: floor(char_len / 4). */
export function approxTokens(charLength: number): number {
  return Math.floor(charLength / 4);
}

export interface ReferenceIssue {
  code: "char_len_mismatch" | "approx_tokens_mismatch" | "segment_order";
  /** Index into `segments`, when the issue concerns one segment. */
  segment?: number;
  severity: "error" | "warning";
  message: string;
}

/**
 * Checks a segments trace: block/summary alternation with block_idx 1, 1, 2, 2, ...; at most one answer segment,
 * last; `char_len` equal to the text length (error); `approx_tokens` equal to floor(text length / 4) (warning).
 */
export function checkReferenceTrace(trace: ReferenceTrace): ReferenceIssue[] {
  const issues: ReferenceIssue[] = [];
  const segs = trace.segments;
  let expectedIdx = 1;
  let expectType = "block" as "block" | "summary";
  let answerAt = -1;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    const len = charLen(s.text);
    if (s.char_len !== len) {
      issues.push({
        code: "char_len_mismatch",
        segment: i,
        severity: "error",
        message: `segment ${i} (${s.type} ${s.block_idx}): char_len ${s.char_len} but the text has ${len} characters`,
      });
    }
    if (s.approx_tokens !== approxTokens(len)) {
      issues.push({
        code: "approx_tokens_mismatch",
        segment: i,
        severity: "warning",
        message: `segment ${i}: approx_tokens ${s.approx_tokens}, expected floor(${len}/4) = ${approxTokens(len)}`,
      });
    }
    if (s.type === "answer") {
      if (answerAt !== -1)
        issues.push({
          code: "segment_order",
          segment: i,
          severity: "error",
          message: `segment ${i}: a second answer segment (first at ${answerAt})`,
        });
      answerAt = i;
      continue;
    }
    if (answerAt !== -1) {
      issues.push({
        code: "segment_order",
        segment: i,
        severity: "error",
        message: `segment ${i}: ${s.type} after the answer segment`,
      });
      continue;
    }
    if (s.type !== expectType || s.block_idx !== expectedIdx) {
      issues.push({
        code: "segment_order",
        segment: i,
        severity: "error",
        message: `segment ${i}: expected ${expectType} ${expectedIdx}, found ${s.type} ${s.block_idx}`,
      });
      // Resynchronise on what was found.
      expectedIdx = s.block_idx;
    }
    if (s.type === "block") expectType = "summary";
    else {
      expectType = "block";
      expectedIdx++;
    }
  }
  if (expectType === "summary") {
    issues.push({ code: "segment_order", severity: "error", message: `block ${expectedIdx} has no summary segment` });
  }
  return issues;
}

/** Parses and checks a segments trace; throws a one-line UserError on the first error. */
export function parseReferenceTrace(value: unknown, where = "segments"): ReferenceTrace {
  const r = referenceTraceSchema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UserError(`${where}: invalid segments JSON: ${i.path.length ? i.path.join(".") + ": " : ""}${i.message}`);
  }
  const err = checkReferenceTrace(r.data).find((i) => i.severity === "error");
  if (err) throw new UserError(`${where}: ${err.message}`);
  return r.data;
}

/**
 * The Memento response of a segments trace, in the canonical layout (see `buildResponse`): block and summary
 * segments are rendered in file order, then `</think>` and the answer (the "answer" segment's text, or the
 * top-level `answer` when there is none). A well-formed trace gives exactly
 * `buildResponse({blocks, mementos, answer})`; a malformed one (wrong order, missing summary) is rendered as it
 * stands so that `validateResponse` can point at the problem. `checkReferenceTrace` reports it directly.
 */
export function referenceToResponse(trace: ReferenceTrace): string {
  const out: string[] = [CANONICAL_THINK_OPEN];
  let answer: string | null = null;
  for (const s of trace.segments) {
    if (s.type === "block") out.push(BLOCK_START, s.text, BLOCK_END, CANONICAL_BLOCK_SUMMARY_GAP);
    else if (s.type === "summary") out.push(SUMMARY_START, s.text, SUMMARY_END, CANONICAL_AFTER_SUMMARY);
    else answer ??= s.text;
  }
  out.push(CANONICAL_THINK_CLOSE, answer ?? trace.answer);
  return out.join("");
}

export type ReferenceMeta = Pick<ReferenceTrace, "problem" | "problem_source" | "answer" | "label">;

/**
 * Segments of a response: one "block" and one "summary" per top-level block (block_idx from 1), then one "answer"
 * segment (block_idx 0) when the response has a `</think>`. Texts are trimmed as in the reference files;
 * `char_len` counts code points and `approx_tokens = floor(char_len / 4)`.
 */
export function responseToReference(response: string | ParsedResponse, meta: ReferenceMeta): ReferenceTrace {
  const parsed = typeof response === "string" ? parseResponse(response) : response;
  const parts = decomposeResponse(parsed);
  const seg = (type: ReferenceSegment["type"], block_idx: number, raw: string): ReferenceSegment => {
    const text = raw.trim();
    const char_len = charLen(text);
    return { type, block_idx, text, char_len, approx_tokens: approxTokens(char_len) };
  };
  const segments: ReferenceSegment[] = [];
  parts.blocks.forEach((b, k) => {
    segments.push(seg("block", k + 1, b));
    segments.push(seg("summary", k + 1, parts.mementos[k]));
  });
  if (parsed.answer) segments.push(seg("answer", 0, parts.answer));
  return {
    problem: meta.problem,
    problem_source: meta.problem_source,
    ...(meta.label !== undefined ? { label: meta.label } : {}),
    answer: meta.answer,
    segments,
  };
}
