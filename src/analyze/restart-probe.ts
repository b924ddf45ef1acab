/**
 * The probe task (probe-task.ts: blocks of five random digits and their 3-digit running sum, each closed by a
 * memento restating the sum) as a problem set for the restart ablation.
 *
 * 1. A problem is one held-out sequence drawn from DEFAULT_PROBE_RESTART_SEED (training draws from the plan's
 *    seed 1) of 2 to `blocks` blocks (problem i has 2 + i mod (blocks - 1)): its prompt is the `<bos>`, and
 *    every token is forced to the reference except the last block's three running-sum digits, which the model
 *    writes (the probe task's own accuracy, clause 3 of probe-task.ts, teacher-forces the same way).
 * 2. Correct: those three digits equal the reference. They need the previous block's memento (its block is
 *    evicted by then), so this measures what a memento passes on: through text and KV, or text alone.
 * 3. No stop token: the forced layout ends the sequence at the last block's `<|summary_end|>`.
 */
import { makeRng } from "../train/toy-task.js";
import type { AblationProblem } from "./restart-generate.js";
import { DEFAULT_PROBE_BLOCKS, PROBE_TRACKER_IDS, SUM_DIGITS, probeSequence, randomDigits } from "./probe-task.js";
import type { AblationTask } from "./restart-tasks.js";

/** Seed of the held-out sequences (clause 1). */
export const DEFAULT_PROBE_RESTART_SEED = 3001;

/** The probe task's ablation problems (clauses 1-3). */
export function probeAblationTask(options: { limit: number; seed?: number; blocks?: number }): AblationTask {
  const rng = makeRng(options.seed ?? DEFAULT_PROBE_RESTART_SEED);
  const problems: AblationProblem[] = [];
  const most = Math.max(2, options.blocks ?? DEFAULT_PROBE_BLOCKS);
  for (let i = 0; i < options.limit; i++) {
    const seq = probeSequence(randomDigits(rng, 2 + (i % (most - 1))));
    // Completion index c is sequence position c + 1 (the prompt is the bos alone).
    const last = seq.digits.length - 1;
    const free = new Set<number>();
    for (let d = 0; d < SUM_DIGITS; d++) free.add(seq.sumStart[last] + d - 1);
    const reference = Array.from(seq.ids.subarray(1));
    problems.push({
      id: `probe-${i}`,
      promptIds: [seq.ids[0]],
      maxTokens: reference.length,
      forcedToken: (completion) => (free.has(completion.length) ? undefined : reference[completion.length]),
      isCorrect: (completion) => [...free].every((c) => completion[c] === reference[c]),
    });
  }
  return {
    name: `probe task, ${problems.length} held-out sequences of 2-${most} blocks (last block's sum)`,
    problems,
    trackerIds: PROBE_TRACKER_IDS,
    stopIds: [],
    requireAssistantSection: false,
  };
}
