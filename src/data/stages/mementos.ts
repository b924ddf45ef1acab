/**
 * Stage 4 of the data pipeline: iterative memento generation (paper section 3, "Iterative memento generation").
 *
 *   compress (all blocks, once) -> judge (all) -> [refine the ones under threshold with their feedback ->
 *   judge those again] x at most maxRounds
 *
 * Every round's memento and judgment is kept in the block's history; the memento kept is the last round's.
 * Round 0 is the compressor's; rounds 1..maxRounds are refinements (so a block has at most maxRounds + 1
 * rounds). A block passes when its last judgment scores at least `threshold`.
 */
import { UserError } from "../../errors.js";
import type { Judgment, MementoHistory, Provider } from "../types.js";

export interface MementoStageOptions {
  /** Judge score (0-10) a memento needs to pass (default 8). */
  threshold?: number;
  /** Refinement rounds at most (default 2). */
  maxRounds?: number;
  signal?: AbortSignal;
  /** Called after each judging round (round 0 = the compressor's mementos). */
  onRound?: (round: number, judged: number, failing: number) => void;
}

export interface MementoStageResult {
  mementos: string[];
  history: MementoHistory[];
}

function checkCount(what: string, got: unknown[], expected: number): void {
  if (!Array.isArray(got) || got.length !== expected) {
    throw new Error(`${what}: expected ${expected} results, got ${Array.isArray(got) ? got.length : "none"}`);
  }
}

export async function writeMementosWithJudge(
  problem: string,
  blocks: readonly string[],
  provider: Provider,
  options: MementoStageOptions = {},
): Promise<MementoStageResult> {
  const threshold = options.threshold ?? 8;
  const maxRounds = options.maxRounds ?? 2;
  if (!(threshold >= 0 && threshold <= 10))
    throw new UserError(`memento threshold must be in [0, 10], got ${threshold}`);
  if (!Number.isInteger(maxRounds) || maxRounds < 0) throw new UserError(`memento maxRounds must be an integer >= 0`);
  const { signal } = options;
  if (blocks.length === 0) return { mementos: [], history: [] };

  const mementos = await provider.writeMementos(problem, blocks, signal);
  checkCount("writeMementos", mementos, blocks.length);
  const current = [...mementos];
  const judgments: Judgment[] = await provider.judgeMementos(blocks, current, signal);
  checkCount("judgeMementos", judgments, blocks.length);
  const history: MementoHistory[] = current.map((m, i) => ({
    rounds: [{ memento: m, judgment: judgments[i] }],
    final: m,
    passed: judgments[i].score >= threshold,
  }));
  let failing = judgments.flatMap((j, i) => (j.score < threshold ? [i] : []));
  options.onRound?.(0, blocks.length, failing.length);

  for (let round = 1; round <= maxRounds && failing.length > 0; round++) {
    const refined = await provider.refineMementos(blocks, current, judgments, failing, signal);
    checkCount("refineMementos", refined, failing.length);
    failing.forEach((i, k) => {
      current[i] = refined[k];
    });
    const rejudged = await provider.judgeMementos(
      failing.map((i) => blocks[i]),
      failing.map((i) => current[i]),
      signal,
    );
    checkCount("judgeMementos", rejudged, failing.length);
    failing.forEach((i, k) => {
      judgments[i] = rejudged[k];
      history[i].rounds.push({ memento: current[i], judgment: rejudged[k] });
      history[i].final = current[i];
      history[i].passed = rejudged[k].score >= threshold;
    });
    const judged = failing.length;
    failing = failing.filter((i) => judgments[i].score < threshold);
    options.onRound?.(round, judged, failing.length);
  }
  return { mementos: current, history };
}
