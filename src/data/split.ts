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
 *      made of at least as many of the same char (or the end of the region if unclosed).       [atomic, code]
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
 *    - a single newline cuts unless it looks like a hard wrap: the previous line does not end with a
 *      sentence terminator (`.?!:;`, ignoring closing quotes/brackets/emphasis, abbreviations and ellipses
 *      do not count) and the next line starts with a lowercase letter and is not a list item. Hence a new
 *      list item, heading or capitalised line always starts a new sentence;
 *    - inside a line, after a run of `.`, `?`, `!` (plus closing `)]"'”’*_`) followed by spaces and then an
 *      uppercase letter, digit, quote, `*`, `#`, `` ` ``, `$` or `\`; except after an ellipsis (`..`, `…`),
 *      an abbreviation (see `ABBREVIATIONS`), or a list marker (`1.`, `a.`, `iv.`) that starts the line or
 *      follows the end of a sentence.
 *      Decimals never cut since a cut needs whitespace after the dot.
 *
 * 3. Merges over the resulting units (each trimmed, empty ones dropped):
 *    a. consecutive math units merge (a unit is math if it is a display-math/derivation block or every
 *       non-empty line of it is a math line);
 *    b. a unit ending (ignoring trailing `*`/`_` emphasis) with `:`, `,`, `=`, `≈`, `⇒`, `→`, `=>`,
 *       `\implies`, `\Rightarrow`, `\iff` or `\to` joins the next unit (code blocks excepted), and so does a
 *       heading: a unit that is a whole line `# ...` or a whole line in bold (`**Final Answer**`, `__Step 2__`);
 *    c. a unit starting (after markdown `*`, `_`, `>`, `#`) with a continuation word — Therefore, Thus,
 *       Hence, So, Consequently, Accordingly, Where (any case, whole word, e.g. "So," / "so that") or `∴` —
 *       joins the previous unit (code blocks excepted);
 *    d. finally, a group with fewer than `minTokens` (default 5) tokens joins the previous group, or the
 *       next one when it is the first.
 */
import { THINK_END, THINK_START } from "../format/tokens.js";

export interface SplitOptions {
  /** Token counter for the short-fragment rule; default `estimateTokens`. */
  countTokens?: (text: string) => number;
  /** Groups with fewer tokens than this merge into a neighbour (default 5). */
  minTokens?: number;
  /** Split only between `<think>` and `</think>` when present (default true). */
  stripThink?: boolean;
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

/** Words at the start of a unit that make it continue the previous one (merge rule c). */
const CONTINUATION_RE = /^[*_>#\s]*(?:(?:therefore|thus|hence|so|consequently|accordingly|where)(?![\p{L}\p{N}_])|∴)/iu;
/** Endings that make a unit continue into the next one (merge rule b). */
const JOINER_END_RE = /(?:[:,=≈⇒→]|=>|\\implies|\\Rightarrow|\\iff|\\to)$/;
/** A heading unit: `# title` or a line that is entirely bold. */
const HEADING_RE = /^(?:#{1,6}[ \t][^\n]*|\*\*[^*\n]+\*\*|__[^_\n]+__)$/;
/** A list item marker at the start of a line. */
const LIST_ITEM_RE =
  /^[ \t]*(?:[-*+•‣◦][ \t]+\S|(?:\d{1,3}|[A-Za-z]|[ivxlcIVXLC]{1,6})[.)][ \t]+\S|\((?:\d{1,3}|[A-Za-z]|[ivxlc]{1,6})\)[ \t]+\S)/;
/** Function/operator names that do not count as prose words in `isMathLine`. */
const MATH_WORDS: ReadonlySet<string> = new Set([
  "sqrt",
  "sin",
  "cos",
  "tan",
  "cot",
  "sec",
  "csc",
  "arcsin",
  "arccos",
  "arctan",
  "sinh",
  "cosh",
  "tanh",
  "log",
  "ln",
  "lg",
  "exp",
  "lim",
  "max",
  "min",
  "sup",
  "inf",
  "mod",
  "gcd",
  "lcm",
  "det",
  "arg",
  "deg",
  "pi",
  "dx",
  "dy",
  "dt",
  "mod",
]);
const MATH_OP_CODES: ReadonlySet<number> = new Set(Array.from("=<>≤≥≈≠±∓×÷·*/^+-−√∑∏∫→⇒⇔∞", (ch) => ch.charCodeAt(0)));
const MATH_OP_COMMANDS: ReadonlySet<string> = new Set([
  "frac",
  "dfrac",
  "tfrac",
  "sqrt",
  "cdot",
  "times",
  "div",
  "le",
  "ge",
  "leq",
  "geq",
  "neq",
  "ne",
  "approx",
  "pm",
  "mp",
  "sum",
  "prod",
  "int",
  "implies",
  "Rightarrow",
  "iff",
  "equiv",
  "to",
]);
const STARTS_WITH_RELATION_RE =
  /^(?:=|≈|≠|≤|≥|<|>|⇒|⇔|→|\\(?:approx|implies|Rightarrow|iff|le|ge|leq|geq|neq|equiv|to)(?![A-Za-z]))/;

/** Default token estimate: runs of letters/digits count one each, every other non-space char counts one. */
export function estimateTokens(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isWordCode(c)) {
      if (!inWord) n++;
      inWord = true;
    } else {
      inWord = false;
      if (!isSpaceCode(c)) n++;
    }
  }
  return n;
}

