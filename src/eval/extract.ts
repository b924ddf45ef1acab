/**
 * Answer extraction from a model response.
 *
 * The response may carry the Memento format (`<think>`, block and summary markers). Answers are read from
 * the part after the LAST `</think>` when there is one (the final answer section); a response with no
 * `</think>` (a base model, or one truncated mid-thought) is read whole. Format markers and chat end tokens
 * are blanked out first so that they never end up inside an extracted answer.
 *
 * Math answers, in order of preference (the first kind found wins, and within a kind the LAST one):
 *   1. `\boxed{...}` / `\fbox{...}` (balanced braces, `\{`/`\}` escapes ignored, `\boxed 5` form, a box
 *      inside a box unwrapped to the innermost content);
 *   2. an answer phrase: "Final Answer: X", "The (final) answer is X", "**Answer:** X", "Answer: X";
 *   3. the last inline math `$...$`, `$$...$$`, `\(...\)`, `\[...\]` (a `$..$` pair holding a number
 *      followed by words, as in "$5 and $10", is taken for currency and skipped);
 *   4. the last number;
 *   5. the raw trimmed text.
 */

export type ExtractMethod = "boxed" | "answer_phrase" | "inline_math" | "number" | "raw" | "empty";

export interface Extraction {
  answer: string;
  method: ExtractMethod;
}

const STRIPPED_MARKERS = [
  "<think>",
  "<|block_start|>",
  "<|block_end|>",
  "<|summary_start|>",
  "<|summary_end|>",
  "<|im_end|>",
  "<|im_start|>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "<|eot_id|>",
];

/** The part of a response that holds the final answer: after the last `</think>`, markers blanked. */
export function answerRegion(response: string): string {
  const close = response.lastIndexOf("</think>");
  let s = close >= 0 ? response.slice(close + "</think>".length) : response;
  for (const m of STRIPPED_MARKERS) s = s.split(m).join("\n");
  s = s.split("</think>").join("\n");
  return s;
}

/**
 * Index of the brace closing the `{` at `open`, or -1 if unbalanced. `\{` and `\}` (escaped, literal
 * braces in LaTeX) are not counted; `\\` is skipped as a unit so `\\}` still closes.
 */
export function matchBrace(s: string, open: number): number {
  if (s[open] !== "{") return -1;
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++; // skip the escaped character (`\{`, `\}`, `\\`, or the first letter of a command)
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

const BOX_RE = /\\(?:boxed|fbox)(?![a-zA-Z])/g;

/** Content of one box starting at the command at `at`; null when truncated/unbalanced. */
function readBox(s: string, at: number, cmdLen: number): { content: string; end: number } | null {
  let i = at + cmdLen;
  while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  if (s[i] === "{") {
    const close = matchBrace(s, i);
    if (close < 0) return null;
    return { content: s.slice(i + 1, close), end: close + 1 };
  }
  // `\boxed 5` / `\boxed5` form: up to whitespace, `$`, or end of the math.
  const m = /^[^\s$]+/.exec(s.slice(i));
  if (!m) return null;
  // Stop before math/text closers and punctuation that belong to the surrounding sentence.
  const tok = m[0].replace(/(\\\]|\\\)|[.,;:!?]+)$/, "");
  if (!tok) return null;
  return { content: tok, end: i + m[0].length };
}

/**
 * The content of the last top-level `\boxed{}`/`\fbox{}` in `text`, with nested boxes unwrapped
 * (`\boxed{\boxed{5}}` -> `5`). Unbalanced (truncated) boxes are skipped. Null when there is none.
 */
export function lastBoxed(text: string): string | null {
  let last: string | null = null;
  BOX_RE.lastIndex = 0;
  for (let m = BOX_RE.exec(text); m; m = BOX_RE.exec(text)) {
    const box = readBox(text, m.index, m[0].length);
    if (!box) continue;
    last = box.content;
    BOX_RE.lastIndex = box.end; // skip boxes nested inside this one: only top-level boxes compete
  }
  if (last === null) return null;
  // Unwrap a box that is (after trimming) entirely another box, e.g. `\boxed{\boxed{5}}`.
  for (;;) {
    const t = last.trim();
    const inner = /^\\(?:boxed|fbox)(?![a-zA-Z])/.exec(t);
    if (!inner) break;
    const box = readBox(t, 0, inner[0].length);
    if (!box || t.slice(box.end).trim() !== "") break;
    last = box.content;
  }
  return last.trim();
}

