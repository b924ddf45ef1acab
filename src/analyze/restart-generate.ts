/**
 * One generation under one attention mode of the restart ablation (the paper's Table 3, section 6.2.1): the
 * reference KV cache, a block tracker and a seeded sampler, token by token, with the engine's order of events.
 *
 * 1. Modes. `memento`: keepLastNBlocks 0, a block's content leaves the cache right after its `<|summary_end|>`
 *    (its delimiters stay, as Qwen3 is trained), and the memento keeps the KV it was computed with while the
 *    block was visible (two channels: its text and its KV). `restart`: the reference engine's restart mode, the
 *    block leaves delimiters included ([block_start, block_end]), then the memento's KV is recomputed from its
 *    `<|summary_start|>` to the trigger without the block (text channel only). `full`: nothing evicted.
 *    Two controls separate restart's two changes: `mementoMaskDelimiters` evicts restart's range without
 *    recomputing, `restartKeepDelimiters` recomputes after evicting memento's range (content only).
 * 2. Order per token (as in src/engine/engine.ts): pick from the current logits, append (cache.step), push to
 *    the tracker, apply its evictions; in restart mode the recomputed last row's logits replace the step's, so
 *    the token after a memento is chosen from a memento that never saw its block.
 * 3. Sampling: greedy at temperature 0, else the engine's Sampler (temperature -> top-k -> top-p) with the seed
 *    given; a run's tokens depend only on its seed and its logits, so every mode draws from the same stream.
 * 4. A problem may force tokens (`forcedToken`): the task's inputs that no model can predict (the probe task's
 *    random digits). Forced tokens go through clause 2's cache and tracker like chosen ones.
 * 5. Counts: peak KV = most resident tokens at once (after a token is appended, before its evictions; prompt
 *    included); recomputed tokens = memento rows recomputed (restart and restartKeepDelimiters).
 */
import type { MaskingConfig, TrackerTokenIds } from "../masking/config.js";
import { BlockTracker } from "../masking/tracker.js";
import { KVCache } from "../model/kv-cache.js";
import type { Qwen3Model } from "../model/transformer.js";
import { argmax, Sampler } from "../engine/sampling.js";

/** The attention modes the paper compares (clause 1), in the order the table shows them. */
export const ABLATION_MODES = ["memento", "restart", "full"] as const;
/** The controls (clause 1): each changes one of the two things restart mode changes. */
export const CONTROL_MODES = ["mementoMaskDelimiters", "restartKeepDelimiters"] as const;
export type AblationMode = (typeof ABLATION_MODES)[number] | (typeof CONTROL_MODES)[number];

/** Sampling of one generation: temperature 0 is greedy (top-p, top-k and the seed are then unused). */
export interface AblationSampling {
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
}

/** One problem, already rendered and tokenized. */
export interface AblationProblem {
  id: string;
  promptIds: readonly number[];
  /** Most completion tokens (forced ones included). */
  maxTokens: number;
  /** The token the task imposes at completion index `completion.length`, or undefined to let the model choose. */
  forcedToken?: (completion: readonly number[]) => number | undefined;
  /** Whether a finished completion (stop token excluded) solves the problem. */
  isCorrect: (completion: readonly number[]) => boolean;
}

/** What the loop needs of a task besides its problems. */
export interface AblationTaskTokens {
  trackerIds: TrackerTokenIds;
  /** Tokens that end a completion (not appended). */
  stopIds: readonly number[];
  /** Track blocks only after `<|im_start|>assistant` (chat prompts); false for bare token tasks. */
  requireAssistantSection: boolean;
}

export interface GenerationResult {
  completion: number[];
  correct: boolean;
  peakKvTokens: number;
  evictions: number;
  recomputedTokens: number;
}

/** How a mode treats a completed block: the tracker's settings and whether the memento is recomputed. */
export interface ModeSpec {
  /** undefined: full attention, no tracker. */
  masking: MaskingConfig | undefined;
  /** Recompute the memento's KV from its `<|summary_start|>` once its block is evicted. */
  recompute: boolean;
}

/** Clause 1, mode by mode. */
export function modeSpec(mode: AblationMode, requireAssistantSection: boolean): ModeSpec {
  if (mode === "full") return { masking: undefined, recompute: false };
  const masking: MaskingConfig = {
    keepLastNBlocks: 0,
    maskDelimiters: mode === "mementoMaskDelimiters",
    requireAssistantSection,
    compactOnSummaryEnd: true,
    keepLastBlockForAnswer: false,
    restartMode: mode === "restart",
    maxBlockTokens: 0,
  };
  return { masking, recompute: mode === "restart" || mode === "restartKeepDelimiters" };
}

/** Runs one problem under one mode with one sampling seed (clauses 2-5). */
export function generateUnderMode(
  model: Qwen3Model,
  task: AblationTaskTokens,
  problem: AblationProblem,
  mode: AblationMode,
  sampling: AblationSampling,
): GenerationResult {
  const { masking, recompute } = modeSpec(mode, task.requireAssistantSection);
  const cache = new KVCache(model, problem.promptIds.length + 64);
  const tracker = masking ? new BlockTracker(masking, task.trackerIds) : undefined;
  for (const t of problem.promptIds) tracker?.push(t, true);
  const vocab = model.config.vocab_size;
  const promptLogits = cache.prefill(problem.promptIds);
  let logits = promptLogits.subarray((problem.promptIds.length - 1) * vocab);
  const sampler =
    sampling.temperature > 0
      ? new Sampler({ ...sampling, minP: 0, maxTokens: problem.maxTokens }, sampling.seed)
      : undefined;
  const stop = new Set(task.stopIds);
  const completion: number[] = [];
  let evictions = 0;
  let recomputedTokens = 0;
  while (completion.length < problem.maxTokens) {
    const forced = problem.forcedToken?.(completion);
    // Forced tokens draw nothing from the sampler: its stream advances once per chosen token only.
    const token = forced ?? (sampler ? sampler.sample(logits) : argmax(logits));
    if (forced === undefined && stop.has(token)) break;
    completion.push(token);
    logits = cache.step(token);
    for (const ev of tracker?.push(token) ?? []) {
      cache.evict(ev.start, ev.end);
      evictions++;
      // Restart mode names the memento's start; restartKeepDelimiters takes it from the tracker's block.
      const from = recompute ? (ev.recomputeFrom ?? tracker?.blocks[ev.block].summaryStart) : undefined;
      if (from !== undefined) {
        const positions: number[] = [];
        for (let p = from; p <= ev.trigger; p++) positions.push(p);
        const promptLength = problem.promptIds.length;
        const tokens = positions.map((p) => (p < promptLength ? problem.promptIds[p] : completion[p - promptLength]));
        const rows = cache.recompute(tokens, positions);
        logits = rows.subarray((positions.length - 1) * vocab);
        recomputedTokens += positions.length;
      }
    }
  }
  return {
    completion,
    correct: problem.isCorrect(completion),
    peakKvTokens: cache.peakResidentTokens,
    evictions,
    recomputedTokens,
  };
}
