/**
 * The toy Memento task: a seeded family of "running digit sum" problems that a ~1M-parameter character-level
 * transformer can learn on a couple of CPU cores, written in the Memento format so that block masking matters.
 *
 * Problem. The prompt gives a start value x0 (one digit) and N labelled groups of G random digits:
 *
 *   x=0 a:54389 b:31740 c:48102 d:93615
 *
 * The answer is x0 plus every digit of every group, modulo 10: the running value after all N*G steps
 * x <- (x + d) mod 10. Nothing shorter than doing the additions recovers it (every digit changes it).
 *
 * Response. One block per group, each doing G steps, then a memento with the running value:
 *
 *   <think>\n
 *   <|block_start|>a:54389|0 4389_|5 389__|9 89___|2 9____|0 _____|9<|block_end|>\n<|summary_start|>a x=9<|summary_end|>\n
 *   <|block_start|>b:31740|9 1740_|2 740__|3 40___|0 0____|4 _____|4<|block_end|>\n<|summary_start|>b x=4<|summary_end|>\n
 *   ...
 *   </think>\n\n{answer}
 *
 * Block text = `{label}:` then G+1 fixed-width chunks (see `blockText`): the group is first copied from the prompt
 * (found by its label: an induction-style copy), then each step's chunk is read off the previous chunk at fixed
 * distances (shifted digits, the digit being added, the running value), a copy or a 100-entry addition table,
 * learnable by a tiny model. A block is several times longer than its memento, as real reasoning blocks are, so
 * evicting blocks saves KV (a bit over 2x lower peak with the defaults, the prompt included). The memento
 * `{label} x={value}` names the group just finished and the running value after it.
 *
 * Why the memento carries all the state needed after eviction: with memento attention (keepLastNBlocks 0) a
 * block's content is evicted as soon as its memento closes. The next block needs exactly (1) which group comes
 * next — the successor of the label in the last memento — and that group's digits, which are in the prompt
 * (never evicted), and (2) the running value, which is in the last memento. Whether to stop is decided the same
 * way (no group with the next label in the prompt: write `</think>`), and the answer is the value in the last
 * memento. So a model that writes correct mementos loses nothing when its blocks are evicted, while a model
 * that relied on reading earlier blocks (say, to re-add digits) fails: masking matters.
 *
 * Lengths with the defaults (G = 5, N = 4..8, character tokenizer, ChatML chat): prompt 3 + 8 N characters
 * (35-67); per block 49 content tokens + 2 delimiters + 5 memento + 2 memento markers + 2 newlines; a whole
 * training example exactly 18 + 68 N tokens (290-562); N blocks of G steps (20-40 steps).
 *
 * Splits: a problem belongs to the held-out ("test") split iff an FNV-1a hash of its prompt is 0 mod
 * TEST_FRACTION_DENOMINATOR; `generateDataset` only keeps problems of the requested split (rejection sampling),
 * so train and test sets are disjoint whatever their seeds and sizes. Within one dataset prompts are unique.
 */
import { UserError } from "../errors.js";
import { buildResponse, decomposeResponse, parseResponse } from "../format/response.js";
import { validateResponse } from "../format/validate.js";
import { IM_END } from "../format/tokens.js";

/** A deterministic generator of floats in [0, 1). */
export type Rng = () => number;

/** A small, fast 32-bit counter-based generator (a splitmix-style finaliser over a Weyl sequence). */
export function makeRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

/** Integer in [lo, hi] (inclusive). */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export interface ToyParams {
  /** Fewest groups (= blocks) per problem. Default 4. */
  minGroups: number;
  /** Most groups per problem (at most 26: labels a..z). Default 8. */
  maxGroups: number;
  /** Digits per group (= steps per block). Default 5. */
  groupSize: number;
}

export const DEFAULT_TOY_PARAMS: Readonly<ToyParams> = Object.freeze({ minGroups: 4, maxGroups: 8, groupSize: 5 });

/** Seeds used by `memento toy generate` when none is given: the training set and the held-out set. */
export const DEFAULT_TRAIN_SEED = 1;
export const DEFAULT_TEST_SEED = 2;
/** One problem in this many (by prompt hash) belongs to the held-out split. */
export const TEST_FRACTION_DENOMINATOR = 10;

export type ToySplit = "train" | "test";

export interface ToyProblem {
  /** The start value x0 (0-9). */
  start: number;
  /** The digit groups, in order; group k is labelled LABELS[k]. */
  groups: number[][];
  /** The prompt text. */
  prompt: string;
  /** Running value after each group (what memento k states). */
  values: number[];
  /** The final running value (the answer). */
  answer: number;
}

