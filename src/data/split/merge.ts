/**
 * The merge pass of sentence splitting: turns the units between cut points (see `../split.ts`) into the
 * sentences the boundary scorer sees, at the granularity of the public reference pipeline (microsoft/memento,
 * `data/pipeline/sentence_split.py`; rules learned by reading it, re-expressed here). It only joins
 * neighbours, never moves a unit's start or end, so the result still partitions the input.
 *
 * Each unit has a *view*: its text as the reference sees it, prose with newlines read as spaces, code and
 * display math verbatim. Merged views join with a space (passes 1-2) or a newline (passes 3-4), so "the last
 * line" of a group is its last piece from pass 3 on. Passes, in order, each over the previous pass's groups:
 *
 * 1. Leading punctuation: a unit opening with `:`, `;`, `)`, `]`, `}`, `"` or `'` joins the previous one.
 * 2. Short fragments: a group with fewer than `minTokens` tokens joins the previous group (the next one
 *    while nothing precedes it).
 * 3. Chains, greedily (the growing group is tested against the next one), never past `maxTokens`:
 *    a. a group ending in `:` takes the next (prose, math or code);
 *    b. an unfinished derivation (math that ends in `=`, `⇒`, `→`, `...` or with no `.!?:;`) takes next math;
 *    c. math takes next math that opens with a continuation word (`CONTINUATION_WORDS`);
 *    d. list items follow list items (`-`, `*`, `•` or `12.` opening the group);
 *    e. algorithm steps: groups opening with a step keyword (`if`, `while`, `return`, `compute`, ...), a
 *       group mentioning one followed by a step or an accumulator update (`total =`, `sum +=`), and an
 *       accumulator update followed by either.
 * 4. Short computations: consecutive groups of at most `DEFAULT_SHORT_MATH_MAX_WORDS` words that both carry
 *    math or code symbols merge (once a group has grown, its last line is what must be short), never past
 *    `maxTokens`. Token counts of groups are sums of their units' counts.
 *
 * "Math" in pass 3 is the reference's wide net (`=`, `^`, `_`, `\`, arrows, `≤`, `≥`, `$$`, "left side").
 * Our reading departs from the reference twice, on purpose: the short-fragment rule counts tokens with the
 * caller's counter (the reference counts o200k tokens, or words when tiktoken is missing), and continuation
 * words are whole words (the reference tests a prefix, so "Solving" continued like "So"). Continuation words
 * outside math do NOT merge, unlike the paper's prose: the reference does not, and merging them would drop
 * boundary F1 on the raw reference trace from 0.92 to 0.84 (and put science 17% under the reference's count).
 */
import type { Span } from "../split.js";

/** A piece of text between two cut points, trimmed. */
export interface Unit {
  start: number;
  end: number;
  kind: "text" | "math" | "code";
  /** Its token count (the caller's counter). */
  tokens: number;
}

export interface MergeOptions {
  minTokens: number;
  /** Passes 3-4 never grow a group past this many tokens. */
  maxTokens: number;
  /** Word limit of pass 4 (default `DEFAULT_SHORT_MATH_MAX_WORDS`). */
  shortMathMaxWords?: number;
}

/** Pass 4's word limit for a "short" computation step (the reference's value). */
export const DEFAULT_SHORT_MATH_MAX_WORDS = 30;

/** Words that continue a derivation when they open a group (pass 3c). */
export const CONTINUATION_WORDS = ["therefore", "thus", "so", "hence", "then", "substituting", "right", "left"];

const LEADING_PUNCT_RE = /^[:;)\]}"']/;
const MATH_SIGN_RE = /\$\$|[⇒→≥≤=^_\\]|right\s+side|left\s+side|simplify|expand/i;
const FINISHED_RE = /[.!?:;]$/;
const UNFINISHED_MATH_END_RE = /(?:[=⇒→]|\.\.\.)$/;
const CONTINUATION_RE = new RegExp(`^(?:${CONTINUATION_WORDS.join("|")})(?![\\p{L}\\p{N}_])`, "iu");
const LIST_ITEM_RE = /^(?:[-*•]|\d+\.)/;
const STEP_START_RE = /^(?:for each|compute|calculate|initialize|return|if|else|while|set)\b/i;
const STEP_WORD_RE = /\b(?:for each|compute|calculate|initialize|return|if|else|while|set)/i;
const ACCUMULATOR_RE = /(?:total|prob|sum|product|count)\s*[-+*/]?=|product_|sum_/i;
const CODE_SYMBOL_RE = /[=+*/()[\]{}<>$_^|→⇒]|->/;

/** A group under construction: its span, its view, where its last line starts in the view, and its kind. */
interface Group {
  span: Span;
  view: string;
  lastLineAt: number;
  /** Sum of its units' tokens. */
  tokens: number;
}

