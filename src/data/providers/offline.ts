/**
 * The `offline` provider: deterministic heuristics in place of a language model, for runs without network
 * access, for tests, and as a baseline. It says so (`heuristic: true`, every model "heuristic"); its output is
 * a plausible approximation of the paper's LLM stages, not a substitute for them. Same input, same output.
 *
 * Boundary scores (`scoreBoundaryHeuristic`), between sentence a (before) and b (after); the first rule that
 * applies wins:
 *   R1  0  a ends with ":" or "=" (also "=>", "⇒", "→"), ignoring trailing emphasis and spaces.
 *   R2  0  b begins with a continuation word: Therefore, Thus, Hence, So (any case, whole word).
 *   R3  0  a and b are both mostly math (`isMostlyMath`): the boundary is inside a calculation.
 *   R4  3  b opens a new approach ("Alternatively", "Let me try", "Let's try another", "Another approach",
 *          "Wait, maybe", "Instead", "Let me start over", "Let me reconsider", ...) or the final-answer part
 *          ("Final answer", "In conclusion", "To summarize", a heading naming the answer).
 *   R5  2  b opens a check or a new step ("Let me check/verify/double-check/confirm", "To verify", "Now",
 *          "Next", "First", "Second", "Then let's", "Finally", "Step 3", "Case 2", "But wait", "Hold on") or a
 *          structural unit (markdown heading, list item, bold lead-in). Paragraph breaks are not visible in
 *          the sentence strings, so these markers stand in for paragraph starts.
 *   R6  1  otherwise.
 *
 * Mementos (`extractiveMemento`): the block is cut into units (lines, then sentences; units over 60 tokens
 * into clauses at "," and ";"); each unit gets an information score (relations such as "=", numbers,
 * conclusion words, checks, rejected attempts, method words; filler openers count against it). The last unit
 * that states a result is always kept and put first; further units are taken by score per token until about
 * 15% of the block's tokens, and follow in block order. Leading filler ("Okay, so", "Hmm,") is dropped and
 * whitespace collapsed. Every word of the memento comes from the block.
 *
 * Judge (`judgeHeuristic`), from text checks only:
 *   formulas (0-3)        share of the block's relations ("x = 5", "a^2+b^2=c^2") found verbatim (spaces
 *                         ignored): >= 0.6 -> 3, >= 0.4 -> 2, >= 0.2 -> 1; 3 when the block has none;
 *   values (0-2)          share of the block's distinct numbers present: >= 0.5 -> 2, >= 0.25 -> 1; 2 if none;
 *   methods (0-2)         one point for keeping at least half the block's method words (substitution,
 *                         induction, recurrence, ...; free when none), one for naming a rejected attempt when the
 *                         block has one (free otherwise);
 *   validation (0-1)      the block checks something -> the memento must mention a check;
 *   noHallucination (0-1) at least 90% of the memento's content words and numbers occur in the block;
 *   resultFirst (0-1)     the memento's first unit states a result (a relation, a number or a conclusion word)
 *                         and the memento is at most 40% of the block's tokens (blocks under 60 tokens exempt).
 *   The feedback names the missing formulas and values, the check or rejected attempt to mention, the words
 *   without support in the block, the result to lead with, each quoted from the block.
 *
 * Refine (`refineHeuristic`): adds what the feedback names and the block contains: relations quoted in the
 * feedback, the shortest unit of the block holding each number or method word the feedback names, the check or
 * the rejected attempt when the feedback asks for one; drops parts holding words the feedback calls
 * unsupported, and (when it says "too long") later parts that are redundant or carry little information; puts
 * the result unit first when the feedback asks for that (or nothing else is left). Parts are joined by "; ".
 */
import { JUDGE_MAX, type JudgeDimensions, type Judgment, type Provider, type Usage } from "../types.js";
import { checkJudgeInput, toJudgment } from "../prompts.js";

