/**
 * Structural validation of Memento responses, on top of the lenient parser in response.ts.
 * Each problem becomes one diagnostic with a stable code, a message, a character offset and a 1-based
 * line:column (columns count UTF-16 code units, like the offsets).
 */
import {
  type MarkerEffect,
  type MarkerSegment,
  type ParsedResponse,
  type Segment,
  MARKER_TEXT,
  isMarkerSegment,
  parseResponse,
} from "./response.js";

export type DiagnosticCode =
  | "unclosed_block"
  | "block_end_without_block"
  | "memento_without_block"
  | "nested_block"
  | "unclosed_memento"
  | "summary_end_without_memento"
  | "block_without_memento"
  | "text_outside_block"
  | "text_before_think"
  | "missing_think_start"
  | "missing_think_end"
  | "marker_after_think_end"
  | "duplicate_think_start"
  | "empty_block"
  | "empty_memento"
  | "no_blocks";

export type Severity = "error" | "warning";

export interface Diagnostic {
  code: DiagnosticCode;
  severity: Severity;
  message: string;
  /** UTF-16 offset into the response text. */
  offset: number;
  /** 1-based line. */
  line: number;
  /** 1-based column (UTF-16 code units). */
  column: number;
}

export interface ValidateOptions {
  /**
   * Accept a response without the leading `<think>` (the generation prompt ended with `<think>\n`).
   * Text before the first marker is then inside the thinking section and must be whitespace. Default false.
   */
  allowMissingThinkStart?: boolean;
}

export interface ValidationResult {
  valid: boolean;
  diagnostics: Diagnostic[];
  parsed: ParsedResponse;
}

/** Maps offsets to 1-based line/column. Built once per text in O(n); each lookup is O(log lines). */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(text: string) {
    let i = text.indexOf("\n");
    while (i !== -1) {
      this.starts.push(i + 1);
      i = text.indexOf("\n", i + 1);
    }
  }
  position(offset: number): { line: number; column: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo] + 1 };
  }
}

const WS = /^\s*$/;
const FIRST_NON_WS = /\S/;

function preview(s: string, max = 40): string {
  const one = s.replace(/\s+/g, " ").trim();
  return JSON.stringify(one.length > max ? one.slice(0, max) + "…" : one);
}

const EFFECT_CODES: Record<Exclude<MarkerEffect, "ok">, DiagnosticCode> = {
  duplicate: "duplicate_think_start",
  after_think_end: "marker_after_think_end",
  nested: "nested_block",
  no_open_block: "block_end_without_block",
  no_closed_block: "memento_without_block",
  block_open: "memento_without_block",
  block_has_memento: "memento_without_block",
  no_open_memento: "summary_end_without_memento",
};

function effectMessage(seg: MarkerSegment): string {
  const marker = MARKER_TEXT[seg.kind];
  switch (seg.effect) {
    case "duplicate":
      return `duplicated ${marker}: the thinking section is already open`;
    case "after_think_end":
      return `${marker} after </think> (the answer must not contain format markers)`;
    case "nested":
      return `${marker} while block ${(seg.within ?? 0) + 1} is still open (blocks must not nest)`;
    case "no_open_block":
      return `${marker} without an open block`;
    case "no_closed_block":
      return `${marker} with no closed block before it (a memento must follow a <|block_end|>)`;
    case "block_open":
      return `${marker} inside block ${(seg.within ?? 0) + 1}, which is not closed yet`;
    case "block_has_memento":
      return `${marker}: the preceding block already has a memento (a second memento for one block)`;
    case "no_open_memento":
      return `${marker} without an open memento`;
    default:
      return marker;
  }
}

