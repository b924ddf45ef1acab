/**
 * Lenient, lossless parser for Memento responses.
 *
 *   <think> ( <|block_start|> reasoning <|block_end|> <|summary_start|> memento <|summary_end|> )* </think> answer
 *
 * `parseResponse` never throws. It cuts the string into contiguous segments (every character belongs to exactly
 * one segment, so `renderSegments(parsed.segments) === text` for every input) and builds the block/memento
 * structure on top. Anything malformed is recorded on the marker segment that caused it (`effect`) or left
 * visible in the structure (a block with `close === null`, a memento with `blockIndex === null`); `validate.ts`
 * turns that into diagnostics.
 *
 * All offsets are UTF-16 code-unit indices into the source string (what `String.prototype.slice` takes);
 * `end` is exclusive.
 *
 * Lenient rules (chosen to follow the reference engine's block tracker where it has one):
 * - Blocks form a stack: `<|block_start|>` inside an open block opens a nested block (effect "nested");
 *   `<|block_end|>` closes the innermost open block, and is ignored when none is open.
 * - `<|summary_start|>` opens a memento. It is attached to the block that closed most recently, provided that
 *   block has no memento yet and no block is open; otherwise the memento is an orphan (`blockIndex === null`).
 * - An open memento is closed by `<|summary_end|>` only; any other marker ends it implicitly (`close === null`)
 *   and is then processed normally.
 * - `<|block_start|>`, `<|block_end|>`, `<|summary_start|>`, `<|summary_end|>` or `</think>` before any
 *   `<think>` enter the thinking section implicitly (`thinkStart === null`, `implicitThink === true`): generation
 *   prompts often end with `<think>\n`, so the response itself may omit it.
 * - `</think>` ends the thinking section: open blocks and mementos end there, unclosed. Everything after it is
 *   answer; markers found there have no structural effect (effect "after_think_end").
 * - A second `<think>` has no effect (effect "duplicate").
 */
import { UserError } from "../errors.js";
import { BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_END, THINK_START } from "./tokens.js";

/** A half-open character range `[start, end)` of the source string. */
export interface Span {
  start: number;
  end: number;
}

export type MarkerKind = "think_start" | "think_end" | "block_start" | "block_end" | "summary_start" | "summary_end";

export const MARKER_TEXT: Readonly<Record<MarkerKind, string>> = {
  think_start: THINK_START,
  think_end: THINK_END,
  block_start: BLOCK_START,
  block_end: BLOCK_END,
  summary_start: SUMMARY_START,
  summary_end: SUMMARY_END,
};

/**
 * What a marker did. "ok" for a well-placed marker; anything else names the problem:
 * - "duplicate": a `<think>` after the thinking section was already opened;
 * - "after_think_end": any marker after the first `</think>` (no structural effect);
 * - "nested": `<|block_start|>` while a block is open (the new block is pushed on the stack);
 * - "no_open_block": `<|block_end|>` with no open block (ignored);
 * - "no_closed_block": `<|summary_start|>` with no block closed before it (orphan memento);
 * - "block_open": `<|summary_start|>` while a block is still open (orphan memento);
 * - "block_has_memento": `<|summary_start|>` for a block that already has a memento (orphan memento);
 * - "no_open_memento": `<|summary_end|>` with no open memento (ignored).
 */
export type MarkerEffect =
  | "ok"
  | "duplicate"
  | "after_think_end"
  | "nested"
  | "no_open_block"
  | "no_closed_block"
  | "block_open"
  | "block_has_memento"
  | "no_open_memento";

/** Where a run of ordinary text sits. */
export type TextKind =
  /** before `<think>` (or, when `<think>` is omitted, before the first marker) */
  | "preamble"
  /** inside a reasoning block */
  | "block_text"
  /** inside a memento */
  | "memento_text"
  /** inside `<think>` but outside any block or memento (whitespace in well-formed responses) */
  | "gap"
  /** after `</think>` */
  | "answer";

export interface MarkerSegment extends Span {
  kind: MarkerKind;
  text: string;
  effect: MarkerEffect;
  /** Block this marker opened/closed (block_start, block_end). */
  block?: number;
  /** Memento this marker opened/closed (summary_start, summary_end). */
  memento?: number;
  /** Innermost block that was open when this marker was read, if any. */
  within?: number;
}