export interface OfflineProviderOptions {
  /** Token counter for the memento budget and the length checks (default: a tokenizer-free estimate). */
  countTokens?: (text: string) => number;
  /** Target memento size as a fraction of the block's tokens (default 0.15). */
  mementoRatio?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Text helpers

/** Tokenizer-free estimate: each run of letters/digits is one token, every other non-space character one. */
export function approxTokens(text: string): number {
  const m = text.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu);
  return m ? m.length : 0;
}

const collapse = (s: string) => s.replace(/\s+/g, " ").trim();

/** The sentence without leading markdown decoration (`#`, `>`, `*`, `_`, quotes) and spaces. */
function lead(s: string): string {
  return s.replace(/^[\s#>*_"'“‘`-]+/u, "");
}

/** The sentence without trailing emphasis, closing quotes or spaces. */
function tail(s: string): string {
  return s.replace(/[\s*_"'”’`]+$/u, "");
}

const CONTINUES_AFTER_RE = /(?::|=|=>|⇒|→|\\implies|\\Rightarrow)$/;
const CONTINUATION_WORD_RE = /^(?:therefore|thus|hence|so)\b/i;

const MATH_TOKEN_RE = /[0-9=+\-*/^<>≤≥≈≠±×÷·√∑∏∫∞\\${}()[\]_|]/u;

/**
 * True when at least half of the sentence's whitespace-separated tokens look like math: they hold a digit,
 * an operator, a bracket, a LaTeX command or `$`, or are a single-letter variable (except the words "I", "a"
 * and "A").
 */
export function isMostlyMath(sentence: string): boolean {
  const tokens = sentence.trim().split(/\s+/).filter(Boolean);
  if (tokens.length === 0) return false;
  let math = 0;
  for (const t of tokens) {
    const bare = t.replace(/[.,;:!?]+$/, "");
    if (MATH_TOKEN_RE.test(bare) || (/^[A-Za-z]$/.test(bare) && !/^(?:I|a|A)$/.test(bare))) math++;
  }
  return math / tokens.length >= 0.5;
}

const NEW_APPROACH_RE = new RegExp(
  "^(?:" +
    [
      "alternatively",
      "alternative(?:ly)? approach",
      "another (?:approach|way|idea|method|strategy|option)",
      "a different (?:approach|way|idea|method|strategy)",
      "let me try (?:a |another |something |again|instead|to approach)",
      "let me try\\b",
      "let's try\\b",
      "let us try\\b",
      "maybe (?:a|another) (?:different|better|new) (?:approach|way|idea|method)",
      "wait,? maybe",
      "wait,? perhaps",
      "instead\\b",
      "let me (?:start over|restart|reconsider|rethink|approach this differently|think differently|take a different)",
      "let's (?:start over|reconsider|rethink|approach this differently|think differently|take a different)",
      "scratch that",
      "on second thought",
      "going back to the (?:start|beginning|drawing board)",
    ].join("|") +
    ")",
  "i",
);

const FINAL_ANSWER_RE =
  /^(?:final answer|the final answer|in conclusion|to conclude|to summari[sz]e|summary|answer:|\*\*answer|putting it all together)/i;

const NEW_STEP_RE = new RegExp(
  "^(?:" +
    [
      "let me (?:check|verify|double[- ]check|confirm|test|validate|see if|make sure)",
      "let's (?:check|verify|double[- ]check|confirm|test|validate|see if|make sure)",
      "let us (?:check|verify|confirm)",
      "to (?:check|verify|confirm|double[- ]check)",
      "(?:double[- ])?check(?:ing)?\\b",
      "verif(?:y|ying|ication)\\b",
      "sanity check",
      "now\\b",
      "next\\b",
      "first(?:ly)?\\b",
      "second(?:ly)?\\b",
      "third(?:ly)?\\b",
      "finally\\b",
      "lastly\\b",
      "then,? let(?:'s| me| us)\\b",
      "step \\d+",
      "case \\d+",
      "part \\(?[a-z0-9]\\)?",
      "but wait\\b",
      "hold on\\b",
      "moving on\\b",
    ].join("|") +
    ")",
  "i",
);

/** Headings, list items and bold lead-ins open a structural unit. */
const STRUCTURE_RE = /^(?:#{1,6}\s|[-*+]\s|\d+[.)]\s|\*\*[^*]+\*\*)/;

/** The heuristic rubric score of the boundary between `before` and `after` (see the module comment). */
export function scoreBoundaryHeuristic(before: string, after: string): number {
  const a = tail(before.trim());
  const bRaw = after.trim();
  const b = lead(bRaw);
  if (CONTINUES_AFTER_RE.test(a)) return 0; // R1
  if (CONTINUATION_WORD_RE.test(b)) return 0; // R2
  if (isMostlyMath(before) && isMostlyMath(after)) return 0; // R3
  if (NEW_APPROACH_RE.test(b) || FINAL_ANSWER_RE.test(b)) return 3; // R4
  if (NEW_STEP_RE.test(b) || STRUCTURE_RE.test(bRaw)) return 2; // R5
  return 1; // R6
}

export function scoreBoundariesHeuristic(sentences: readonly string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < sentences.length; i++) out.push(scoreBoundaryHeuristic(sentences[i], sentences[i + 1]));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Units and features

/** Lines, then sentences; units over 60 tokens are cut into clauses at "," / ";". Whitespace collapsed. */
export function textUnits(text: string, countTokens: (s: string) => number = approxTokens): string[] {
  const out: string[] = [];
  for (const line of text.split(/\n+/)) {
    for (const sentence of line.split(/(?<=[.!?])\s+(?=[A-Z0-9$\\(*"“#])/)) {
      const s = collapse(sentence);
      if (!s) continue;
      if (countTokens(s) > 60) {
        for (const clause of s.split(/(?<=[,;])\s+/)) if (clause.trim()) out.push(clause.trim());
      } else {
        out.push(s);
      }
    }
  }
  return out;
}

const RELATION_CHARS = "=<>≤≥≈≠";
/** An operand: a run without spaces, relations or list punctuation; operands joined by spaced operators. */
const OPERAND = `[^\\s${RELATION_CHARS},;:]+`;
const EXPRESSION = `${OPERAND}(?:\\s+[-+*/×·−±^]\\s+${OPERAND})*`;
const RELATION = `(?:[${RELATION_CHARS}]+|\\\\(?:le|ge|leq|geq|neq|approx|equiv)(?![A-Za-z]))`;
const FORMULA_RE = new RegExp(`${EXPRESSION}(?:\\s*${RELATION}\\s*${EXPRESSION})+`, "gu");
const NUMBER_RE = /(?<![\p{L}_])\d+(?:\.\d+)?/gu;
const CONCLUSION_RE =
  /\b(?:so|therefore|thus|hence|answer|result|conclude|concluded|gives|yields|equals|get|gets|got|obtain|obtained|found|is)\b/i;
const STRONG_CONCLUSION_RE = /\b(?:so|therefore|thus|hence|answer|result|conclude|gives|yields|equals)\b/i;
const VERIFY_RE =
  /\b(?:check|checks|checked|checking|verify|verified|verifying|verification|confirm|confirmed|confirms|double-check|sanity|plug(?:ging)? (?:back|in)|consistent|matches)\b/i;
const REJECT_RE =
  /\b(?:doesn't work|does not work|didn't work|won't work|wrong|contradiction|contradicts|impossible|invalid|fails|failed|not possible|mistake|incorrect|dead end|abandon|discard|not valid)\b/i;
const METHOD_RE =
  /\b(?:substitut\w*|induction|recurrence|recursion|recursive|dynamic programming|dp|factor\w*|expand\w*|complet\w* the square|quadratic formula|derivative|differentiat\w*|integrat\w*|modulo|mod|parity|symmetry|contradiction|casework|case analysis|bijection|pigeonhole|binary search|brute force|greedy|sort\w*|hash\w*|graph|bfs|dfs|simulat\w*|enumerat\w*|approximat\w*|formula|theorem|lemma|identity|law|principle|conservation|equilibrium|vector|matrix|coordinates?|complex numbers?|logarithm\w*|telescop\w*|generating function|inclusion-exclusion|algorithm|approach|method)\b/gi;
const FILLER_RE =
  /^(?:hmm+|okay|ok|wait|well|alright|let me think|i think|i need to|let's see|let me see|so,? let's|so let me|maybe|perhaps)\b/i;
const STRIP_LEAD_RE = /^(?:(?:okay|ok|hmm+|well|alright|wait|so|now|and|but|right|yes|oh)\b[,.!]?\s*)+/i;

function normalizeFormula(f: string): string {
  return f.replace(/\s+/g, "").replace(/[.,;:!?]+$/, "");
}

/** Relations of the text ("x = 5", "f(n)=3n-2", "a<b"), normalised: spaces removed, trailing punctuation cut. */
export function extractFormulas(text: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const m of text.matchAll(FORMULA_RE)) {
    const f = normalizeFormula(m[0]);
    if (f.length >= 3 && !seen.has(f)) {
      seen.add(f);
      out.push(f);
    }
  }
  return out;
}

export function extractNumbers(text: string): string[] {
  return [...new Set(Array.from(text.matchAll(NUMBER_RE), (m) => m[0]))];
}

function methodWords(text: string): string[] {
  return [...new Set(Array.from(text.matchAll(METHOD_RE), (m) => m[0].toLowerCase()))];
}

function contentWords(text: string): string[] {
  return Array.from(text.toLowerCase().matchAll(/[\p{L}]{3,}|\d+(?:\.\d+)?/gu), (m) => m[0]);
}

function isResultUnit(u: string): boolean {
  return /[=≈]/.test(u) || STRONG_CONCLUSION_RE.test(u);
}

function statesResult(u: string): boolean {
  return /[=≈<>≤≥]/.test(u) || /\d/.test(u) || CONCLUSION_RE.test(u);
}

function unitInfo(u: string): number {
  let s = 0;
  s += 3 * Math.min(3, (u.match(/[=<>≤≥≈≠]/g) ?? []).length);
  s += Math.min(4, (u.match(NUMBER_RE) ?? []).length);
  if (STRONG_CONCLUSION_RE.test(u)) s += 2;
  if (VERIFY_RE.test(u)) s += 2;
  if (REJECT_RE.test(u)) s += 2;
  if (new RegExp(METHOD_RE.source, "i").test(u)) s += 1;
  if (FILLER_RE.test(u) && !/[=\d]/.test(u)) s -= 2;
  return s;
}

function stripLead(u: string): string {
  const s = u.replace(STRIP_LEAD_RE, "");
  return s.length > 0 ? s : u;
}

/** A memento's parts: its "; "-separated clauses and sentences. */
function mementoParts(memento: string): string[] {
  return memento
    .split(/;\s+|(?<=[.!?])\s+|\n+/)
    .map(collapse)
    .filter(Boolean);
}

function lastIndexWhere<T>(xs: readonly T[], p: (x: T) => boolean): number {
  for (let i = xs.length - 1; i >= 0; i--) if (p(xs[i])) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Mementos

export function extractiveMemento(
  block: string,
  countTokens: (s: string) => number = approxTokens,
  ratio = 0.15,
): string {
  const units = textUnits(block, countTokens);
  if (units.length === 0) return "";
  const tokens = units.map((u) => countTokens(u));
  const blockTokens = countTokens(block);
  const budget = Math.max(1, Math.ceil(ratio * blockTokens));
  const resultIdx = lastIndexWhere(units, isResultUnit);
  const chosen = new Set<number>();
  let used = 0;
  if (resultIdx >= 0) {
    chosen.add(resultIdx);
    used += tokens[resultIdx];
  }
  const order = units
    .map((u, i) => ({ i, info: unitInfo(u), density: unitInfo(u) / Math.sqrt(Math.max(1, tokens[i])) }))
    .filter((x) => x.info > 0 && x.i !== resultIdx)
    .sort((x, y) => y.density - x.density || y.info - x.info || x.i - y.i);
  for (const x of order) {
    if (used >= budget) break;
    if (chosen.size > 0 && used + tokens[x.i] > budget * 1.25) continue;
    chosen.add(x.i);
    used += tokens[x.i];
  }
  if (chosen.size === 0) {
    // Nothing informative: keep the shortest unit that is not filler, or the first one.
    let best = 0;
    for (let i = 1; i < units.length; i++) if (tokens[i] < tokens[best]) best = i;
    chosen.add(best);
  }
  const rest = [...chosen].filter((i) => i !== resultIdx).sort((x, y) => x - y);
  const ordered = resultIdx >= 0 && chosen.has(resultIdx) ? [resultIdx, ...rest] : rest;
  return collapse(ordered.map((i) => stripLead(units[i])).join(" "));
}

// ---------------------------------------------------------------------------------------------------------------
// Judge

/** Mementos longer than this share of the block's tokens lose the result-first point (narration, not state). */
const MAX_LENGTH_RATIO = 0.4;

function quote(s: string, max = 100): string {
  const c = collapse(s);
  return `"${c.length > max ? `${c.slice(0, max - 3)}...` : c}"`;
}

export function judgeHeuristic(
  block: string,
  memento: string,
  countTokens: (s: string) => number = approxTokens,
): Judgment {
  const m = collapse(memento);
  if (!m) {
    return toJudgment(
      { formulas: 0, values: 0, methods: 0, validation: 0, noHallucination: 1, resultFirst: 0 },
      "The memento is empty: state the block's result first, then its formulas and values.",
    );
  }
  const units = textUnits(block, countTokens);
  const mNorm = m.replace(/\s+/g, "");
  const issues: string[] = [];
  const d: JudgeDimensions = { formulas: 0, values: 0, methods: 0, validation: 0, noHallucination: 0, resultFirst: 0 };

  const formulas = extractFormulas(block);
  const missingFormulas = formulas.filter((f) => !mNorm.includes(f));
  const fKept = formulas.length === 0 ? 1 : 1 - missingFormulas.length / formulas.length;
  d.formulas = fKept >= 0.6 ? 3 : fKept >= 0.4 ? 2 : fKept >= 0.2 ? 1 : 0;
  if (d.formulas < JUDGE_MAX.formulas) issues.push(`Missing formulas: ${missingFormulas.slice(0, 6).join("; ")}.`);

  const numbers = extractNumbers(block);
  const mNumbers = new Set(extractNumbers(m));
  const missingNumbers = numbers.filter((x) => !mNumbers.has(x));
  const vKept = numbers.length === 0 ? 1 : 1 - missingNumbers.length / numbers.length;
  d.values = vKept >= 0.5 ? 2 : vKept >= 0.25 ? 1 : 0;
  if (d.values < JUDGE_MAX.values) issues.push(`Missing values: ${missingNumbers.slice(0, 8).join(", ")}.`);

  const bMethods = methodWords(block);
  const mLower = m.toLowerCase();
  const keptMethods = bMethods.filter((w) => mLower.includes(w));
  const methodsOk = bMethods.length === 0 || keptMethods.length * 2 >= bMethods.length;
  const rejectUnit = units.find((u) => REJECT_RE.test(u));
  const rejectOk = rejectUnit === undefined || REJECT_RE.test(m);
  d.methods = (methodsOk ? 1 : 0) + (rejectOk ? 1 : 0);
  if (!methodsOk) {
    const missing = bMethods.filter((w) => !keptMethods.includes(w));
    issues.push(`Name the method(s) used: ${missing.slice(0, 5).join(", ")}.`);
  }
  if (!rejectOk && rejectUnit) issues.push(`Mention the rejected attempt: ${quote(rejectUnit)}.`);

  const verifyUnit = units.find((u) => VERIFY_RE.test(u));
  d.validation = verifyUnit === undefined || VERIFY_RE.test(m) ? 1 : 0;
  if (d.validation === 0 && verifyUnit) issues.push(`State the outcome of the check: ${quote(verifyUnit)}.`);

  const bWords = new Set(contentWords(block));
  const mWords = contentWords(m);
  const unsupported = [...new Set(mWords.filter((w) => !bWords.has(w)))];
  const supported = mWords.length === 0 ? 1 : mWords.filter((w) => bWords.has(w)).length / mWords.length;
  d.noHallucination = supported >= 0.9 ? 1 : 0;
  if (d.noHallucination === 0)
    issues.push(
      `Remove what the block does not say (unsupported: ${unsupported
        .slice(0, 8)
        .map((w) => `"${w}"`)
        .join(", ")}).`,
    );

  const mUnits = mementoParts(m);
  const blockTokens = countTokens(block);
  const ratio = blockTokens === 0 ? 0 : countTokens(m) / blockTokens;
  const leadsWithResult = mUnits.length > 0 && statesResult(mUnits[0]);
  const shortEnough = blockTokens < 60 || ratio <= MAX_LENGTH_RATIO;
  d.resultFirst = leadsWithResult && shortEnough ? 1 : 0;
  if (!leadsWithResult) {
    const r = units[lastIndexWhere(units, isResultUnit)];
    issues.push(r ? `Lead with the result first: ${quote(r)}.` : "Lead with the block's result first.");
  }
  if (!shortEnough)
    issues.push(`Too long: ${Math.round(ratio * 100)}% of the block's tokens; cut narration to reach 10-20%.`);

  return toJudgment(d, issues.length ? issues.join(" ") : "Complete: nothing missing.");
}

// ---------------------------------------------------------------------------------------------------------------
// Refine

export function refineHeuristic(
  block: string,
  memento: string,
  feedback: string,
  countTokens: (s: string) => number = approxTokens,
): string {
  const units = textUnits(block, countTokens);
  let parts = mementoParts(memento);
  const fb = feedback;
  const fbNorm = fb.replace(/\s+/g, "");
  const has = (s: string) => parts.join(" ").replace(/\s+/g, "").includes(s.replace(/\s+/g, ""));

  // Unsupported words: drop the memento units that hold them.
  const unsupportedMatch = /unsupported:([^)]*)\)/i.exec(fb);
  if (unsupportedMatch) {
    const words = Array.from(unsupportedMatch[1].matchAll(/"([^"]+)"/g), (x) => x[1].toLowerCase());
    parts = parts.filter((p) => !words.some((w) => contentWords(p).includes(w)));
  }
  // Too long: drop the low-information units after the first.
  // Too long: drop later parts that are redundant (their relations and numbers are all in other parts) or carry
  // little information; checks and rejected attempts are kept.
  if (/\btoo long\b/i.test(fb) && parts.length > 1) {
    const keep = [parts[0]];
    for (let k = 1; k < parts.length; k++) {
      const p = parts[k];
      if (VERIFY_RE.test(p) || REJECT_RE.test(p)) {
        keep.push(p);
        continue;
      }
      const others = [...keep, ...parts.slice(k + 1)].join(" ");
      const othersNorm = others.replace(/\s+/g, "");
      const othersNumbers = new Set(extractNumbers(others));
      const facts = [...extractFormulas(p), ...extractNumbers(p)];
      const redundant = facts.every((f) => othersNorm.includes(f) || othersNumbers.has(f));
      if (!redundant && unitInfo(p) > 2) keep.push(p);
    }
    parts = keep;
  }

  const additions: string[] = [];
  const add = (s: string) => {
    const c = collapse(s);
    if (c && !has(c) && !additions.includes(c)) additions.push(c);
  };

  // Formulas the feedback names that the block contains.
  const fbFormulas = new Set(extractFormulas(fb));
  for (const f of extractFormulas(block)) {
    if ((fbFormulas.has(f) || fbNorm.includes(f)) && !has(f)) add(f);
  }

  // Values the feedback names: the shortest block unit holding each.
  const fbNumbers = new Set(extractNumbers(fb));
  const currentNumbers = () => new Set(extractNumbers(parts.join(" ") + " " + additions.join(" ")));
  for (const x of extractNumbers(block)) {
    if (!fbNumbers.has(x) || currentNumbers().has(x)) continue;
    const holders = units.filter((u) => extractNumbers(u).includes(x));
    if (holders.length === 0) continue;
    holders.sort((a, b) => countTokens(a) - countTokens(b));
    add(stripLead(holders[0]));
  }

  if (/\b(?:check|verif\w*|validat\w*)\b/i.test(fb) && !VERIFY_RE.test(parts.join(" "))) {
    const u = units.filter((x) => VERIFY_RE.test(x)).sort((a, b) => countTokens(a) - countTokens(b))[0];
    if (u) add(stripLead(u));
  }
  const methodMatch = /name the method\(s\) used:([^.]*)\./i.exec(fb);
  if (methodMatch) {
    for (const w of methodMatch[1]
      .split(",")
      .map((x) => x.trim().toLowerCase())
      .filter(Boolean)) {
      if ((parts.join(" ") + " " + additions.join(" ")).toLowerCase().includes(w)) continue;
      const u = units.filter((x) => x.toLowerCase().includes(w)).sort((a, b) => countTokens(a) - countTokens(b))[0];
      if (u) add(stripLead(u));
    }
  }
  if (/\b(?:reject\w*|abandon\w*|failed|dead end)\b/i.test(fb) && !REJECT_RE.test(parts.join(" "))) {
    const u = units.filter((x) => REJECT_RE.test(x)).sort((a, b) => countTokens(a) - countTokens(b))[0];
    if (u) add(stripLead(u));
  }

  const resultUnit = units[lastIndexWhere(units, isResultUnit)];
  let out = [...parts];
  if (resultUnit && (out.length === 0 || /\b(?:result first|lead with|leads with|outcome first)\b/i.test(fb))) {
    const rc = collapse(stripLead(resultUnit));
    out = [rc, ...out.filter((p) => p !== rc)];
  }
  const mainNorm = out.join("").replace(/\s+/g, "");
  const extra = additions.filter((a) => !mainNorm.includes(a.replace(/\s+/g, "")));
  const result = [...out, ...extra]
    .map((p) => collapse(p).replace(/[\s;.]+$/, ""))
    .filter(Boolean)
    .join("; ");
  return result || collapse(memento);
}

// ---------------------------------------------------------------------------------------------------------------
// Provider

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

export class OfflineProvider implements Provider {
  readonly name = "offline";
  readonly heuristic = true;
  readonly models = Object.freeze({ score: "heuristic", compress: "heuristic", judge: "heuristic" });
  private readonly countTokens: (s: string) => number;
  private readonly ratio: number;
  private calls = 0;

  constructor(options: OfflineProviderOptions = {}) {
    this.countTokens = options.countTokens ?? approxTokens;
    this.ratio = options.mementoRatio ?? 0.15;
    if (!(this.ratio > 0 && this.ratio <= 1)) throw new RangeError(`mementoRatio must be in (0, 1], got ${this.ratio}`);
  }

  async scoreBoundaries(sentences: readonly string[], signal?: AbortSignal): Promise<number[]> {
    throwIfAborted(signal);
    this.calls++;
    return scoreBoundariesHeuristic(sentences);
  }

  async writeMementos(_problem: string, blocks: readonly string[], signal?: AbortSignal): Promise<string[]> {
    throwIfAborted(signal);
    this.calls++;
    return blocks.map((b) => extractiveMemento(b, this.countTokens, this.ratio));
  }

  async judgeMementos(
    blocks: readonly string[],
    mementos: readonly string[],
    signal?: AbortSignal,
  ): Promise<Judgment[]> {
    throwIfAborted(signal);
    checkJudgeInput(blocks, mementos);
    this.calls++;
    return blocks.map((b, i) => judgeHeuristic(b, mementos[i], this.countTokens));
  }

  async refineMementos(
    blocks: readonly string[],
    mementos: readonly string[],
    judgments: readonly Judgment[],
    indices: readonly number[],
    signal?: AbortSignal,
  ): Promise<string[]> {
    throwIfAborted(signal);
    this.calls++;
    return indices.map((i) => refineHeuristic(blocks[i], mementos[i], judgments[i]?.feedback ?? "", this.countTokens));
  }

  usage(): Usage {
    return { promptTokens: 0, completionTokens: 0, requests: this.calls };
  }
}