/** Strip a trailing sentence period, markdown emphasis, and wrapping `$...$` from a phrase answer. */
function cleanPhrase(s: string): string {
  let t = s.trim();
  t = t.replace(/\s*I hope it is correct\.?\s*$/i, "");
  for (let k = 0; k < 3; k++) {
    const before = t;
    t = t
      .replace(/^\*\*|\*\*$/g, "")
      .replace(/^\*|\*$/g, "")
      .trim();
    t = t.replace(/^(?:is|:)\s*/i, "").trim();
    t = t.replace(/^(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*/i, "").trim();
    t = t.replace(/[.;,]+$/, "").trim();
    if (/^\$\$[\s\S]*\$\$$/.test(t)) t = t.slice(2, -2).trim();
    else if (/^\$[^$]*\$$/.test(t)) t = t.slice(1, -1).trim();
    else if (/^\\\([\s\S]*\\\)$/.test(t) || /^\\\[[\s\S]*\\\]$/.test(t)) t = t.slice(2, -2).trim();
    if (t === before) break;
  }
  return t;
}

const PHRASE_RE =
  /(?:\*\*\s*)?(?:final\s+answer|the\s+(?:final\s+)?answer\s+is|answer)\s*(?:\*\*)?\s*(?::|is\b)?\s*(?:\*\*)?[ \t]*([^\n]*)/gi;

/** The last answer phrase ("Final Answer: X", "The answer is X", "**Answer:** X") with X non-empty. */
export function lastAnswerPhrase(text: string): string | null {
  let best: string | null = null;
  PHRASE_RE.lastIndex = 0;
  for (let m = PHRASE_RE.exec(text); m; m = PHRASE_RE.exec(text)) {
    const head = m[0].slice(0, m[0].length - m[1].length);
    // Require a real separator: "Answer:" / "answer is" / "Final Answer" followed by ":"; a bare word
    // "answer" inside a sentence ("to answer this") is not an answer phrase.
    if (!/[:]|\bis\b/i.test(head)) continue;
    const val = cleanPhrase(m[1]);
    if (val) best = val;
  }
  return best;
}

/** The last non-empty inline math span: `$$..$$`, `$..$`, `\(..\)`, `\[..\]`. */
export function lastInlineMath(text: string): string | null {
  const re = /\$\$([\s\S]+?)\$\$|(?<!\\)\$((?:\\\$|[^$])+?)(?<!\\)\$|\\\(([\s\S]+?)\\\)|\\\[([\s\S]+?)\\\]/g;
  let best: string | null = null;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const v = (m[1] ?? m[2] ?? m[3] ?? m[4] ?? "").trim();
    // "$5 and $10": a `$` pair around "number words" is two currency amounts, not math.
    if (m[2] !== undefined && /^\d[\d,.]*\s+[a-zA-Z]{2,}/.test(v)) continue;
    if (v) best = v;
  }
  return best;
}

/** The last number (integer, decimal, thousands-separated, simple fraction a/b, optional sign). */
export function lastNumber(text: string): string | null {
  const re = /[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*\/\s*\d+)?|[-+]?\.\d+/g;
  let best: string | null = null;
  for (let m = re.exec(text); m; m = re.exec(text)) best = m[0].replace(/\s+/g, "");
  return best;
}

/** Extract the final math answer of a response; see the module comment for the order of preference. */
export function extractAnswer(response: string): Extraction {
  const region = answerRegion(response);
  const boxed = lastBoxed(region);
  if (boxed !== null && boxed !== "") return { answer: boxed, method: "boxed" };
  const phrase = lastAnswerPhrase(region);
  if (phrase !== null) {
    // "The final answer is $\boxed{5}$" is caught above; a phrase holding math returns the math.
    return { answer: phrase, method: "answer_phrase" };
  }
  const math = lastInlineMath(region);
  if (math !== null) return { answer: math, method: "inline_math" };
  const num = lastNumber(region);
  if (num !== null) return { answer: num, method: "number" };
  const raw = region.trim();
  if (raw) return { answer: raw, method: "raw" };
  return { answer: "", method: "empty" };
}

export type ChoiceMethod = "boxed" | "answer_phrase" | "decorated" | "bare" | "none";

export interface ChoiceExtraction {
  /** The letter, upper case; null when none was found. */
  answer: string | null;
  method: ChoiceMethod;
}

function escapeClass(letters: string): string {
  return letters.replace(/[\]\\^-]/g, "\\$&");
}

