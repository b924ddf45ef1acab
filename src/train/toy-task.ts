/**
 * The toy Memento task: a seeded family of lagged-Fibonacci problems that a ~1M-parameter character-level
 * transformer can learn on a couple of CPU cores, written in the Memento format so that block masking matters.
 *
 * Problem. The prompt gives the last four values of a digit sequence and a number of rounds k:
 *
 *   s=3714 k=6
 *
 * The sequence goes on by s[i] = (s[i-4] + s[i-3]) mod 10 (a lagged Fibonacci generator); one round is S new
 * values (S = 10 by default). The answer is the last four values after k rounds ("7198"). Nothing shorter than
 * doing the steps recovers it: every value mixes two earlier ones, and a 1M-parameter model has no closed form.
 *
 * Response. One block per round, each writing its S steps; its memento restates what is left of the problem in
 * the prompt's own words (the last four values, and the rounds still to do):
 *
 *   <think>\n
 *   <|block_start|>3+7=0 7+1=8 1+4=5 4+0=4 0+8=8 8+5=3 5+4=9 4+8=2 8+3=1 3+9=2<|block_end|>\n
 *   <|summary_start|>s=9212 k=5<|summary_end|>\n
 *   ...
 *   <|summary_start|>s=7198 k=0<|summary_end|>\n
 *   </think>\n\n7198
 *
 * A step is written `a+b=r` with a = s[i-4], b = s[i-3]. The layout is chosen so a tiny model can learn it fast:
 * each of `+`, `=` and the space occurs once per step, so the current token alone says what comes next and where
 * to read it: after a space, a is the b of the step before (3 tokens back); after `+`, b is the r of three steps
 * before (15 back); after `=`, r adds the tokens 3 and 1 back. Only a block's first steps read the memento (or the
 * prompt) right before the block instead. Nothing needs a content-addressed search. (The first version of this
 * task copied labelled digit groups out of the prompt and wrote steps whose `+` and `=` occurred twice each; a
 * 0.8M-parameter model trained for 50 minutes learned the format and none of the digits.)
 *
 * Why the memento carries all the state needed after eviction: with memento attention (keepLastNBlocks 0) a
 * block's content is evicted as soon as its memento closes. The next block needs the last four values, which the
 * memento states; whether to go on is its k (k=0: write `</think>`); the answer is its four values. So a model
 * that writes correct mementos loses nothing when its blocks are evicted, while one that relied on reading
 * earlier blocks would fail: masking matters. A block is several times longer than its memento, as real
 * reasoning blocks are, so evicting blocks saves KV.
 *
 * Lengths with the defaults (S = 10, k = 4-9, character tokenizer, ChatML chat): prompt 10 characters; per block
 * 59 content tokens + 2 delimiters + 1 newline + 10 memento + 2 memento markers + 1 newline = 75; a whole
 * training example exactly 28 + 75 k tokens (328-703).
 *
 * Problem space: 10^4 x (maxBlocks - minBlocks + 1) prompts. Splits: a problem belongs to the held-out ("test")
 * split iff an FNV-1a hash of its prompt is 0 mod TEST_FRACTION_DENOMINATOR; `generateDataset` only keeps
 * problems of the requested split (rejection sampling), so train and test sets are disjoint whatever their seeds,
 * sizes and round ranges. Within one dataset prompts are unique.
 */
import { UserError } from "../errors.js";
import { buildResponse, decomposeResponse } from "../format/response.js";
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
  /** Fewest rounds (= blocks) per problem. Default 4. */
  minBlocks: number;
  /** Most rounds per problem (at most 9: k is one digit). Default 9. */
  maxBlocks: number;
  /** Steps per round (= per block). Default 10. */
  stepsPerBlock: number;
}

export const DEFAULT_TOY_PARAMS: Readonly<ToyParams> = Object.freeze({ minBlocks: 4, maxBlocks: 9, stepsPerBlock: 10 });

/** Seeds used by `memento toy generate` when none is given: the training set and the held-out set. */
export const DEFAULT_TRAIN_SEED = 1;
export const DEFAULT_TEST_SEED = 2;
/** One problem in this many (by prompt hash) belongs to the held-out split. */
export const TEST_FRACTION_DENOMINATOR = 10;

/** How many trailing values make the state (the larger lag). */
export const STATE_SIZE = 4;

export type ToySplit = "train" | "test";

