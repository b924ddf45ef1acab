/**
 * Stage 1 of the data pipeline: structure-aware sentence splitting of a raw reasoning trace
 * (paper section 3, "Sentence splitting"). The output "sentences" are the candidate boundaries that the
 * boundary scorer rates and the segmenter cuts at, so fewer, more meaningful units are better: the paper
 * reports ~2x fewer boundaries than naive splitting (397 -> 187 per trace on average).
 *
 * The result partitions the reasoning part of the input: `spans[i] = [start, end)` are char offsets into
 * the input, ordered and non-overlapping, `sentences[i] === text.slice(start, end)` (already trimmed), and
 * everything between consecutive spans (and before the first / after the last, inside `region`) is
 * whitespace. So `text.slice(region[0], spans[0][0]) + sentences[0] + text.slice(spans[0][1], spans[1][0]) + ...`
 * reproduces the reasoning text exactly.
 *
 * Rules, in the order they are applied:
 *
 * 0. Region. If the text contains `<think>` the reasoning part starts after it (else at 0); if it contains
 *    `</think>` it ends before it (else at the end). Only that region is split.
 *
 * 1. Protected ranges: no cut is ever placed strictly inside one.
 *    - Fenced code: a line starting (after <= 3 spaces) with >= 3 backticks or tildes, up to the next line
 *      starting with at least as many of the same char (or the end of the region if unclosed); text after
 *      the closing run on its line is prose again ("``` else:" in model output).                [atomic, code]
 *    - Indented code: a line indented by >= 4 spaces or a tab that follows a blank line (or starts the
 *      region), and whose previous non-blank line is not a list item; it extends over following indented
 *      lines and over blank lines that are followed by more indented lines.                    [atomic, code]
 *    - Display math: `$$...$$`, `\[...\]`, `\begin{env}...\end{env}` (same env name, nested ones counted),
 *      anywhere outside code; may span blank lines. When it occupies whole lines (only whitespace before it
 *      on its first line, only whitespace or `.,;:` after it on its last line) it is an atomic line block.
 *                                                                                             [atomic, math]
 *    - Multi-line derivations: >= 2 consecutive non-blank lines (outside the blocks above) that are each a
 *      "math line" (see `isMathLine`).                                                        [atomic, math]
 *    Inside a paragraph (never across a blank line or a block):
 *    - inline math `$...$` (the opening `$` not followed by whitespace) and `\(...\)`;
 *    - inline code `` `...` `` (matching backtick runs);
 *    - URLs (`http://`, `https://`, `www.` up to whitespace, trailing punctuation excluded);
 *    - balanced `(...)`, `[...]`, `{...}` pairs (a closer matches the nearest opener of its kind on the
 *      stack; closers without an opener and openers never closed in the paragraph protect nothing).
 *
 * 2. Cut candidates (outside protected ranges):
 *    - a paragraph break (whitespace containing >= 2 newlines) always cuts;
 *    - both edges of an atomic line block cut;
 *    - a single newline cuts only before a list item; otherwise it reads as a space (hard wraps, derivation
 *      lines, "A.\nFor ..." are decided by the punctuation rule below, as the reference does);
 *    - after a run of `.`, `?`, `!` (plus closing `)]"'”’*_`) followed by spaces or one newline and then an
 *      uppercase letter, digit, quote, `*`, `#`, `` ` ``, `$` or `\`; except after an ellipsis (`..`, `…`),
 *      an abbreviation (see `ABBREVIATIONS`), a list marker (`1.`, `a.`, `iv.`) that starts the line or
 *      follows the end of a sentence, or a bare `.` between two words ("home. Then": the reference's
 *      granularity, where a sentence ends at `?`, `!` or a period after math, a bracket or a quote).
 *      Decimals never cut since a cut needs whitespace after the dot.
 *
 * 3. Over-long units: a unit of more than `maxTokens` (`DEFAULT_MAX_SENTENCE_TOKENS`) tokens is also cut at
 *    its periods between words, so prose without paragraphs or questions ("x = 5. Step 2: ...") still
 *    offers the segmenter boundaries (the reference would keep it whole).
 *
 * 4. Merges over the resulting units (each trimmed, empty ones dropped): `./split/merge.ts` — leading
 *    punctuation, fragments under `minTokens` (`DEFAULT_MIN_SENTENCE_TOKENS`) tokens, chains (a `:` ending,
 *    unfinished derivations, math continued by Therefore/Thus/So/..., list items, algorithm steps), then runs
 *    of short math/code sentences; chains and runs never grow a sentence past `maxTokens`.
 *
 * Granularity target: the public reference splitter (microsoft/memento `data/pipeline/sentence_split.py`).
 * `memento data split --compare test/fixtures/split-reference-boundaries.json` measures boundary agreement
 * on the reference texts (README, "Sentence splitting"). What we keep over the reference: spans into the
 * untouched input (it rewrites `\[` to `$$` and wraps code), brackets and inline math that never protect
 * past a paragraph, code and derivations found by line structure, abbreviations and list markers at the start
 * of a line, and token counts (not words) for short fragments.
 */