export interface TextSegment extends Span {
  kind: TextKind;
  text: string;
  /** Innermost open block (block_text). */
  block?: number;
  /** Open memento (memento_text). */
  memento?: number;
}

export type Segment = MarkerSegment | TextSegment;

export interface Block {
  index: number;
  /** The `<|block_start|>` marker. */
  open: Span;
  /** The `<|block_end|>` marker, or null when the block is never closed. */
  close: Span | null;
  /** The reasoning between the markers; for an unclosed block it runs to `</think>` or the end of the string. */
  content: Span;
  text: string;
  /** Nesting depth: 0 for a top-level block. */
  depth: number;
  /** The memento that summarises this block, if any. */
  mementoIndex: number | null;
}

export interface Memento {
  index: number;
  /** The block this memento summarises, or null for an orphan (see `MarkerEffect`). */
  blockIndex: number | null;
  /** The `<|summary_start|>` marker. */
  open: Span;
  /** The `<|summary_end|>` marker, or null when the memento is ended implicitly. */
  close: Span | null;
  content: Span;
  text: string;
}

export interface ParsedResponse {
  source: string;
  /** Contiguous, in order, covering the whole source. */
  segments: Segment[];
  blocks: Block[];
  mementos: Memento[];
  /** The first `<think>` that opened the thinking section (null if none did). */
  thinkStart: Span | null;
  /** The first `</think>` (null if missing). */
  thinkEnd: Span | null;
  /** True when the thinking section was entered without a `<think>` marker. */
  implicitThink: boolean;
  /** Everything after the first `</think>`, verbatim (null if there is no `</think>`). */
  answer: (Span & { text: string }) | null;
}

export function isMarkerSegment(s: Segment): s is MarkerSegment {
  return s.kind in MARKER_TEXT;
}

/** Identifies a marker starting at `i` (where `text[i] === "<"`); a single character comparison picks the candidate. */
function markerAt(text: string, i: number): MarkerKind | null {
  const c = text.charCodeAt(i + 1);
  if (c === 0x7c /* | */) {
    // <|block_start|> <|block_end|> <|summary_start|> <|summary_end|>
    const d = text.charCodeAt(i + 2);
    if (d === 0x62 /* b */) {
      if (text.startsWith(BLOCK_START, i)) return "block_start";
      if (text.startsWith(BLOCK_END, i)) return "block_end";
    } else if (d === 0x73 /* s */) {
      if (text.startsWith(SUMMARY_START, i)) return "summary_start";
      if (text.startsWith(SUMMARY_END, i)) return "summary_end";
    }
    return null;
  }
  if (c === 0x74 /* t */) return text.startsWith(THINK_START, i) ? "think_start" : null;
  if (c === 0x2f /* / */) return text.startsWith(THINK_END, i) ? "think_end" : null;
  return null;
}

/** Closes an open block or memento at the end marker [start, end) of `text`; false when there is none open. */
function closeAt<T extends Block | Memento>(x: T | null | undefined, text: string, start: number, end: number): x is T {
  if (!x) return false;
  x.close = { start, end };
  x.content.end = start;
  x.text = text.slice(x.content.start, start);
  return true;
}