/**
 * The chosen option letter of a multiple-choice response (default letters A-D), read from the answer
 * region. In order of preference, the last of: a letter that is the whole content of `\boxed{}`
 * (`\boxed{C}`, `\boxed{\text{(C)}}`); an answer phrase ("Answer: C", "the answer is (C)", "**Answer:** C");
 * a decorated standalone letter ("(C)", "**C**", "[C]", "C)" at a line start, "option C"); a bare
 * standalone capital letter that is not an English article ("A cat ..." is skipped).
 */
export function extractChoice(response: string, letters = "ABCD"): ChoiceExtraction {
  const region = answerRegion(response);
  const L = escapeClass(letters.toUpperCase() + letters.toLowerCase());
  const single = new RegExp(`^[\\s(\\[*{]*([${L}])[\\s)\\]*}.:]*$`);
  const unwrapText = (s: string) => s.replace(/\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}/g, "$1").trim();

  const boxed = lastBoxed(region);
  if (boxed !== null) {
    const m = single.exec(unwrapText(boxed));
    if (m) return { answer: m[1].toUpperCase(), method: "boxed" };
  }
  const phraseRe = new RegExp(
    `(?:final\\s+answer|answer(?:\\s+is)?|correct\\s+(?:option|choice|answer)(?:\\s+is)?|option|choice)\\s*(?:\\*\\*)?\\s*[:：]?\\s*(?:\\*\\*)?\\s*(?:is\\s+)?(?:option\\s+|choice\\s+)?[(\\[*$]*\\s*(?:\\\\text\\{|\\\\textbf\\{)?\\(?([${L}])(?![A-Za-z])`,
    "gi",
  );
  let last: string | null = null;
  for (let m = phraseRe.exec(region); m; m = phraseRe.exec(region)) last = m[1];
  if (last) return { answer: last.toUpperCase(), method: "answer_phrase" };

  const U = escapeClass(letters.toUpperCase());
  const decorated = new RegExp(
    `\\(([${U}])\\)|\\[([${U}])\\]|\\*\\*\\(?([${U}])\\)?\\*\\*|(?:^|\\n)\\s*([${U}])[).:](?=\\s|$)`,
    "g",
  );
  for (let m = decorated.exec(region); m; m = decorated.exec(region)) last = m[1] ?? m[2] ?? m[3] ?? m[4];
  if (last) return { answer: last.toUpperCase(), method: "decorated" };

  const bare = new RegExp(`(?<![A-Za-z0-9_\\\\])([${U}])(?![A-Za-z0-9_])`, "g");
  for (let m = bare.exec(region); m; m = bare.exec(region)) {
    const after = region.slice(m.index + 1, m.index + 3);
    if (m[1] === "A" && /^ [a-z]/.test(after)) continue; // the article "A"
    if (/^'[a-z]/.test(after)) continue; // "A's"
    last = m[1];
  }
  if (last) return { answer: last, method: "bare" };
  return { answer: null, method: "none" };
}

export type CodeLanguage = "python" | "javascript";

export interface ExtractedProgram {
  language: CodeLanguage;
  code: string;
}

const LANG_ALIASES: Record<string, CodeLanguage> = {
  python: "python",
  python3: "python",
  py: "python",
  js: "javascript",
  javascript: "javascript",
  node: "javascript",
  nodejs: "javascript",
  mjs: "javascript",
};

/**
 * The last fenced code block in a supported language (```python / ```py / ```js / ```javascript).
 * Searched in the answer region first, then in the whole response (a truncated response may have its
 * only program inside the thought). An unlabelled block is taken as `fallback` (default python) only if
 * no labelled block exists. `only` restricts to one language.
 */
export function extractProgram(
  response: string,
  options: { only?: CodeLanguage; fallback?: CodeLanguage } = {},
): ExtractedProgram | null {
  const search = (text: string): ExtractedProgram | null => {
    const re = /(^|\n)[ \t]*(```+|~~~+)[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n([\s\S]*?)\n[ \t]*\2[ \t]*(?=\n|$)/g;
    let labelled: ExtractedProgram | null = null;
    let unlabelled: string | null = null;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const tag = m[3].toLowerCase();
      const lang = LANG_ALIASES[tag];
      if (lang && (!options.only || options.only === lang)) labelled = { language: lang, code: m[4] };
      else if (!tag) unlabelled = m[4];
      re.lastIndex = m.index + m[0].length;
    }
    if (labelled) return labelled;
    if (unlabelled !== null) return { language: options.only ?? options.fallback ?? "python", code: unlabelled };
    return null;
  };
  return search(answerRegion(response)) ?? search(response);
}
