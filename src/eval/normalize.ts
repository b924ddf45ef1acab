/**
 * String normalisation of math answers, and their structure (scalars, ordered tuples/intervals,
 * unordered sets/solution lists).
 *
 * `normalizeAnswer` applies, in this order:
 *   - unwrap the last `\boxed{}` when there is one, and surrounding `$..$`, `$$..$$`, `\(..\)`, `\[..\]`;
 *   - drop `\displaystyle`, `\left`/`\right` (and their `.` null delimiters), `\big`-family sizes;
 *   - `\dfrac`/`\tfrac` -> `\frac`, `\dbinom`/`\tbinom` -> `\binom`;
 *   - spacing `\!` `\,` `\;` `\:` `\ ` `~` `\quad` `\qquad` -> nothing; `{,}` -> `,`;
 *   - degrees (`^\circ`, `^{\circ}`, `°`, `\degree`, trailing "degrees"), percent (`\%`, `%`, "percent"),
 *     dollar signs (`\$`, a leading `$` before a digit);
 *   - `\text{}`-like wrappers (`\text`, `\textbf`, `\textit`, `\textrm`, `\mathrm`, `\mathbf`, `\mbox`):
 *     dropped when the content is a unit (UNIT_WORDS) or when it is trailing words after a quantity
 *     (`5 \text{ apples}` -> `5`), otherwise replaced by their content;
 *   - trailing bare units from UNIT_WORDS (multi-letter units after a number or expression; single-letter
 *     units `m s h g l` only after a space following a digit), with an optional `^2`/`^3`;
 *   - " or " / " and " between solutions -> `,`;
 *   - trailing sentence punctuation; all whitespace (one space is kept between a command and a following
 *     letter, so `\pi r` does not become `\pir`);
 *   - `\le`->`\leq`, `\ge`->`\geq`, `\ne`->`\neq`, `\varnothing`->`\emptyset`, unicode `≤ ≥ ≠ ∞ π √ −`;
 *   - a leading single-variable assignment `x =`, `f(x) =`, `\theta =`, `a_1 =`, `x \in` when the rest holds no
 *     other `=` (so an equation system keeps its `=`);
 *   - `\binom{n}{k}` of integer literals -> its value (the engine cannot parse `\binom`);
 *   - brace-less arguments: `\frac12` -> `\frac{1}{2}`, `\sqrt2` -> `\sqrt{2}`, `x^{2}` -> `x^2`;
 *   - thousands separators: only when the WHOLE answer is a number in groups of exactly three digits
 *     (`1,000`, `12,345.5`); inside brackets or braces commas always separate items, so `(1,000)` stays a
 *     pair and `\{1,000\}` a set;
 *   - numbers: `.5` -> `0.5`, `0.50` -> `0.5`, `5.0` -> `5`, a leading `+` dropped;
 *   - a mixed number as the whole answer (`2\frac{1}{2}` with numerator < denominator) -> `\frac{5}{2}`;
 *   - purely alphabetic answers of two or more letters are lower-cased ("Yes" = "yes").
 *
 * Structure (`parseStructure`), decided on the normalised string:
 *   - order does NOT matter for sets `\{..\}`, bare comma lists of solutions (`1, 2` = `2, 1`, including
 *     `x = 1, x = 2` and `1 \text{ or } 2`), unions of intervals, and the two values of a single `\pm`;
 *   - order DOES matter for anything in brackets: tuples/points `(1,2)`, intervals `[1,3)` (bracket kinds
 *     must match too, so `[1,3)` != `(1,3]`), vectors `\langle..\rangle`, `[..]` lists.
 */

import { lastBoxed, matchBrace } from "./extract.js";

/** Units removed from answers (case-insensitive for multi-letter ones). Plurals are listed explicitly. */
export const UNIT_WORDS: readonly string[] = [
  // length
  "mm",
  "cm",
  "km",
  "millimeter",
  "millimeters",
  "centimeter",
  "centimeters",
  "meter",
  "meters",
  "metre",
  "metres",
  "kilometer",
  "kilometers",
  "inch",
  "inches",
  "in",
  "ft",
  "foot",
  "feet",
  "yd",
  "yard",
  "yards",
  "mile",
  "miles",
  // area / volume / generic
  "unit",
  "units",
  "sq",
  "square",
  "cubic",
  "sq units",
  "square units",
  "cubic units",
  "square feet",
  "square meters",
  "square inches",
  "square centimeters",
  "cubic feet",
  "cubic meters",
  "cubic inches",
  "cubic centimeters",
  "liter",
  "liters",
  "litre",
  "litres",
  "ml",
  "gallon",
  "gallons",
  // mass
  "mg",
  "kg",
  "gram",
  "grams",
  "kilogram",
  "kilograms",
  "lb",
  "lbs",
  "pound",
  "pounds",
  "ounce",
  "ounces",
  "oz",
  // time
  "sec",
  "secs",
  "second",
  "seconds",
  "min",
  "mins",
  "minute",
  "minutes",
  "hr",
  "hrs",
  "hour",
  "hours",
  "day",
  "days",
  "week",
  "weeks",
  "month",
  "months",
  "year",
  "years",
  // speed
  "mph",
  "kph",
  "km/h",
  "m/s",
  // money
  "dollar",
  "dollars",
  "cent",
  "cents",
  "euro",
  "euros",
  // angle / ratio
  "degree",
  "degrees",
  "deg",
  "radian",
  "radians",
  "rad",
  "percent",
  "percentage",
];