import { THINK_END, THINK_START } from "../format/tokens.js";
import { type Block, findCodeBlocks, findDerivations, lineIndexOf, scanInline, splitLines } from "./split/blocks.js";
import { LIST_ITEM_RE, estimateTokens, isWordCode, skipSpace, trimEnd } from "./split/chars.js";
import { mergeUnits, type Unit } from "./split/merge.js";

export { estimateTokens } from "./split/chars.js";
export { isMathLine } from "./split/math-line.js";

/** Sentences with fewer tokens than this merge into a neighbour (the paper's and the reference's value). */
export const DEFAULT_MIN_SENTENCE_TOKENS = 5;

/**
 * Merges stop growing a sentence past this many tokens, and a longer unit is cut at its periods between words.
 * Above the longest sentence the reference builds on its own texts (~510 Qwen3 tokens), so it changes nothing
 * there (256 would cost 0.35 F1 on the code trace); about half the paper's average block (~1,150 tokens).
 */
export const DEFAULT_MAX_SENTENCE_TOKENS = 512;

export interface SplitOptions {
  /** Token counter for the short-fragment rule; default `estimateTokens`. */
  countTokens?: (text: string) => number;
  /** Groups with fewer tokens than this merge into a neighbour (default `DEFAULT_MIN_SENTENCE_TOKENS`). */
  minTokens?: number;
  /** Longest sentence merges build; longer units are cut finer (default `DEFAULT_MAX_SENTENCE_TOKENS`). */
  maxTokens?: number;
  /** Split only between `<think>` and `</think>` when present (default true). */
  stripThink?: boolean;
  /** Apply the merge rules (default true); false returns the units of rules 2-3, unmerged, to inspect them. */
  merge?: boolean;
}

export type Span = [number, number];

export interface SplitResult {
  /** Trimmed sentence texts, `sentences[i] === text.slice(...spans[i])`. */
  sentences: string[];
  /** `[start, end)` char offsets into the input text, ordered and non-overlapping. */
  spans: Span[];
  /** The part of the input that was split (inside `<think>...</think>` when present). */
  region: Span;
}

/** Words after which a `.` does not end a sentence (compared case-insensitively, without the final dot). */
export const ABBREVIATIONS: ReadonlySet<string> = new Set([
  "e.g",
  "i.e",
  "etc",
  "vs",
  "cf",
  "al",
  "approx",
  "resp",
  "viz",
  "dr",
  "mr",
  "mrs",
  "ms",
  "prof",
  "jr",
  "sr",
  "fig",
  "figs",
  "eq",
  "eqs",
  "eqn",
  "sec",
  "ch",
  "thm",
  "lem",
  "prop",
  "cor",
  "ref",
  "refs",
  "pp",
  "vol",
  "esp",
  "incl",
  "w.r.t",
  "a.k.a",
  "u.s",
]);

/** The reasoning part of a response: after `<think>` and before `</think>` when present. */
export function reasoningRegion(text: string): Span {
  const open = text.indexOf(THINK_START);
  const start = open >= 0 ? open + THINK_START.length : 0;
  const close = text.indexOf(THINK_END, start);
  return [start, close >= 0 ? close : text.length];
}

/** Whether `text[dot]` (a `.`) ends an abbreviation or a line-start list marker. */
function dotIsNonTerminal(text: string, dot: number, lineStart: number): boolean {
  let w = dot;
  while (w > lineStart && /[A-Za-z.]/.test(text[w - 1])) w--;
  const word = text.slice(w, dot).toLowerCase();
  if (word && ABBREVIATIONS.has(word.replace(/^\.+/, ""))) return true;
  // List marker ("1.", "a.", "iv.") at the start of the line or right after the end of a sentence.
  const before = text.slice(Math.max(lineStart, dot - 12), dot);
  const marker = /(?:^|[.?!:;][ \t]+)(?:\d{1,3}|[A-Za-z]|[ivxlcIVXLC]{1,6})$/.exec(before);
  if (marker && (marker.index > 0 || /^[ \t]*$/.test(text.slice(lineStart, dot - before.length)))) return true;
  if (/^[ \t]*(?:\d{1,3}|[A-Za-z]|[ivxlcIVXLC]{1,6})$/.test(text.slice(lineStart, dot))) return true;
  return false;
}