/** Parses a Memento response in one linear scan. Never throws. */
export function parseResponse(text: string): ParsedResponse {
  const segments: Segment[] = [];
  const blocks: Block[] = [];
  const mementos: Memento[] = [];
  let thinkStart: Span | null = null;
  let thinkEnd: Span | null = null;
  let implicitThink = false;

  type Region = "preamble" | "think" | "answer";
  let region: Region = "preamble";
  const openBlocks: Block[] = [];
  let openMemento: Memento | null = null;
  /** The block that closed most recently (candidate for the next memento). */
  let lastClosed: Block | null = null;

  let textStart = 0;

  const flushText = (end: number): void => {
    if (end <= textStart) return;
    const seg: TextSegment = { kind: "preamble", start: textStart, end, text: text.slice(textStart, end) };
    if (region === "preamble") seg.kind = "preamble";
    else if (region === "answer") seg.kind = "answer";
    else if (openMemento) {
      seg.kind = "memento_text";
      seg.memento = openMemento.index;
    } else if (openBlocks.length > 0) {
      seg.kind = "block_text";
      seg.block = openBlocks[openBlocks.length - 1].index;
    } else seg.kind = "gap";
    segments.push(seg);
  };

  const endMemento = (at: number): void => {
    if (!openMemento) return;
    openMemento.content.end = at;
    openMemento.text = text.slice(openMemento.content.start, at);
    openMemento = null;
  };

  const endOpenBlocks = (at: number): void => {
    for (const b of openBlocks) {
      b.content.end = at;
      b.text = text.slice(b.content.start, at);
    }
    openBlocks.length = 0;
  };

  let i = text.indexOf("<");
  while (i !== -1) {
    const kind = markerAt(text, i);
    if (kind === null) {
      i = text.indexOf("<", i + 1);
      continue;
    }
    const mtext = MARKER_TEXT[kind];
    const end = i + mtext.length;
    flushText(i);
    const seg: MarkerSegment = { kind, start: i, end, text: mtext, effect: "ok" };
    if (openBlocks.length > 0 && region === "think") seg.within = openBlocks[openBlocks.length - 1].index;

    if (region === "answer") {
      seg.effect = "after_think_end";
    } else if (kind === "think_start") {
      if (region === "preamble") {
        region = "think";
        thinkStart = { start: i, end };
      } else seg.effect = "duplicate";
    } else {
      if (region === "preamble") {
        region = "think";
        implicitThink = true;
      }
      if (kind !== "summary_end") endMemento(i);
      switch (kind) {
        case "think_end": {
          endOpenBlocks(i);
          thinkEnd = { start: i, end };
          region = "answer";
          break;
        }
        case "block_start": {
          if (openBlocks.length > 0) seg.effect = "nested";
          const b: Block = {
            index: blocks.length,
            open: { start: i, end },
            close: null,
            content: { start: end, end: end },
            text: "",
            depth: openBlocks.length,
            mementoIndex: null,
          };
          blocks.push(b);
          openBlocks.push(b);
          seg.block = b.index;
          break;
        }
        case "block_end": {
          const b = openBlocks.pop();
          if (closeAt(b, text, i, end)) {
            lastClosed = b;
            seg.block = b.index;
          } else seg.effect = "no_open_block";
          break;
        }
        case "summary_start": {
          let target: Block | null = null;
          if (openBlocks.length > 0) seg.effect = "block_open";
          else if (!lastClosed) seg.effect = "no_closed_block";
          else if (lastClosed.mementoIndex !== null) seg.effect = "block_has_memento";
          else target = lastClosed;
          const m: Memento = {
            index: mementos.length,
            blockIndex: target ? target.index : null,
            open: { start: i, end },
            close: null,
            content: { start: end, end: end },
            text: "",
          };
          if (target) target.mementoIndex = m.index;
          mementos.push(m);
          openMemento = m;
          seg.memento = m.index;
          break;
        }
        case "summary_end": {
          const m: Memento | null = openMemento;
          if (closeAt(m, text, i, end)) {
            openMemento = null;
            seg.memento = m.index;
          } else seg.effect = "no_open_memento";
          break;
        }
      }
    }
    segments.push(seg);
    textStart = end;
    i = text.indexOf("<", end);
  }
  flushText(text.length);
  endMemento(text.length);
  endOpenBlocks(text.length);

  const answer = thinkEnd ? { start: thinkEnd.end, end: text.length, text: text.slice(thinkEnd.end) } : null;
  return { source: text, segments, blocks, mementos, thinkStart, thinkEnd, implicitThink, answer };
}

/** Concatenates segment texts. For any string `s`, `renderSegments(parseResponse(s).segments) === s`. */
export function renderSegments(segments: readonly Segment[]): string {
  let out = "";
  for (const s of segments) out += s.text;
  return out;
}

/** Renders a parsed response back to text (byte-exact). */
export function renderResponse(parsed: Pick<ParsedResponse, "segments">): string {
  return renderSegments(parsed.segments);
}

// ---------------------------------------------------------------------------------------------------------------
// Building responses from parts
// ---------------------------------------------------------------------------------------------------------------

export interface ResponseParts {
  /** Reasoning text of each block, verbatim. */
  blocks: readonly string[];
  /** One memento per block, verbatim. */
  mementos: readonly string[];
  /** The final answer (text after `</think>` and its separator). */
  answer: string;
}