export interface ToyProblem {
  /** The last four values given in the prompt, oldest first. */
  start: number[];
  /** Rounds (= blocks), 1-9. */
  rounds: number;
  /** Steps per round. */
  stepsPerBlock: number;
  /** The prompt text. */
  prompt: string;
  /** The last four values after each round (what memento r states). */
  states: number[][];
  /** The last four values after the last round, as digits (the answer). */
  answer: string;
}

/** The next value of the sequence whose last four values are `last` (oldest first). */
export function nextValue(last: readonly number[]): number {
  const n = last.length;
  return (last[n - 4] + last[n - 3]) % 10;
}

/** The problem (or what is left of it) in the prompt's words: `s=3714 k=6`. */
export function stateText(state: readonly number[], roundsLeft: number): string {
  return `s=${state.join("")} k=${roundsLeft}`;
}

/** Checks and completes partial parameters. */
export function resolveToyParams(partial: Partial<ToyParams> = {}): ToyParams {
  const p: ToyParams = { ...DEFAULT_TOY_PARAMS };
  for (const [k, v] of Object.entries(partial))
    if (v !== undefined) (p as unknown as Record<string, number>)[k] = v as number;
  const int = (name: keyof ToyParams, lo: number, hi: number): void => {
    const v = p[name];
    if (!Number.isInteger(v) || v < lo || v > hi)
      throw new UserError(`toy task: ${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  };
  int("minBlocks", 1, 9);
  int("maxBlocks", 1, 9);
  int("stepsPerBlock", 1, 64);
  if (p.minBlocks > p.maxBlocks)
    throw new UserError(`toy task: minBlocks (${p.minBlocks}) > maxBlocks (${p.maxBlocks})`);
  return p;
}

const isDigit = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 9;

/** Builds a problem from its parameters (computes prompt, states and answer). */
export function makeProblem(
  start: readonly number[],
  rounds: number,
  stepsPerBlock = DEFAULT_TOY_PARAMS.stepsPerBlock,
): ToyProblem {
  if (start.length !== STATE_SIZE || !start.every(isDigit))
    throw new UserError(`toy task: the start must be ${STATE_SIZE} digits, got ${JSON.stringify(start)}`);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 9)
    throw new UserError(`toy task: k must be 1-9, got ${rounds}`);
  if (!Number.isInteger(stepsPerBlock) || stepsPerBlock < 1)
    throw new UserError(`toy task: stepsPerBlock must be a positive integer, got ${stepsPerBlock}`);
  const seq = [...start];
  const states: number[][] = [];
  for (let r = 0; r < rounds; r++) {
    for (let s = 0; s < stepsPerBlock; s++) seq.push(nextValue(seq));
    states.push(seq.slice(-STATE_SIZE));
  }
  const last = states[states.length - 1];
  return { start: [...start], rounds, stepsPerBlock, prompt: stateText(start, rounds), states, answer: last.join("") };
}

/** Draws one problem. Consumes a fixed pattern of random numbers for given params, so datasets are reproducible. */
export function generateProblem(rng: Rng, params: Partial<ToyParams> = {}): ToyProblem {
  const p = resolveToyParams(params);
  const rounds = randInt(rng, p.minBlocks, p.maxBlocks);
  const start = Array.from({ length: STATE_SIZE }, () => randInt(rng, 0, 9));
  return makeProblem(start, rounds, p.stepsPerBlock);
}

/** Parses a prompt written by `makeProblem` back into a problem (UserError if it is not one). */
export function parsePrompt(prompt: string, stepsPerBlock = DEFAULT_TOY_PARAMS.stepsPerBlock): ToyProblem {
  const m = /^s=(\d{4}) k=([1-9])$/.exec(prompt);
  if (!m) throw new UserError(`toy task: not a toy prompt: ${JSON.stringify(prompt.slice(0, 60))}`);
  return makeProblem([...m[1]].map(Number), Number(m[2]), stepsPerBlock);
}

/**
 * The text of block r: its S steps `a+b=r` (a = s[i-4], b = s[i-3], r = s[i]), space-separated:
 *
 *   3+7=0 7+1=8 1+4=5 4+0=4 0+8=8 8+5=3 5+4=9 4+8=2 8+3=1 3+9=2
 */
export function blockText(problem: ToyProblem, r: number): string {
  const seq = [...(r === 0 ? problem.start : problem.states[r - 1])];
  const steps: string[] = [];
  for (let s = 0; s < problem.stepsPerBlock; s++) {
    const n = seq.length;
    const v = nextValue(seq);
    steps.push(`${seq[n - 4]}+${seq[n - 3]}=${v}`);
    seq.push(v);
  }
  return steps.join(" ");
}

/** The memento of block r: what is left of the problem, `s=.... k=..` (k = rounds still to do). */
export function mementoText(problem: ToyProblem, r: number): string {
  return stateText(problem.states[r], problem.rounds - r - 1);
}

/** The reference Memento response (canonical layout of `buildResponse`; valid per `validateResponse`). */
export function renderResponse(problem: ToyProblem): string {
  const blocks = problem.states.map((_, r) => blockText(problem, r));
  const mementos = problem.states.map((_, r) => mementoText(problem, r));
  return buildResponse({ blocks, mementos, answer: problem.answer });
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
  for (let r = 0; r < Math.min(parts.mementos.length, problem.rounds); r++) {
    if (parts.mementos[r].trim() === mementoText(problem, r)) mementosCorrect++;
  }
  return {
    correct: answer !== null && answer === problem.answer,
    answer,
    valid: v.valid,
    mementosCorrect,
    blocksExpected: problem.rounds,
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
 * How many distinct prompts of `split` the parameters admit (the rounds range times 10^4 starts, filtered by the
 * split hash). Cheap (at most 90,000 hashes) and cached per (rounds range, split).
 */
export function splitProblemCount(params: Partial<ToyParams> = {}, split: ToySplit = "train"): number {
  const p = resolveToyParams(params);
  const key = `${p.minBlocks}-${p.maxBlocks}-${split}`;
  const cached = splitCountCache.get(key);
  if (cached !== undefined) return cached;
  let n = 0;
  for (let k = p.minBlocks; k <= p.maxBlocks; k++)
    for (let s = 0; s < 10 ** STATE_SIZE; s++)
      if (splitOf(`s=${String(s).padStart(STATE_SIZE, "0")} k=${k}`) === split) n++;
  splitCountCache.set(key, n);
  return n;
}

const splitCountCache = new Map<string, number>();

/**
 * `count` distinct problems of `split`, yielded one at a time as they are drawn from a generator seeded with
 * `seed` (and the split, so the same seed gives unrelated streams for the two splits). Deterministic.
 *
 * 1. Lazy: nothing is drawn before the consumer asks, so a reader that stops early stops the work.
 * 2. Memory is bounded by the problem space (the set of prompts already given out, at most 90,000 short
 *    strings), never by `count`.
 * 3. Asking for more problems than the split holds (`splitProblemCount`) is a UserError, thrown once every
 *    distinct problem has been yielded, not after a futile search; the arguments are checked on the first `next()`.
 */
export function* generateDatasetItems(
  seed: number,
  count: number,
  params: Partial<ToyParams> = {},
  split: ToySplit = "train",
): Generator<ToyDatasetItem> {
  if (!Number.isInteger(count) || count < 0)
    throw new UserError(`toy task: count must be a non-negative integer, got ${count}`);
  if (!Number.isInteger(seed)) throw new UserError(`toy task: seed must be an integer, got ${seed}`);
  const p = resolveToyParams(params);
  const available = count > 0 ? splitProblemCount(p, split) : 0;
  const rng = makeRng((seed ^ (split === "test" ? 0x5bd1e995 : 0)) >>> 0);
  const seen = new Set<string>();
  while (seen.size < count) {
    if (seen.size === available) {
      throw new UserError(
        `toy task: only ${available} distinct ${split} problems exist with k=${p.minBlocks}-${p.maxBlocks}, ` +
          `asked for ${count} (parameters too small)`,
      );
    }
    const problem = generateProblem(rng, p);
    if (splitOf(problem.prompt) !== split || seen.has(problem.prompt)) continue;
    seen.add(problem.prompt);
    yield { problem, prompt: problem.prompt, response: renderResponse(problem), answer: problem.answer };
  }
}

/** `generateDatasetItems` collected into an array (throws, before returning anything, when the split is too small). */
export function generateDataset(
  seed: number,
  count: number,
  params: Partial<ToyParams> = {},
  split: ToySplit = "train",
): ToyDatasetItem[] {
  return [...generateDatasetItems(seed, count, params, split)];
}

/** The held-out set: `generateDataset(seed, count, params, "test")` (seed defaults to DEFAULT_TEST_SEED). */
export function generateHeldOut(
  count: number,
  params: Partial<ToyParams> = {},
  seed = DEFAULT_TEST_SEED,
): ToyDatasetItem[] {
  return generateDataset(seed, count, params, "test");
}
