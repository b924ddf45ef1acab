/**
 * Stage 2 of the data pipeline: boundary scoring (paper section 3, "Boundary scoring").
 *
 * The n sentences of a trace are cut into windows of w consecutive sentences; consecutive windows share one
 * sentence (window k covers sentences [k(w-1), k(w-1)+w) clipped to n), so each of the n-1 boundaries lies
 * inside exactly one window of a pass and the provider rates it once per pass, with up to w-1 boundaries per
 * call. With several window sizes (e.g. [16, 11], coprime, as the paper suggests) every pass places the window
 * edges elsewhere, and the final score of a boundary is the mean over the passes (a real number in [0, 3]).
 */
import { UserError } from "../../errors.js";
import type { Provider } from "../types.js";

export interface ScoreWindow {
  /** First sentence index (inclusive). */
  start: number;
  /** Last sentence index + 1 (exclusive). */
  end: number;
}

export interface ScoreProgress {
  /** Index of the pass (window size) in `windows`. */
  pass: number;
  windowSize: number;
  /** Windows finished so far over all passes, and in total. */
  done: number;
  total: number;
}

export interface ScoreTraceOptions {
  /** Window sizes, one pass each (default [16]); each an integer >= 2. */
  windows?: readonly number[];
  /** Provider calls in flight at once within this trace (default 1). */
  concurrency?: number;
  onProgress?: (p: ScoreProgress) => void;
  signal?: AbortSignal;
}

export interface ScoreTraceResult {
  /** n-1 averaged scores; scores[i] sits between sentence i and i+1. */
  scores: number[];
  /** One array of n-1 integer scores per pass, in the order of `windows`. */
  passes: number[][];
}

/** The windows of one pass over n sentences (none when n < 2). */
export function scoreWindows(n: number, size: number): ScoreWindow[] {
  if (!Number.isInteger(size) || size < 2)
    throw new UserError(`score window size must be an integer >= 2, got ${size}`);
  const out: ScoreWindow[] = [];
  for (let start = 0; start < n - 1; start += size - 1) out.push({ start, end: Math.min(n, start + size) });
  return out;
}

async function runPool<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results = new Array<T>(tasks.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < tasks.length) {
      const i = next++;
      try {
        results[i] = await tasks[i]();
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
  return results;
}

export async function scoreTraceBoundaries(
  sentences: readonly string[],
  provider: Provider,
  options: ScoreTraceOptions = {},
): Promise<ScoreTraceResult> {
  const sizes = options.windows ?? [16];
  if (sizes.length === 0) throw new UserError("score windows: at least one window size is needed");
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new UserError(`score concurrency must be an integer >= 1`);
  const n = sentences.length;
  const plans = sizes.map((size) => scoreWindows(n, size));
  const total = plans.reduce((a, p) => a + p.length, 0);
  const passes = sizes.map(() => new Array<number>(Math.max(0, n - 1)).fill(NaN));
  let done = 0;
  const tasks: (() => Promise<void>)[] = [];
  plans.forEach((plan, pass) => {
    for (const w of plan) {
      tasks.push(async () => {
        const window = sentences.slice(w.start, w.end);
        const got = await provider.scoreBoundaries(window, options.signal);
        if (!Array.isArray(got) || got.length !== window.length - 1) {
          throw new Error(
            `provider ${provider.name} returned ${Array.isArray(got) ? got.length : "no"} scores for a window of ${window.length} sentences (expected ${window.length - 1})`,
          );
        }
        got.forEach((s, k) => {
          if (!Number.isInteger(s) || s < 0 || s > 3)
            throw new Error(`provider ${provider.name} returned score ${s} (expected an integer 0-3)`);
          passes[pass][w.start + k] = s;
        });
        done++;
        options.onProgress?.({ pass, windowSize: sizes[pass], done, total });
      });
    }
  });
  await runPool(tasks, concurrency);
  const scores = new Array<number>(Math.max(0, n - 1));
  for (let i = 0; i < scores.length; i++) {
    let sum = 0;
    for (const p of passes) sum += p[i];
    scores[i] = sum / passes.length;
  }
  return { scores, passes };
}