export interface BuildOptions {
  /**
   * Leave out the leading `<think>\n` (for a generation prompt that already ends with it). Default false.
   */
  omitThinkStart?: boolean;
}

/** Separator between the opening `<think>` and the first block. */
export const CANONICAL_THINK_OPEN = `${THINK_START}\n`;
/** Separator between a block's `<|block_end|>` and its `<|summary_start|>`. */
export const CANONICAL_BLOCK_SUMMARY_GAP = "\n";
/** Separator after each `<|summary_end|>` (before the next block or `</think>`). */
export const CANONICAL_AFTER_SUMMARY = "\n";
/** `</think>` and the separator before the answer. */
export const CANONICAL_THINK_CLOSE = `${THINK_END}\n\n`;

/**
 * Builds a response in the canonical layout:
 *
 *   <think>\n
 *   <|block_start|>{block 1}<|block_end|>\n
 *   <|summary_start|>{memento 1}<|summary_end|>\n
 *   ...
 *   </think>\n\n{answer}
 *
 * i.e. `<think>` on its own line, each block on a line, each memento on the next line, `</think>` on its own
 * line and a blank line before the answer (the Qwen3 convention `<think>\n...\n</think>\n\n`, which is how the
 * paper's appendix traces are laid out). Block and memento texts go between their markers unpadded, so the
 * parsed content spans are exactly the given strings, the evicted KV range `[block_start+1, block_end)` holds
 * only reasoning, and every gap between markers is a single newline (whitespace, which the validator accepts).
 *
 * Throws a UserError when the counts differ or a part contains a format marker (the result would not parse
 * back to the same parts).
 */
export function buildResponse(parts: ResponseParts, options: BuildOptions = {}): string {
  const { blocks, mementos, answer } = parts;
  if (blocks.length !== mementos.length) {
    throw new UserError(
      `buildResponse: ${blocks.length} blocks but ${mementos.length} mementos (need one memento per block)`,
    );
  }
  const check = (what: string, s: string): void => {
    const m = findMarker(s);
    if (m !== null) throw new UserError(`buildResponse: ${what} contains the format marker ${m}`);
  };
  const out: string[] = [];
  if (!options.omitThinkStart) out.push(CANONICAL_THINK_OPEN);
  for (let k = 0; k < blocks.length; k++) {
    check(`block ${k + 1}`, blocks[k]);
    check(`memento ${k + 1}`, mementos[k]);
    out.push(BLOCK_START, blocks[k], BLOCK_END, CANONICAL_BLOCK_SUMMARY_GAP);
    out.push(SUMMARY_START, mementos[k], SUMMARY_END, CANONICAL_AFTER_SUMMARY);
  }
  check("answer", answer);
  out.push(CANONICAL_THINK_CLOSE, answer);
  return out.join("");
}

/** The first format marker occurring in `s`, or null. */
export function findMarker(s: string): string | null {
  let i = s.indexOf("<");
  while (i !== -1) {
    const k = markerAt(s, i);
    if (k) return MARKER_TEXT[k];
    i = s.indexOf("<", i + 1);
  }
  return null;
}

/**
 * Extracts the parts of a response: block texts in order, memento texts in block order (a block without a
 * memento gets ""), and the answer with the canonical "\n\n" separator removed (any other leading whitespace
 * is removed instead). Structure problems are not reported here; run `validateResponse` for that.
 * For canonical responses, `buildResponse(decomposeResponse(parseResponse(s))) === s`.
 */
export function decomposeResponse(parsed: ParsedResponse): ResponseParts {
  const top = parsed.blocks.filter((b) => b.depth === 0);
  return {
    blocks: top.map((b) => b.text),
    mementos: top.map((b) => (b.mementoIndex === null ? "" : parsed.mementos[b.mementoIndex].text)),
    answer: stripAnswerSeparator(parsed.answer?.text ?? ""),
  };
}

/** Removes the separator between `</think>` and the answer: "\n\n" if present, else leading whitespace. */
export function stripAnswerSeparator(s: string): string {
  if (s.startsWith("\n\n")) return s.slice(2);
  return s.replace(/^\s+/, "");
}