function wordCount(s: string): number {
  const t = s.trim();
  return t ? t.split(/\s+/).length : 0;
}

function unitGroup(text: string, u: Unit): Group {
  const raw = text.slice(u.start, u.end);
  const view = u.kind === "text" ? raw.replace(/\s*\n\s*/g, " ") : raw;
  return { span: [u.start, u.end], view, lastLineAt: view.lastIndexOf("\n") + 1, tokens: u.tokens };
}

function join(a: Group, b: Group, sep: " " | "\n"): Group {
  const view = a.view + sep + b.view;
  const bLast = b.view.lastIndexOf("\n");
  // The last line starts inside b when the separator or b itself breaks the line; else it is a's last line.
  const lastLineAt = sep === "\n" || bLast >= 0 ? a.view.length + 1 + bLast + 1 : a.lastLineAt;
  return { span: [a.span[0], b.span[1]], view, lastLineAt, tokens: a.tokens + b.tokens };
}

/** Pass 1. */
function mergeLeadingPunct(groups: Group[]): Group[] {
  const out: Group[] = [];
  for (const g of groups) {
    if (out.length > 0 && LEADING_PUNCT_RE.test(g.view)) out[out.length - 1] = join(out[out.length - 1], g, " ");
    else out.push(g);
  }
  return out;
}

/** Pass 2: short fragments join the previous group, or the next one while nothing precedes them. */
function mergeShort(groups: Group[], minTokens: number): Group[] {
  const out: Group[] = [];
  let pending: Group | null = null;
  const isShort = (g: Group) => g.tokens < minTokens;
  for (const g of groups) {
    if (pending) {
      const merged = join(pending, g, " ");
      pending = null;
      if (isShort(merged)) pending = merged;
      else out.push(merged);
      continue;
    }
    if (isShort(g)) {
      if (out.length > 0) out[out.length - 1] = join(out[out.length - 1], g, " ");
      else pending = g;
      continue;
    }
    out.push(g);
  }
  if (pending) out.push(pending);
  return out;
}

const hasMath = (s: string) => MATH_SIGN_RE.test(s);

function isUnfinishedMath(s: string): boolean {
  const t = s.trim();
  return hasMath(t) && (UNFINISHED_MATH_END_RE.test(t) || !FINISHED_RE.test(t));
}

const isStep = (s: string) => STEP_START_RE.test(s.trim());
const isAccumulator = (s: string) => ACCUMULATOR_RE.test(s);

/** Pass 3's test: whether the growing group `cur` takes the next group. */
function chains(cur: string, next: string): boolean {
  const c = cur.trim();
  const n = next.trim();
  if (c.endsWith(":")) return true;
  if (isUnfinishedMath(c) && hasMath(n)) return true;
  if (hasMath(c) && hasMath(n) && CONTINUATION_RE.test(n)) return true;
  if (LIST_ITEM_RE.test(c) && LIST_ITEM_RE.test(n)) return true;
  if (isStep(c) && isStep(n)) return true;
  if (STEP_WORD_RE.test(c) && (isStep(n) || isAccumulator(n))) return true;
  return isAccumulator(c) && (STEP_WORD_RE.test(n) || isAccumulator(n));
}

/** Pass 3. */
function mergeChains(groups: Group[], maxTokens: number): Group[] {
  const out: Group[] = [];
  for (const g of groups) {
    const cur = out[out.length - 1];
    if (cur && cur.tokens + g.tokens <= maxTokens && chains(cur.view, g.view)) out[out.length - 1] = join(cur, g, "\n");
    else out.push(g);
  }
  return out;
}

/** Pass 4. */
function mergeShortMath(groups: Group[], maxWords: number, maxTokens: number): Group[] {
  const out: Group[] = [];
  const shortMath = (s: string) => wordCount(s) <= maxWords && CODE_SYMBOL_RE.test(s);
  for (const g of groups) {
    const cur = out[out.length - 1];
    const join4 =
      cur &&
      cur.tokens + g.tokens <= maxTokens &&
      shortMath(g.view) &&
      (shortMath(cur.view) || shortMath(cur.view.slice(cur.lastLineAt)));
    if (join4) out[out.length - 1] = join(cur, g, "\n");
    else out.push(g);
  }
  return out;
}

/** Merges units into sentence spans (passes 1-4 of the module comment). */
export function mergeUnits(text: string, units: Unit[], opts: MergeOptions): Span[] {
  let groups = units.map((u) => unitGroup(text, u));
  groups = mergeLeadingPunct(groups);
  groups = mergeShort(groups, opts.minTokens);
  groups = mergeChains(groups, opts.maxTokens);
  groups = mergeShortMath(groups, opts.shortMathMaxWords ?? DEFAULT_SHORT_MATH_MAX_WORDS, opts.maxTokens);
  return groups.map((g) => g.span);
}