/** Validates a response (string or already parsed). */
export function validateResponse(input: string | ParsedResponse, options: ValidateOptions = {}): ValidationResult {
  const parsed = typeof input === "string" ? parseResponse(input) : input;
  const text = parsed.source;
  const lines = new LineIndex(text);
  const raw: { code: DiagnosticCode; severity: Severity; message: string; offset: number }[] = [];
  const add = (code: DiagnosticCode, offset: number, message: string, severity: Severity = "error"): void => {
    raw.push({ code, severity, message, offset });
  };

  // Markers and text placement.
  let prevMarker: MarkerSegment | null = null;
  for (const seg of parsed.segments as Segment[]) {
    if (isMarkerSegment(seg)) {
      if (seg.effect !== "ok") add(EFFECT_CODES[seg.effect], seg.start, effectMessage(seg));
      prevMarker = seg;
      continue;
    }
    if (seg.kind !== "gap" && seg.kind !== "preamble") continue;
    const m = FIRST_NON_WS.exec(seg.text);
    if (!m) continue;
    const at = seg.start + m.index;
    if (seg.kind === "gap") {
      const where =
        prevMarker?.kind === "think_start"
          ? "between <think> and the first block"
          : prevMarker?.kind === "summary_end"
            ? "after a memento"
            : prevMarker?.kind === "block_end"
              ? "between <|block_end|> and <|summary_start|>"
              : "outside any block";
      add("text_outside_block", at, `text outside any block inside <think> (${where}): ${preview(seg.text)}`);
    } else if (parsed.thinkStart) {
      add("text_before_think", at, `text before <think>: ${preview(seg.text)}`);
    } else if (options.allowMissingThinkStart) {
      add("text_outside_block", at, `text outside any block before the first block: ${preview(seg.text)}`);
    }
    // Without <think> and without the option, the missing <think> is reported once below.
  }

  // Blocks and mementos.
  for (const b of parsed.blocks) {
    if (!b.close) {
      const why = parsed.thinkEnd && b.content.end === parsed.thinkEnd.start ? "before </think>" : "at end of text";
      add("unclosed_block", b.open.start, `block ${b.index + 1} is never closed (no <|block_end|> ${why})`);
    } else if (b.mementoIndex === null && b.depth === 0) {
      add(
        "block_without_memento",
        b.close.end,
        `block ${b.index + 1} is not followed by a memento (<|summary_start|>)`,
      );
    }
    if (b.close && WS.test(b.text)) add("empty_block", b.open.start, `block ${b.index + 1} is empty`, "warning");
  }
  for (const m of parsed.mementos) {
    if (!m.close) {
      add(
        "unclosed_memento",
        m.open.start,
        `memento ${m.index + 1} is never closed (no <|summary_end|> before ${nextThing(parsed, m.content.end)})`,
      );
    } else if (WS.test(m.text)) {
      add("empty_memento", m.open.start, `memento ${m.index + 1} is empty`, "warning");
    }
  }

  // The thinking section.
  if (!parsed.thinkStart && !options.allowMissingThinkStart) {
    const first = FIRST_NON_WS.exec(text);
    add("missing_think_start", first ? first.index : 0, "the response does not start with <think>");
  }
  if (!parsed.thinkEnd)
    add("missing_think_end", text.length, "missing </think> (the thinking section is never closed)");
  if (parsed.blocks.length === 0 && (parsed.thinkStart || parsed.implicitThink || options.allowMissingThinkStart)) {
    add("no_blocks", parsed.thinkStart?.end ?? 0, "the thinking section has no blocks", "warning");
  }

  raw.sort((a, b) => a.offset - b.offset);
  const diagnostics = raw.map((d) => ({ ...d, ...lines.position(d.offset) }));
  return { valid: !diagnostics.some((d) => d.severity === "error"), diagnostics, parsed };
}

/** What ends an implicitly closed memento at `offset`: the marker starting there, or the end of text. */
function nextThing(parsed: ParsedResponse, offset: number): string {
  const segs = parsed.segments;
  let lo = 0;
  let hi = segs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = segs[mid];
    if (s.start < offset) lo = mid + 1;
    else if (s.start > offset) hi = mid - 1;
    else return isMarkerSegment(s) ? MARKER_TEXT[s.kind] : "the end of text";
  }
  return "the end of text";
}

/** `line:column: code: message` for one diagnostic. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.line}:${d.column}: ${d.code}: ${d.message}`;
}