const LABELS = "abcdefghijklmnopqrstuvwxyz";

/** Checks and completes partial parameters. */
export function resolveToyParams(partial: Partial<ToyParams> = {}): ToyParams {
  const p: ToyParams = { ...DEFAULT_TOY_PARAMS };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (p as unknown as Record<string, number>)[k] = v as number;
  const int = (name: keyof ToyParams, lo: number, hi: number): void => {
    const v = p[name];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new UserError(`toy task: ${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  };
  int("minGroups", 1, LABELS.length);
  int("maxGroups", 1, LABELS.length);
  int("groupSize", 1, 64);
  if (p.minGroups > p.maxGroups) throw new UserError(`toy task: minGroups (${p.minGroups}) > maxGroups (${p.maxGroups})`);
  return p;
}

/** Builds a problem from its start value and groups (computes prompt, values and answer). */
export function makeProblem(start: number, groups: number[][]): ToyProblem {
  if (!Number.isInteger(start) || start < 0 || start > 9) throw new UserError(`toy task: start must be a digit, got ${start}`);
  if (groups.length === 0 || groups.length > LABELS.length) throw new UserError(`toy task: need 1-${LABELS.length} groups, got ${groups.length}`);
  const values: number[] = [];
  let x = start;
  for (const g of groups) {
    if (g.length === 0) throw new UserError("toy task: empty group");
    for (const d of g) {
      if (!Number.isInteger(d) || d < 0 || d > 9) throw new UserError(`toy task: group digits must be 0-9, got ${d}`);
      x = (x + d) % 10;
    }
    values.push(x);
  }
  const prompt = `x=${start} ` + groups.map((g, k) => `${LABELS[k]}:${g.join("")}`).join(" ");
  return { start, groups: groups.map((g) => [...g]), prompt, values, answer: x };
}

/** Draws one problem. Consumes a fixed pattern of random numbers for given params, so datasets are reproducible. */
export function generateProblem(rng: Rng, params: Partial<ToyParams> = {}): ToyProblem {
  const p = resolveToyParams(params);
  const n = randInt(rng, p.minGroups, p.maxGroups);
  const start = randInt(rng, 0, 9);
  const groups: number[][] = [];
  for (let k = 0; k < n; k++) {
    const g: number[] = [];
    for (let j = 0; j < p.groupSize; j++) g.push(randInt(rng, 0, 9));
    groups.push(g);
  }
  return makeProblem(start, groups);
}

/** Parses a prompt written by `makeProblem` back into a problem (UserError if it is not one). */
export function parsePrompt(prompt: string): ToyProblem {
  const m = /^x=(\d)((?: [a-z]:\d+)+)$/.exec(prompt);
  if (!m) throw new UserError(`toy task: not a toy prompt: ${JSON.stringify(prompt.slice(0, 60))}`);
  const parts = m[2].trim().split(" ");
  const groups = parts.map((part, k) => {
    if (part[0] !== LABELS[k]) throw new UserError(`toy task: group ${k + 1} is labelled ${part[0]}, expected ${LABELS[k]}`);
    return [...part.slice(2)].map(Number);
  });
  return makeProblem(Number(m[1]), groups);
}

/**
 * The text of block k: the group is copied from the prompt, then one fixed-width chunk per step. A chunk is
 * `{digits still to add, left-aligned, padded with _}|{running value}`; each step drops the first digit, adds it
 * to the running value and pads on the right:
 *
 *   a:54389|0 4389_|5 389__|9 89___|2 9____|0 _____|9
 *
 * Every prediction inside a block reads tokens at fixed distances back (the same slot of the previous chunk,
 * its first digit, its running value), so a small model can learn it; and a block is several times longer than
 * its memento, as real reasoning blocks are, so evicting blocks saves KV.
 */
export function blockText(problem: ToyProblem, k: number): string {
  let x = k === 0 ? problem.start : problem.values[k - 1];
  const digits = problem.groups[k];
  const chunks: string[] = [`${digits.join("")}|${x}`];
  for (let i = 0; i < digits.length; i++) {
    x = (x + digits[i]) % 10;
    chunks.push(`${digits.slice(i + 1).join("")}${"_".repeat(i + 1)}|${x}`);
  }
  return `${LABELS[k]}:${chunks.join(" ")}`;
}

/** The memento of block k: `{label} x={running value}`. */
export function mementoText(problem: ToyProblem, k: number): string {
  return `${LABELS[k]} x=${problem.values[k]}`;
}

/** The reference Memento response (canonical layout of `buildResponse`; valid per `validateResponse`). */
export function renderResponse(problem: ToyProblem): string {
  const blocks = problem.groups.map((_, k) => blockText(problem, k));
  const mementos = problem.groups.map((_, k) => mementoText(problem, k));
  return buildResponse({ blocks, mementos, answer: String(problem.answer) });
}

export interface ToyGrade {
  /** The answer after `</think>` equals the expected one. */
  correct: boolean;
  /** The answer text found (trimmed), or null when there is no `</think>`. */
  answer: string | null;
  /** The response passes `validateResponse`. */
  valid: boolean;
  /** Mementos whose text equals the reference memento of the same block. */
  mementosCorrect: number;
  /** Number of blocks in the reference solution. */
  blocksExpected: number;
  /** Number of top-level blocks in the response. */
  blocks: number;
}

/** Drops what a generation may leave after the answer: an end-of-turn marker and anything after it. */
function stripEndOfTurn(text: string): string {
  const i = text.indexOf(IM_END);
  let s = i === -1 ? text : text.slice(0, i);
  const j = s.indexOf("<|endoftext|>");
  if (j !== -1) s = s.slice(0, j);
  return s;
}

/** Grades a response (a model's output, possibly ending with `<|im_end|>`) against the problem. */
export function gradeResponse(problem: ToyProblem, responseText: string): ToyGrade {
  const text = stripEndOfTurn(responseText);
  const v = validateResponse(text, { allowMissingThinkStart: true });
  const parsed = v.parsed;
  const parts = decomposeResponse(parsed);
  const answer = parsed.thinkEnd ? parts.answer.trim() : null;
  let mementosCorrect = 0;
  for (let k = 0; k < Math.min(parts.mementos.length, problem.groups.length); k++) {
    if (parts.mementos[k].trim() === mementoText(problem, k)) mementosCorrect++;
  }
  return {
    correct: answer !== null && answer === String(problem.answer),
    answer,
    valid: v.valid,
    mementosCorrect,
    blocksExpected: problem.groups.length,
    blocks: parts.blocks.length,
  };
}

/** True when the response's final answer (after `</think>`) is the problem's answer. */
export function checkAnswer(problem: ToyProblem, responseText: string): boolean {
  return gradeResponse(problem, responseText).correct;
}

/** 32-bit FNV-1a hash of a string's UTF-16 code units. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The split a problem belongs to, from its prompt alone. */
export function splitOf(prompt: string): ToySplit {
  return fnv1a(prompt) % TEST_FRACTION_DENOMINATOR === 0 ? "test" : "train";
}

export interface ToyExample {
  prompt: string;
  response: string;
  answer: string;
}

export interface ToyDatasetItem extends ToyExample {
  problem: ToyProblem;
}

/**
 * `count` distinct problems of `split`, drawn from a generator seeded with `seed` (and the split, so the same
 * seed gives unrelated streams for the two splits). Deterministic. Throws if the parameters admit too few
 * distinct problems.
 */
export function generateDataset(seed: number, count: number, params: Partial<ToyParams> = {}, split: ToySplit = "train"): ToyDatasetItem[] {
  if (!Number.isInteger(count) || count < 0) throw new UserError(`toy task: count must be a non-negative integer, got ${count}`);
  if (!Number.isInteger(seed)) throw new UserError(`toy task: seed must be an integer, got ${seed}`);
  const p = resolveToyParams(params);
  const rng = makeRng((seed ^ (split === "test" ? 0x5bd1e995 : 0)) >>> 0);
  const seen = new Set<string>();
  const out: ToyDatasetItem[] = [];
  let attempts = 0;
  const maxAttempts = 1000 + count * 50 * TEST_FRACTION_DENOMINATOR;
  while (out.length < count) {
    if (++attempts > maxAttempts) {
      throw new UserError(`toy task: found only ${out.length} distinct ${split} problems of ${count} after ${attempts - 1} draws (parameters too small)`);
    }
    const problem = generateProblem(rng, p);
    if (splitOf(problem.prompt) !== split || seen.has(problem.prompt)) continue;
    seen.add(problem.prompt);
    out.push({ problem, prompt: problem.prompt, response: renderResponse(problem), answer: String(problem.answer) });
  }
  return out;
}

/** The held-out set: `generateDataset(seed, count, params, "test")` (seed defaults to DEFAULT_TEST_SEED). */
export function generateHeldOut(count: number, params: Partial<ToyParams> = {}, seed = DEFAULT_TEST_SEED): ToyDatasetItem[] {
  return generateDataset(seed, count, params, "test");
}