/** Single-letter units, only stripped as `<digit> <letter>` at the end or inside `\text{}`. */
const SINGLE_LETTER_UNITS = ["m", "s", "h", "g", "l"];

const UNIT_SET = new Set(UNIT_WORDS.map((u) => u.toLowerCase()));

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

const UNIT_ALT = [...UNIT_WORDS]
  .sort((a, b) => b.length - a.length)
  .map((u) => escapeRe(u).replace(/ /g, "\\s+"))
  .join("|");
const TRAILING_UNIT_RE = new RegExp(`(?<=[\\d}).\\s])\\s*(?:${UNIT_ALT})(?:\\s*\\^\\s*\\{?[23]\\}?|²|³)?\\s*$`, "i");
const TRAILING_SINGLE_UNIT_RE = new RegExp(`(?<=\\d)\\s+(?:${SINGLE_LETTER_UNITS.join("|")})(?:\\^\\{?[23]\\}?)?\\s*$`);

function isUnitText(content: string): boolean {
  const t = content
    .trim()
    .replace(/\s*\^\s*\{?[23]\}?$/, "")
    .replace(/[²³]$/, "")
    .replace(/\.$/, "")
    .toLowerCase()
    .replace(/\s+/g, " ");
  return UNIT_SET.has(t) || SINGLE_LETTER_UNITS.includes(t);
}

const TEXT_CMDS =
  /\\(?:text|textbf|textit|textrm|textnormal|textsf|texttt|mathrm|mathbf|mathit|mathsf|mathtt|mbox|hbox)\s*\{/g;

/** Replace `\text{...}`-like wrappers by their content, dropping units and trailing words after a quantity. */
function unwrapTextCommands(s: string): string {
  for (let guard = 0; guard < 50; guard++) {
    TEXT_CMDS.lastIndex = 0;
    const m = TEXT_CMDS.exec(s);
    if (!m) break;
    const open = m.index + m[0].length - 1;
    const close = matchBrace(s, open);
    if (close < 0) {
      s = s.slice(0, m.index) + s.slice(open + 1); // unbalanced: drop the command, keep the rest
      continue;
    }
    const content = s.slice(open + 1, close);
    const before = s.slice(0, m.index);
    const after = s.slice(close + 1);
    const atEnd = /^\s*(?:\^\s*\{?[23]\}?)?\s*[.]?\s*$/.test(after);
    const wordsOnly = /^[\sA-Za-z.'/-]*$/.test(content) && /[A-Za-z]/.test(content);
    let replacement: string;
    let rest = after;
    if (isUnitText(content)) replacement = " ";
    else if (atEnd && wordsOnly && /[\d})]/.test(before) && !/^\s*(?:or|and)\s*$/i.test(content)) replacement = " ";
    else replacement = ` ${content} `;
    if (replacement === " ") rest = after.replace(/^\s*\^\s*\{?[23]\}?/, ""); // `\text{cm}^2`
    s = before + replacement + rest;
  }
  return s;
}

/** Remove one level of whole-string math delimiters; repeated until none applies. */
function stripDelimiters(s: string): string {
  for (;;) {
    const t = s.trim();
    let u = t;
    if (/^\$\$[\s\S]*\$\$$/.test(t) && t.length >= 4) u = t.slice(2, -2);
    else if (/^\$[\s\S]*\$$/.test(t) && t.length >= 2) u = t.slice(1, -1);
    else if (/^\\\([\s\S]*\\\)$/.test(t) || /^\\\[[\s\S]*\\\]$/.test(t)) u = t.slice(2, -2);
    if (u === t) return t;
    s = u;
  }
}