/** Exactly the chars JavaScript's `\s` / `String.prototype.trim` treat as whitespace. */
function isSpaceCode(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

function isAsciiLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

function isWordCode(c: number): boolean {
  if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return true;
  if (c < 128) return false;
  return /[\p{L}\p{N}]/u.test(String.fromCharCode(c));
}

/** The reasoning part of a response: after `<think>` and before `</think>` when present. */
export function reasoningRegion(text: string): Span {
  const open = text.indexOf(THINK_START);
  const start = open >= 0 ? open + THINK_START.length : 0;
  const close = text.indexOf(THINK_END, start);
  return [start, close >= 0 ? close : text.length];
}

/**
 * Whether one line is "mostly math" (a derivation step). After dropping LaTeX commands and math function
 * names, prose words are runs of >= 2 ASCII letters. A line is math when it is not a list item or heading and
 *  - it is a single inline/display math span (optionally followed by `.,;:`), or
 *  - it starts with a relation (`=`, `≈`, `<`, `≤`, `⇒`, `\implies`, ...) and has <= 3 prose words, or
 *  - it has no prose word and at least one operator, or
 *  - it has >= 3 operators, <= 2 prose words, and prose-word letters are <= 1/3 of its non-space chars.
 */
export function isMathLine(line: string): boolean {
  const s = line.trim();
  if (!s) return false;
  if (LIST_ITEM_RE.test(s) || s.startsWith("#")) return false;
  if (isSingleMathSpan(s)) return true;
  // One pass: prose words (runs of >= 2 ASCII letters that are not math names, outside LaTeX commands),
  // operators (symbols and operator commands) and non-space chars.
  let words = 0;
  let wordChars = 0;
  let ops = 0;
  let nonSpace = 0;
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    if (c === 92 /* \ */ && isAsciiLetter(s.charCodeAt(i + 1))) {
      let j = i + 1;
      while (j < s.length && isAsciiLetter(s.charCodeAt(j))) j++;
      if (MATH_OP_COMMANDS.has(s.slice(i + 1, j))) ops++;
      nonSpace += j - i;
      i = j;
      continue;
    }
    if (isAsciiLetter(c)) {
      let j = i + 1;
      while (j < s.length && isAsciiLetter(s.charCodeAt(j))) j++;
      const len = j - i;
      if (len >= 2 && (len > 6 || !MATH_WORDS.has(s.slice(i, j).toLowerCase()))) {
        words++;
        wordChars += len;
      }
      nonSpace += len;
      i = j;
      continue;
    }
    if (!isSpaceCode(c)) {
      nonSpace++;
      if (MATH_OP_CODES.has(c)) ops++;
    }
    i++;
  }
  if (words <= 3 && STARTS_WITH_RELATION_RE.test(s)) return true;
  if (words === 0 && ops >= 1) return true;
  if (ops >= 3 && words <= 2) return wordChars * 3 <= nonSpace;
  return false;
}

