/**
 * Whether a line of a reasoning trace is "mostly math" (a derivation step), for the splitter's derivation
 * blocks (rule 1 of `../split.ts`). Counts prose words, operators and non-space chars in one pass; LaTeX
 * commands and function names (`sqrt`, `log`, ...) are not prose.
 */
import { LIST_ITEM_RE, isAsciiLetter, isSpaceCode } from "./chars.js";

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
export function isMathText(text: string, memo: Map<string, boolean>): boolean {
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