/** Remove whitespace, keeping one space between a `\command` and a following letter or digit. */
function removeSpaces(s: string): string {
  return s.replace(/\s+/g, (_m, off: number, whole: string) => {
    const prev = whole.slice(0, off);
    const next = whole[off + _m.length] ?? "";
    return /\\[a-zA-Z]+$/.test(prev) && /[a-zA-Z0-9]/.test(next) ? " " : "";
  });
}

const ARG = String.raw`(\d|[a-zA-Z]|\\[a-zA-Z]+|\{[^{}]*\})`;
const FRAC_RE = new RegExp(String.raw`\\frac\s*${ARG}\s*${ARG}`, "g");
const brace = (a: string) => (a.startsWith("{") ? a : `{${a}}`);

function canonicalNumber(intPart: string, frac: string | undefined): string {
  let i = intPart.replace(/^0+(?=\d)/, "");
  if (i === "") i = "0";
  if (frac === undefined) return i;
  const f = frac.replace(/0+$/, "");
  return f ? `${i}.${f}` : i;
}

/** `\binom{n}{k}` of integer literals (the engine has no `\binom`); null when out of range. */
function binomialLiteral(n: number, k: number): string | null {
  if (k > n || n > 2000) return null;
  let r = 1n;
  for (let i = 1; i <= Math.min(k, n - k); i++) r = (r * BigInt(n - Math.min(k, n - k) + i)) / BigInt(i);
  return r.toString();
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Normalise a math answer to a canonical string (see the module comment for every rule). */
export function normalizeAnswer(raw: string): string {
  let s = raw ?? "";
  if (/\\(?:boxed|fbox)(?![a-zA-Z])/.test(s)) s = lastBoxed(s) ?? s;
  s = stripDelimiters(s);
  s = s.replace(/\\displaystyle/g, "");
  s = s.replace(/\\(?:left|right)\s*\.(?![0-9])/g, "");
  s = s.replace(/\\(?:left|right)(?![a-zA-Z])/g, "");
  s = s.replace(/\\(?:big|Big|bigg|Bigg)[lrm]?(?![a-zA-Z])/g, "");
  s = s.replace(/\\[dt]frac(?![a-zA-Z])/g, "\\frac").replace(/\\[dt]binom(?![a-zA-Z])/g, "\\binom");
  s = s
    .replace(/\\(?:quad|qquad)(?![a-zA-Z])/g, " ")
    .replace(/(?<!\\)\\[!,;:> ]/g, " ")
    .replace(/~/g, " ");
  s = s.replace(/\{,\}/g, ",");
  // degrees
  s = s
    .replace(/\^\s*\{?\s*\\circ\s*\}?/g, "")
    .replace(/\\circ(?![a-zA-Z])\s*$/g, "")
    .replace(/°/g, "");
  s = s.replace(/\\degree(?:s)?(?![a-zA-Z])/g, "");
  // percent, dollars
  s = s.replace(/\\%/g, "").replace(/%/g, "");
  s = s.replace(/\\\$/g, "").replace(/^\s*\$(?=\s*[\d.-])/, "");
  s = unwrapTextCommands(s);
  s = s.replace(/\\(?:operatorname)\s*\{([^{}]*)\}/g, "\\$1");
  for (let k = 0; k < 3; k++) {
    const before = s;
    s = s.replace(/[\s.]+$/, "");
    s = s.replace(TRAILING_UNIT_RE, "").replace(TRAILING_SINGLE_UNIT_RE, "");
    if (s === before) break;
  }
  s = s.replace(/(\S)\s+(?:or|and)\s+(?=\S)/gi, "$1,");
  s = s.replace(/^[\s,;]+|[\s.,;:?]+$/g, ""); // not `!`: a trailing `!` is a factorial
  // unicode and synonyms
  s = s
    .replace(/≤/g, "\\leq ")
    .replace(/≥/g, "\\geq ")
    .replace(/≠/g, "\\neq ")
    .replace(/∞/g, "\\infty ")
    .replace(/π/g, "\\pi ")
    .replace(/√/g, "\\sqrt ")
    .replace(/[−–]/g, "-")
    .replace(/\\le(?![a-zA-Z])/g, "\\leq")
    .replace(/\\ge(?![a-zA-Z])/g, "\\geq")
    .replace(/\\ne(?![a-zA-Z])/g, "\\neq")
    .replace(/\\varnothing(?![a-zA-Z])/g, "\\emptyset")
    .replace(/\\infinity(?![a-zA-Z])/g, "\\infty");
  s = removeSpaces(s);
  // brace-less arguments
  for (let k = 0; k < 3; k++) s = s.replace(FRAC_RE, (_m, a: string, b: string) => `\\frac${brace(a)}${brace(b)}`);
  s = s.replace(/\\sqrt\s*(\d|[a-zA-Z](?![a-zA-Z]))/g, "\\sqrt{$1}");
  s = s.replace(/([\^_])\{([a-zA-Z0-9])\}/g, "$1$2");
  s = s.replace(
    /\\binom\{(\d{1,4})\}\{(\d{1,4})\}/g,
    (m, a: string, b: string) => binomialLiteral(Number(a), Number(b)) ?? m,
  );
  s = stripAssignment(s);
  // thousands separators, only for a whole-answer number
  if (/^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, "");
  // numbers
  s = s.replace(
    /(^|[^\d.a-zA-Z\\])(\d*)\.(\d+)(?![\d.])/g,
    (_m, pre: string, i: string, f: string) => pre + canonicalNumber(i, f),
  );
  s = s.replace(/(^|[^\d.])(\d+)(?![\d.])/g, (_m, pre: string, i: string) => pre + canonicalNumber(i, undefined));
  s = s.replace(/^\+(?=[\d.\\])/, "");
  if (s === "-0") s = "0";
  // a mixed number as the whole answer
  const mixed = /^(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$/.exec(s);
  if (mixed && BigInt(mixed[3]) < BigInt(mixed[4]) && BigInt(mixed[4]) > 0n) {
    const num = BigInt(mixed[2]) * BigInt(mixed[4]) + BigInt(mixed[3]);
    s = `${mixed[1]}\\frac{${num}}{${mixed[4]}}`;
  }
  if (/^[a-zA-Z'-]{2,}$/.test(s) || (/^[a-zA-Z' -]+$/.test(s) && s.length > 1)) s = s.toLowerCase();
  return s;
}

const ASSIGN_RE = /^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]+\}?)?(?:\([a-zA-Z]\))?(?:=|\\in(?![a-zA-Z]))/;

