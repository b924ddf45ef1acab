/**
 * Rule 1 of the sentence splitter (`../split.ts`): where cuts may not go. Finds the atomic line blocks (fenced
 * and indented code, display math, multi-line derivations) and the protected ranges inside paragraphs (inline
 * math and code, URLs, balanced brackets). Works on offsets into the untouched text; decides nothing about
 * where sentences end.
 */
import type { Span } from "../split.js";
import { LIST_ITEM_RE, isSpaceCode, isWordCode, skipSpace, trimEnd } from "./chars.js";
import { isMathText } from "./math-line.js";

/** An atomic line block: `[start, end)` trimmed, never cut inside, both edges cut. */
export interface Block {
  start: number;
  end: number;
  kind: "code" | "math";
}

export interface Line {
  start: number;
  /** End of the line content (the "\n" or the region end). */
  end: number;
  blank: boolean;
}

/** The lines of `text[from, to)`: where each starts and ends (without its "\n") and whether it is blank. */
export function splitLines(text: string, from: number, to: number): Line[] {
  const lines: Line[] = [];
  let s = from;
  while (s <= to) {
    let e = text.indexOf("\n", s);
    if (e < 0 || e > to) e = to;
    let blank = true;
    for (let i = s; i < e; i++) {
      if (!isSpaceCode(text.charCodeAt(i))) {
        blank = false;
        break;
      }
    }
    lines.push({ start: s, end: e, blank });
    if (e >= to) break;
    s = e + 1;
  }
  return lines;
}