const SENTENCE_START_RE = /[\p{Lu}\p{N}"'“‘*#`$\\]/u;

/**
 * Whether the `.` at `dot` (matched with the whitespace after it as `match`) stands between two words:
 * "home. Then", "x. (A)". Such a period does not end a sentence at reference granularity (the reference
 * reads word-dot-word as an attribute access across the space); one after math, a bracket or a quote does.
 */
function isPeriodBetweenWords(text: string, dot: number, match: string, next: string): boolean {
  return /^\.\s+$/.test(match) && isWordCode(text.charCodeAt(dot - 1)) && /[\p{L}\p{N}_(]/u.test(next);
}

/** Splits a reasoning trace into structure-aware sentences. See the module comment for the rules. */
export function splitSentences(text: string, opts: SplitOptions = {}): SplitResult {
  const countTokens = opts.countTokens ?? estimateTokens;
  const minTokens = opts.minTokens ?? DEFAULT_MIN_SENTENCE_TOKENS;
  const maxTokens = opts.maxTokens ?? DEFAULT_MAX_SENTENCE_TOKENS;
  const region: Span = opts.stripThink === false ? [0, text.length] : reasoningRegion(text);
  const [from, to] = region;
  if (from >= to) return { sentences: [], spans: [], region };

  const lines = splitLines(text, from, to);
  const code = findCodeBlocks(text, lines);
  const scan = scanInline(text, from, to, code);

  // Lines touched by code or display blocks cannot be derivation lines.
  const taken = new Uint8Array(lines.length);
  for (const b of [...code, ...scan.displayBlocks]) {
    const l0 = lineIndexOf(lines, b.start);
    const l1 = lineIndexOf(lines, Math.max(b.start, b.end - 1));
    for (let l = l0; l <= l1; l++) taken[l] = 1;
  }
  // Display math that does not occupy whole lines also disqualifies its lines.
  for (const r of scan.ranges) {
    if (text.startsWith("$$", r[0]) || text.startsWith("\\[", r[0]) || text.startsWith("\\begin", r[0])) {
      const l0 = lineIndexOf(lines, r[0]);
      const l1 = lineIndexOf(lines, Math.max(r[0], r[1] - 1));
      if (l1 > l0) for (let l = l0; l <= l1; l++) taken[l] = 1;
    }
  }
  const memo = new Map<string, boolean>();
  const derivations = findDerivations(text, lines, taken, memo);
  const blocks = [...code, ...scan.displayBlocks, ...derivations].sort((a, b) => a.start - b.start);

  // Protection mask via a difference array: cut at p is forbidden iff some range has s < p < e.
  const n = to - from;
  const diff = new Int32Array(n + 2);
  const protect = (s: number, e: number) => {
    if (e - s < 2) return;
    diff[s + 1 - from]++;
    diff[e - from]--;
  };
  for (const b of blocks) protect(b.start, b.end);
  for (const r of scan.ranges) protect(r[0], r[1]);
  const blocked = new Uint8Array(n + 1);
  let acc = 0;
  for (let p = 0; p <= n; p++) {
    acc += diff[p];
    blocked[p] = acc > 0 ? 1 : 0;
  }
  const isBlocked = (p: number) => blocked[p - from] === 1;

  const cuts: number[] = [];
  const addCut = (p: number) => {
    if (p > from && p < to && !isBlocked(p)) cuts.push(p);
  };

  // Atomic block edges.
  const blockStarts = new Set<number>();
  const blockEnds = new Set<number>();
  for (const b of blocks) {
    addCut(b.start);
    addCut(b.end);
    blockStarts.add(b.start);
    blockEnds.add(b.end);
  }

  // Newline runs.
  const nlRe = /[^\S\n]*\n\s*/g;
  nlRe.lastIndex = from;
  for (let m = nlRe.exec(text); m && m.index < to; m = nlRe.exec(text)) {
    const s = m.index;
    const e = Math.min(to, m.index + m[0].length);
    let newlines = 0;
    for (let i = s; i < e; i++) if (text.charCodeAt(i) === 10) newlines++;
    if (newlines >= 2) {
      addCut(s);
      continue;
    }
    if (e >= to || s <= from) continue;
    if (blockEnds.has(s) || blockStarts.has(e)) {
      addCut(s);
      continue;
    }
    // A single newline is a space (a hard wrap or a line of a derivation), except before a list item.
    const nlPos = text.indexOf("\n", s);
    const nextLineEnd = text.indexOf("\n", e);
    const nextLine = text.slice(nlPos + 1, nextLineEnd < 0 || nextLineEnd > to ? to : nextLineEnd);
    if (LIST_ITEM_RE.test(nextLine)) addCut(s);
  }

  // Terminal punctuation followed by spaces or one newline.
  const termRe = /(?:[.?!]+|…)[)\]"'”’*_]*(?:[ \t]*\r?\n[ \t]*|[ \t]+)/g;
  termRe.lastIndex = from;
  const softCuts: number[] = []; // periods between words: cut only inside an over-long unit (rule 3)
  for (let m = termRe.exec(text); m && m.index < to; m = termRe.exec(text)) {
    const after = m.index + m[0].length;
    if (after >= to) continue;
    const next = text[after];
    if (next === "\n" || next === "\r" || !SENTENCE_START_RE.test(next)) continue;
    const punct = /^(?:[.?!]+|…)/.exec(m[0])![0];
    if (punct === "…" || /\.\./.test(punct)) continue; // ellipsis
    if (punct === ".") {
      const lineStart = Math.max(from, text.lastIndexOf("\n", m.index - 1) + 1);
      if (dotIsNonTerminal(text, m.index, lineStart)) continue;
      if (isPeriodBetweenWords(text, m.index, m[0], next)) {
        if (!isBlocked(m.index + 1)) softCuts.push(m.index + 1);
        continue;
      }
    }
    addCut(m.index + m[0].trimEnd().length);
  }

  cuts.sort((a, b) => a - b);

  // Units: trimmed pieces between cuts; a piece that is exactly a block keeps the block's kind.
  const blockAt = new Map<number, Block>();
  for (const b of blocks) blockAt.set(b.start, b);
  const units: Unit[] = [];
  let soft = 0; // next soft cut to consider (units come in order)
  const pushUnit = (s: number, e: number, kind: Unit["kind"]) =>
    units.push({ start: s, end: e, kind, tokens: countTokens(text.slice(s, e)) });
  let prev = from;
  const pushPiece = (a: number, b: number) => {
    const s = skipSpace(text, a, b);
    const e = trimEnd(text, s, b);
    if (s >= e) return;
    const blk = blockAt.get(s);
    pushUnit(s, e, blk && blk.end === e ? blk.kind : "text");
    const unit = units[units.length - 1];
    while (soft < softCuts.length && softCuts[soft] <= s) soft++;
    if (unit.tokens <= maxTokens || soft >= softCuts.length || softCuts[soft] >= e) return;
    // Rule 3: an over-long unit is cut at its periods between words too.
    units.pop();
    let pieceStart = s;
    for (; soft < softCuts.length && softCuts[soft] < e; soft++) {
      const pieceEnd = trimEnd(text, pieceStart, softCuts[soft]);
      if (pieceEnd > pieceStart) pushUnit(pieceStart, pieceEnd, "text");
      pieceStart = skipSpace(text, softCuts[soft], e);
    }
    if (pieceStart < e) pushUnit(pieceStart, e, "text");
  };
  for (const c of cuts) {
    if (c <= prev) continue;
    pushPiece(prev, c);
    prev = c;
  }
  pushPiece(prev, to);

  const spans: Span[] =
    opts.merge === false ? units.map((u): Span => [u.start, u.end]) : mergeUnits(text, units, { minTokens, maxTokens });
  return { sentences: spans.map(([s, e]) => text.slice(s, e)), spans, region };
}

/** Naive splitting: after `.`, `?`, `!` followed by whitespace, and at every newline (within the region). */
export function naiveSplit(text: string, opts: { stripThink?: boolean } = {}): string[] {
  const [from, to] = opts.stripThink === false ? [0, text.length] : reasoningRegion(text);
  return text
    .slice(from, to)
    .split(/(?<=[.?!])\s+|\n+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Number of boundaries (sentences - 1) of the naive splitter. */
export function naiveBoundaryCount(text: string, opts: { stripThink?: boolean } = {}): number {
  return Math.max(0, naiveSplit(text, opts).length - 1);
}

export interface SplitStats {
  chars: number;
  naiveSentences: number;
  naiveBoundaries: number;
  sentences: number;
  boundaries: number;
  /** naiveBoundaries / boundaries. */
  reduction: number;
}

/** Naive vs structure-aware counts, for measuring the paper's ~2x reduction. */
export function splitStats(text: string, opts: SplitOptions = {}): SplitStats {
  const naive = naiveSplit(text, { stripThink: opts.stripThink });
  const ours = splitSentences(text, opts);
  const naiveBoundaries = Math.max(0, naive.length - 1);
  const boundaries = Math.max(0, ours.sentences.length - 1);
  return {
    chars: ours.region[1] - ours.region[0],
    naiveSentences: naive.length,
    naiveBoundaries,
    sentences: ours.sentences.length,
    boundaries,
    reduction: boundaries > 0 ? naiveBoundaries / boundaries : naiveBoundaries > 0 ? Infinity : 1,
  };
}