/**
 * Drop a leading `x=` or `x\in` (single variable, optional subscript or `(x)` argument) when no other `=`
 * follows.
 */
export function stripAssignment(s: string): string {
  const m = ASSIGN_RE.exec(s);
  if (!m) return s;
  const rest = s.slice(m[0].length);
  if (rest.includes("=") || rest === "") return s;
  // `x=1,2` -> `1,2`; but `x=1,y=2` keeps its assignments (the comma split handles each item).
  return rest;
}

export type AnswerStructure =
  | { kind: "scalar"; value: string }
  | { kind: "ordered"; open: string; close: string; items: AnswerStructure[] }
  | { kind: "unordered"; items: AnswerStructure[] };

const OPENERS = new Set(["(", "[", "{"]);
const CLOSERS = new Set([")", "]", "}"]);

/** The TeX bracket (`\{`, `\}`, `\langle`, `\rangle`) at i: its depth change and length; null when none. */
function texBracketAt(s: string, i: number): { delta: 1 | -1; length: number } | null {
  if (s[i] !== "\\") return null;
  if (s[i + 1] === "{" || s[i + 1] === "}") return { delta: s[i + 1] === "{" ? 1 : -1, length: 2 };
  if (s.startsWith("\\langle", i)) return { delta: 1, length: 7 };
  if (s.startsWith("\\rangle", i)) return { delta: -1, length: 7 };
  return null;
}