function isSingleMathSpan(s: string): boolean {
  const t = s.replace(/[.,;:]+$/, "");
  const pairs: [string, string][] = [
    ["$$", "$$"],
    ["\\[", "\\]"],
    ["\\(", "\\)"],
    ["$", "$"],
  ];
  for (const [o, c] of pairs) {
    if (t.length > o.length + c.length && t.startsWith(o) && t.endsWith(c)) {
      const inner = t.slice(o.length, t.length - c.length);
      if (!inner.includes(c) && !(o === "$" && inner.includes("$"))) return true;
    }
  }
  return false;
}

/** Whether a (trimmed) unit is math: every non-empty line is a math line (`memo` caches per line). */
function isMathText(text: string, memo: Map<string, boolean>): boolean {
  let any = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    let m = memo.get(line);
    if (m === undefined) {
      m = isMathLine(line);
      memo.set(line, m);
    }
    if (!m) return false;
    any = true;
  }
  return any;
}

interface Block {
  start: number;
  end: number;
  kind: "code" | "math";
}

interface Line {
  start: number;
  /** End of the line content (the "\n" or the region end). */
  end: number;
  blank: boolean;
}

function splitLines(text: string, from: number, to: number): Line[] {
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
function lineIndexOf(lines: Line[], pos: number): number {
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
function findCodeBlocks(text: string, lines: Line[]): Block[] {
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
      const closeRe = new RegExp(`^ {0,3}\\${ch}{${len},}[ \\t\\r]*$`);
      let l2 = l + 1;
      while (l2 < lines.length && !closeRe.test(text.slice(lines[l2].start, lines[l2].end))) l2++;
      if (l2 >= lines.length) l2 = lines.length - 1;
      blocks.push({
        start: line.start + fence.index + (content.length - content.trimStart().length),
        end: trimEnd(text, line.start, lines[l2].end),
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

function skipSpace(text: string, from: number, to: number): number {
  while (from < to && isSpaceCode(text.charCodeAt(from))) from++;
  return from;
}

function trimEnd(text: string, from: number, to: number): number {
  while (to > from && isSpaceCode(text.charCodeAt(to - 1))) to--;
  return to;
}

/** Finds the index of `needle` at or after `from` that is not preceded by a backslash; -1 if none before `limit`. */
function findUnescaped(text: string, needle: string, from: number, limit: number): number {
  let j = text.indexOf(needle, from);
  while (j >= 0 && j < limit) {
    if (text.charCodeAt(j - 1) !== 92 /* \ */) return j;
    j = text.indexOf(needle, j + 1);
  }
  return -1;
}

interface Scan {
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
function scanInline(text: string, from: number, to: number, code: Block[]): Scan {
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
function findDerivations(text: string, lines: Line[], taken: Uint8Array, memo: Map<string, boolean>): Block[] {
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

function stripClosers(text: string, from: number, end: number): number {
  while (end > from && /[)\]"'”’*_]/.test(text[end - 1])) end--;
  return end;
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

/** Whether the line content ending at `end` ends a sentence (for the newline rule). */
function lineEndsSentence(text: string, lineStart: number, end: number): boolean {
  const e = stripClosers(text, lineStart, end);
  if (e <= lineStart) return end > lineStart; // only closers (e.g. "**"): treat as ended
  const c = text[e - 1];
  if (c === "?" || c === "!" || c === ":" || c === ";") return true;
  if (c === ".") {
    if (text[e - 2] === ".") return false; // ellipsis
    return !dotIsNonTerminal(text, e - 1, lineStart);
  }
  if (c === "…") return false;
  return false;
}

const SENTENCE_START_RE = /[\p{Lu}\p{N}"'“‘*#`$\\]/u;

function startsLower(text: string, pos: number): boolean {
  return /\p{Ll}/u.test(text[pos] ?? "");
}

/** Splits a reasoning trace into structure-aware sentences. See the module comment for the rules. */
export function splitSentences(text: string, opts: SplitOptions = {}): SplitResult {
  const countTokens = opts.countTokens ?? estimateTokens;
  const minTokens = opts.minTokens ?? 5;
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
    const nlPos = text.indexOf("\n", s);
    const nextLineEnd = text.indexOf("\n", e);
    const nextLine = text.slice(nlPos + 1, nextLineEnd < 0 || nextLineEnd > to ? to : nextLineEnd);
    if (LIST_ITEM_RE.test(nextLine)) {
      addCut(s);
      continue;
    }
    const prevLineStart = text.lastIndexOf("\n", s - 1) + 1;
    const hardWrap = startsLower(text, e) && !lineEndsSentence(text, Math.max(prevLineStart, from), s);
    if (!hardWrap) addCut(s);
  }

  // Terminal punctuation inside a line.
  const termRe = /(?:[.?!]+|…)[)\]"'”’*_]*[ \t]+/g;
  termRe.lastIndex = from;
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
    }
    addCut(m.index + m[0].trimEnd().length);
  }

  cuts.sort((a, b) => a - b);

  // Units: trimmed pieces between cuts.
  interface Unit {
    s: number;
    e: number;
    math: boolean;
    code: boolean;
  }
  const blockAt = new Map<number, Block>();
  for (const b of blocks) blockAt.set(b.start, b);
  const units: Unit[] = [];
  let prev = from;
  const pushPiece = (a: number, b: number) => {
    const s = skipSpace(text, a, b);
    const e = trimEnd(text, s, b);
    if (s >= e) return;
    const blk = blockAt.get(s);
    if (blk && blk.end === e) {
      units.push({ s, e, math: blk.kind === "math", code: blk.kind === "code" });
    } else {
      units.push({ s, e, math: isMathText(text.slice(s, e), memo), code: false });
    }
  };
  for (const c of cuts) {
    if (c <= prev) continue;
    pushPiece(prev, c);
    prev = c;
  }
  pushPiece(prev, to);

  // Merge rules a-c: decide per gap whether unit i joins unit i+1.
  const groups: Span[] = [];
  for (let i = 0; i < units.length; i++) {
    const u = units[i];
    if (i > 0) {
      const p = units[i - 1];
      const join =
        (p.math && u.math) ||
        (!p.code && (endsWithJoiner(text, p.s, p.e) || isHeadingLine(text, p.s, p.e, from, to))) ||
        (!u.code && CONTINUATION_RE.test(text.slice(u.s, Math.min(u.e, u.s + 40))));
      if (join) {
        groups[groups.length - 1][1] = u.e;
        continue;
      }
    }
    groups.push([u.s, u.e]);
  }

  // Merge rule d: short fragments join the previous group (or the next one while nothing precedes them).
  const spans: Span[] = [];
  let pending: number | null = null; // start of a short leading group waiting for the next one
  for (const g of groups) {
    if (pending !== null) {
      const merged: Span = [pending, g[1]];
      pending = null;
      if (countTokens(text.slice(merged[0], merged[1])) < minTokens) pending = merged[0];
      else spans.push(merged);
      continue;
    }
    if (countTokens(text.slice(g[0], g[1])) < minTokens) {
      if (spans.length > 0) spans[spans.length - 1][1] = g[1];
      else pending = g[0];
      continue;
    }
    spans.push([g[0], g[1]]);
  }
  if (pending !== null) spans.push([pending, groups[groups.length - 1][1]]);

  return { sentences: spans.map(([s, e]) => text.slice(s, e)), spans, region };
}

/** Whether [s, e) is a heading that occupies its whole line. */
function isHeadingLine(text: string, s: number, e: number, from: number, to: number): boolean {
  if (e - s > 200 || !HEADING_RE.test(text.slice(s, e))) return false;
  let a = s;
  while (a > from && (text[a - 1] === " " || text[a - 1] === "\t")) a--;
  let b = e;
  while (b < to && (text[b] === " " || text[b] === "\t" || text[b] === "\r")) b++;
  return (a === from || text[a - 1] === "\n") && (b === to || text[b] === "\n");
}

function endsWithJoiner(text: string, s: number, e: number): boolean {
  while (e > s && (text[e - 1] === "*" || text[e - 1] === "_" || isSpaceCode(text.charCodeAt(e - 1)))) e--;
  return JOINER_END_RE.test(text.slice(Math.max(s, e - 12), e));
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