/** Index of the line containing offset `pos` (binary search). */
export function lineIndexOf(lines: Line[], pos: number): number {
  let lo = 0;
  let hi = lines.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lines[mid].start <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const FENCE_OPEN_RE = /^ {0,3}(`{3,}|~{3,})/;

/** Fenced and indented code blocks (line based). */
export function findCodeBlocks(text: string, lines: Line[]): Block[] {
  const blocks: Block[] = [];
  let prevNonBlank = -1;
  let afterBlock = false;
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l];
    const content = text.slice(line.start, line.end);
    const fence = FENCE_OPEN_RE.exec(content);
    if (fence) {
      const ch = fence[1][0];
      const len = fence[1].length;
      // A closing run may carry prose after it on its line (model output often does): the block ends
      // after the run and the rest of the line is text.
      const closeRe = new RegExp(`^ {0,3}\\${ch}{${len},}`);
      let l2 = l + 1;
      let close: RegExpExecArray | null = null;
      for (; l2 < lines.length; l2++) {
        close = closeRe.exec(text.slice(lines[l2].start, lines[l2].end));
        if (close) break;
      }
      if (l2 >= lines.length) l2 = lines.length - 1;
      blocks.push({
        start: line.start + fence.index + (content.length - content.trimStart().length),
        end: close ? lines[l2].start + close[0].length : trimEnd(text, line.start, lines[l2].end),
        kind: "code",
      });
      l = l2;
      prevNonBlank = l2;
      afterBlock = true;
      continue;
    }
    if (line.blank) continue;
    const indented = /^(?: {4,}|\t)\S/.test(content);
    const blankBefore = l === 0 || lines[l - 1].blank || afterBlock;
    const prevIsList =
      prevNonBlank >= 0 && LIST_ITEM_RE.test(text.slice(lines[prevNonBlank].start, lines[prevNonBlank].end));
    if (indented && blankBefore && !prevIsList) {
      let last = l;
      let l2 = l + 1;
      while (l2 < lines.length) {
        const c2 = text.slice(lines[l2].start, lines[l2].end);
        if (lines[l2].blank) {
          l2++;
          continue;
        }
        if (/^(?: {4,}|\t)/.test(c2) && !FENCE_OPEN_RE.test(c2)) {
          last = l2;
          l2++;
          continue;
        }
        break;
      }
      blocks.push({
        start: skipSpace(text, line.start, line.end),
        end: trimEnd(text, line.start, lines[last].end),
        kind: "code",
      });
      l = last;
      prevNonBlank = last;
      afterBlock = true;
      continue;
    }
    prevNonBlank = l;
    afterBlock = false;
  }
  return blocks;
}

/** Finds the index of `needle` at or after `from` that is not preceded by a backslash; -1 if none before `limit`. */
export function findUnescaped(text: string, needle: string, from: number, limit: number): number {
  let j = text.indexOf(needle, from);
  while (j >= 0 && j < limit) {
    if (text.charCodeAt(j - 1) !== 92 /* \ */) return j;
    j = text.indexOf(needle, j + 1);
  }
  return -1;
}

export interface Scan {
  /** Protected ranges (no cut strictly inside). */
  ranges: Span[];
  /** Display math ranges that occupy whole lines (atomic line blocks). */
  displayBlocks: Block[];
}

const OPENERS = "([{";
const CLOSERS = ")]}";

/**
 * Character scan outside code blocks: display math (may cross paragraphs), and per paragraph inline math,
 * inline code, URLs and balanced brackets.
 */
export function scanInline(text: string, from: number, to: number, code: Block[]): Scan {
  const ranges: Span[] = [];
  const displayBlocks: Block[] = [];
  // Paragraph separators: whitespace runs with >= 2 newlines.
  const seps: Span[] = [];
  const sepRe = /\n[ \t\r\f\v]*\n\s*/g;
  sepRe.lastIndex = from;
  for (let m = sepRe.exec(text); m && m.index < to; m = sepRe.exec(text)) seps.push([m.index, m.index + m[0].length]);
  // Code blocks also end paragraphs.
  const stops: Span[] = [...seps, ...code.map((b): Span => [b.start, b.end])].sort((a, b) => a[0] - b[0]);

  let k = 0; // next stop with stop[1] > i
  let stack: { ch: string; pos: number }[] = [];
  let i = from;
  const advanceStops = () => {
    let crossed = false;
    while (k < stops.length && stops[k][1] <= i) {
      k++;
      crossed = true;
    }
    if (crossed) stack = [];
  };
  // Display math must not run into a code block.
  let cp = 0; // code blocks are sorted and i only grows
  const nextCodeAfter = (p: number) => {
    while (cp < code.length && code[cp].start < p) cp++;
    return cp < code.length ? code[cp].start : to;
  };
  /** Past display math closed (2 characters) at `close`, recorded, if it ends before code; else past its opener. */
  const skipDisplay = (at: number, close: number): number => {
    if (close < 0 || close + 2 > nextCodeAfter(at)) return at + 2;
    addDisplay(text, at, close + 2, from, to, ranges, displayBlocks);
    return close + 2;
  };
  while (i < to) {
    advanceStops();
    if (k < stops.length && stops[k][0] <= i) {
      // Inside a separator or code block: jump over it.
      i = stops[k][1];
      stack = [];
      continue;
    }
    const limit = k < stops.length ? stops[k][0] : to;
    const c = text[i];
    if (c === "\\") {
      const n = text[i + 1];
      if (n === "(") {
        const j = text.indexOf("\\)", i + 2);
        if (j >= 0 && j < limit) {
          ranges.push([i, j + 2]);
          i = j + 2;
          continue;
        }
        i += 2;
        continue;
      }
      if (n === "[") {
        i = skipDisplay(i, text.indexOf("\\]", i + 2));
        continue;
      }
      if (text.startsWith("begin{", i + 1)) {
        const close = text.indexOf("}", i + 7);
        const name = close > 0 && close - (i + 7) <= 40 ? text.slice(i + 7, close) : "";
        if (name && /^[A-Za-z*]+$/.test(name)) {
          const end = findEnvEnd(text, name, close + 1, nextCodeAfter(i));
          if (end > 0) {
            addDisplay(text, i, end, from, to, ranges, displayBlocks);
            i = end;
            continue;
          }
        }
        i += 1;
        continue;
      }
      i += n === "\\" || n === "$" || n === "`" ? 2 : 1;
      continue;
    }
    if (c === "$") {
      if (text[i + 1] === "$") {
        i = skipDisplay(i, findUnescaped(text, "$$", i + 2, nextCodeAfter(i)));
        continue;
      }
      if (i + 1 < limit && !isSpaceCode(text.charCodeAt(i + 1))) {
        const j = findUnescaped(text, "$", i + 1, limit);
        if (j > i + 1) {
          ranges.push([i, j + 1]);
          i = j + 1;
          continue;
        }
      }
      i += 1;
      continue;
    }
    if (c === "`") {
      let n = 1;
      while (text[i + n] === "`") n++;
      const run = "`".repeat(n);
      let j = text.indexOf(run, i + n);
      while (j >= 0 && j < limit && text[j + n] === "`") {
        let e = j;
        while (text[e] === "`") e++;
        j = text.indexOf(run, e);
      }
      if (j >= 0 && j < limit) {
        ranges.push([i, j + n]);
        i = j + n;
        continue;
      }
      i += n;
      continue;
    }
    if (
      (text.startsWith("http", i) || text.startsWith("www.", i)) &&
      (i === from || !isWordCode(text.charCodeAt(i - 1)))
    ) {
      const m = /^(?:https?:\/\/|www\.)\S+/.exec(text.slice(i, Math.min(limit, i + 2048)));
      if (m) {
        let url = m[0];
        url = url.replace(/[.,;:!?'"”’]+$/, "");
        while (url.endsWith(")") && (url.match(/\(/g)?.length ?? 0) < (url.match(/\)/g)?.length ?? 0))
          url = url.slice(0, -1).replace(/[.,;:!?'"”’]+$/, "");
        if (url.length > 8) {
          ranges.push([i, i + url.length]);
          i += url.length;
          continue;
        }
      }
    }
    const o = OPENERS.indexOf(c);
    if (o >= 0) {
      stack.push({ ch: c, pos: i });
    } else {
      const cl = CLOSERS.indexOf(c);
      if (cl >= 0) {
        const want = OPENERS[cl];
        for (let d = stack.length - 1; d >= 0; d--) {
          if (stack[d].ch === want) {
            ranges.push([stack[d].pos, i + 1]);
            stack.length = d;
            break;
          }
        }
      }
    }
    i += 1;
  }
  return { ranges, displayBlocks };
}

function findEnvEnd(text: string, name: string, from: number, limit: number): number {
  const escaped = name.replace(/\*/g, "\\*");
  const re = new RegExp(`\\\\(begin|end)\\{${escaped}\\}`, "g");
  re.lastIndex = from;
  let depth = 1;
  for (let m = re.exec(text); m && m.index < limit; m = re.exec(text)) {
    depth += m[1] === "begin" ? 1 : -1;
    if (depth === 0) return m.index + m[0].length <= limit ? m.index + m[0].length : -1;
  }
  return -1;
}

function addDisplay(
  text: string,
  s: number,
  e: number,
  from: number,
  to: number,
  ranges: Span[],
  blocks: Block[],
): void {
  ranges.push([s, e]);
  let a = s;
  while (a > from && (text[a - 1] === " " || text[a - 1] === "\t")) a--;
  const ownLineStart = a === from || text[a - 1] === "\n";
  let b = e;
  while (b < to && /[ \t\r.,;:]/.test(text[b])) b++;
  const ownLineEnd = b === to || text[b] === "\n";
  if (ownLineStart && ownLineEnd) blocks.push({ start: s, end: trimEnd(text, s, b), kind: "math" });
}

/** Multi-line derivations: runs of >= 2 adjacent math lines outside other blocks. */
export function findDerivations(text: string, lines: Line[], taken: Uint8Array, memo: Map<string, boolean>): Block[] {
  const blocks: Block[] = [];
  let runStart = -1;
  let runEnd = -1;
  const flush = () => {
    if (runStart >= 0 && runEnd > runStart) {
      blocks.push({
        start: skipSpace(text, lines[runStart].start, lines[runStart].end),
        end: trimEnd(text, lines[runStart].start, lines[runEnd].end),
        kind: "math",
      });
    }
    runStart = -1;
    runEnd = -1;
  };
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l];
    const math = !line.blank && !taken[l] && isMathText(text.slice(line.start, line.end), memo);
    if (math) {
      if (runStart < 0) runStart = l;
      runEnd = l;
    } else {
      flush();
    }
  }
  flush();
  return blocks;
}