/** Split at top-level occurrences of `sep` (brackets of any kind, escaped or not, nest). */
export function splitTopLevel(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    const tex = texBracketAt(s, i);
    if (tex) {
      depth += tex.delta;
      i += tex.length - 1;
      continue;
    }
    if (OPENERS.has(c)) depth++;
    else if (CLOSERS.has(c)) depth--;
    else if (depth === 0 && s.startsWith(sep, i)) {
      if (sep.startsWith("\\") && /[a-zA-Z]/.test(s[i + sep.length] ?? "")) continue; // `\cupx` is not `\cup`
      parts.push(s.slice(start, i));
      start = i + sep.length;
      i += sep.length - 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

/** The index closing the group opened at 0 (any bracket kind closes any), or -1. */
function groupEnd(s: string, openLen: number): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (i === 0) {
      depth = 1;
      i = openLen - 1;
      continue;
    }
    const c = s[i];
    const tex = texBracketAt(s, i);
    if (tex) {
      depth += tex.delta;
      if (depth === 0) return i;
      i += tex.length - 1;
      continue;
    }
    if (OPENERS.has(c)) depth++;
    else if (CLOSERS.has(c)) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function parseItem(s: string): AnswerStructure {
  const t = stripAssignment(s);
  return parseBracketed(t) ?? { kind: "scalar", value: t };
}

function parseBracketed(s: string): AnswerStructure | null {
  if (s === "\\emptyset" || s === "\\{\\}") return { kind: "unordered", items: [] };
  if (s.startsWith("\\{") && s.endsWith("\\}") && groupEnd(s, 2) === s.length - 2) {
    const inner = s.slice(2, -2);
    return {
      kind: "unordered",
      items: dedupe(
        splitTopLevel(inner, ",")
          .filter((x) => x !== "")
          .map(parseItem),
      ),
    };
  }
  if (s.startsWith("\\langle") && s.endsWith("\\rangle") && groupEnd(s, 7) === s.length - 7) {
    const items = splitTopLevel(s.slice(7, -7), ",").map(parseItem);
    return { kind: "ordered", open: "(", close: ")", items };
  }
  const open = s[0];
  const close = s[s.length - 1];
  if ((open === "(" || open === "[") && (close === ")" || close === "]") && groupEnd(s, 1) === s.length - 1) {
    const parts = splitTopLevel(s.slice(1, -1), ",");
    if (parts.length >= 2) return { kind: "ordered", open, close, items: parts.map(parseItem) };
    if (open === "(" && close === ")") return parseItem(parts[0]); // "(5)" is 5
  }
  return null;
}

function dedupe(items: AnswerStructure[]): AnswerStructure[] {
  const seen = new Set<string>();
  return items.filter((it) => {
    const k = structureKey(it);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The structure of a NORMALISED answer (see the module comment for when order matters). */
export function parseStructure(normalized: string): AnswerStructure {
  const s = normalized;
  const pm = s.match(/\\(?:pm|mp)(?![a-zA-Z])/g);
  if (pm && pm.length === 1 && !s.includes(",")) {
    const plus = s.replace(/\\pm(?![a-zA-Z])/, "+").replace(/\\mp(?![a-zA-Z])/, "-");
    const minus = s.replace(/\\pm(?![a-zA-Z])/, "-").replace(/\\mp(?![a-zA-Z])/, "+");
    return { kind: "unordered", items: [parseItem(plus.replace(/^\+/, "")), parseItem(minus)] };
  }
  const union = splitTopLevel(s, "\\cup");
  if (union.length > 1) return { kind: "unordered", items: dedupe(union.map(parseItem)) };
  const br = parseBracketed(s);
  if (br) return br;
  const list = splitTopLevel(s, ",").filter((x) => x !== "");
  if (list.length > 1) return { kind: "unordered", items: dedupe(list.map(parseItem)) };
  return { kind: "scalar", value: stripAssignment(s) };
}

export interface Rational {
  num: bigint;
  den: bigint;
}

/**
 * The exact value of a normalised rational literal (`-3`, `0.25`, `\frac{1}{2}`, `-\frac{3}{4}`, `3/4`),
 * reduced, with a positive denominator; null for anything else.
 */
export function rationalValue(s: string): Rational | null {
  let num: bigint;
  let den: bigint;
  const dec = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  const fr = dec ? null : (/^(-?)\\frac\{(-?)(\d+)\}\{(-?)(\d+)\}$/.exec(s) ?? /^(-?)()(\d+)\/()(\d+)$/.exec(s));
  if (dec) {
    const frac = dec[3] ?? "";
    num = BigInt(dec[2] + frac);
    den = 10n ** BigInt(frac.length);
    if (dec[1]) num = -num;
  } else if (fr) {
    num = BigInt(fr[3]);
    den = BigInt(fr[5]);
    const neg = [fr[1], fr[2], fr[4]].filter((x) => x === "-").length % 2 === 1;
    if (neg) num = -num;
  } else return null;
  if (den === 0n) return null;
  const g = gcd(num, den) || 1n;
  return { num: num / g, den: den / g };
}

/** A canonical key of a structure: equal keys mean equal answers (the converse need not hold). */
export function structureKey(st: AnswerStructure): string {
  switch (st.kind) {
    case "scalar": {
      const r = rationalValue(st.value);
      return r ? (r.den === 1n ? `${r.num}` : `${r.num}/${r.den}`) : st.value;
    }
    case "ordered":
      return `${st.open}${st.items.map(structureKey).join(",")}${st.close}`;
    case "unordered":
      return `{${[...new Set(st.items.map(structureKey))].sort().join(",")}}`;
  }
}

/**
 * A grouping key for majority voting: the normalised answer, with rational literals reduced (`0.5`,
 * `\frac12`, `1/2` share `1/2`) and unordered collections sorted. Empty string for an empty answer.
 */
export function answerKey(raw: string): string {
  const n = normalizeAnswer(raw);
  if (n === "") return "";
  return structureKey(parseStructure(n));
}
