/**
 * Rollouts for RL on the toy task, generated in process (`rollouts.ts` collects them from an HTTP endpoint instead) by our engine over the policy being trained: the same
 * continuous batching, block tracking and physical eviction that serving uses, so a rollout's attention is the
 * Stage-2 mask the trainer then applies to it.
 *
 * 1. Each problem is answered `group` times; sample s of problem p at step k has its own sampler seed
 *    (`rolloutSeed`), so a rollout depends only on (seed, step, p, s) and the weights: reruns and resumes
 *    regenerate the same tokens.
 * 2. Masking is Stage 2's (keep-last-0, assistant section only), plus `maxBlockTokens`: a block that reaches
 *    it gets `<|block_end|>` forced, and that token is marked so the loss skips it (the policy did not draw it).
 * 3. The engine records log pi of every completion token under the raw model (engine/logprobs.ts): pi_old.
 * 4. The reward is the task's rule-based checker (`checkAnswer`): 1 when the answer after `</think>` is right,
 *    else 0. No judge model.
 * 5. The engine holds the model by reference: the optimizer's in-place updates reach the next rollouts without
 *    copying; the engine is rebuilt per call so no state survives a weight change.
 */
import { createEngine } from "../engine/engine.js";
import { ReferenceBackend } from "../engine/backends/reference.js";
import type { FinishReason } from "../engine/types.js";
import type { MaskingConfig } from "../masking/config.js";
import type { Qwen3Model } from "../model/transformer.js";
import type { CharTokenizer } from "../train/char-tokenizer.js";
import { renderSftPrompt, STAGE2_MASKING } from "../train/sft-data.js";
import { fnv1a, gradeResponse, type ToyDatasetItem } from "../train/toy-task.js";
import { toyMaxTokens } from "../train/toy.js";

export interface RolloutOptions {
  /** Sampling temperature (the paper: 1.0 for rollouts, 0.6 for evaluation). */
  temperature: number;
  /** Base seed: with the step, problem and sample it makes each rollout's sampler seed. */
  seed: number;
  /** Which step (or evaluation) this is, for the seeds. */
  step: number;
  /**
   * Masking of the rollouts over Stage 2's (keep-last-0, assistant section only): `maxBlockTokens` caps blocks,
   * `{ keepLastNBlocks: -1 }` gives full attention.
   */
  masking?: Partial<MaskingConfig>;
  /** Record log-probabilities (default true; evaluation does not need them). */
  logprobs?: boolean;
  /** Most completion tokens (default: the task's budget for the problem, `toyMaxTokens`). */
  maxTokens?: number;
  /** Each problem's index in the whole run (for seeds and `Rollout.problem`); default its index here. */
  problemIds?: readonly number[];
}

export interface Rollout {
  problem: number;
  sample: number;
  promptIds: number[];
  completionIds: number[];
  /** log pi_old of each completion token (empty when not recorded). */
  logprobs: Float32Array;
  /** Indices into completionIds of forced tokens. */
  forced: number[];
  text: string;
  /** The answer after `</think>` (trimmed), or null when there is none. */
  answer: string | null;
  reward: number;
  finishReason: FinishReason;
  peakKvTokens: number;
  /** Blocks the response closed (`<|block_end|>` tokens) and their mean length in tokens (0 when none). */
  blocks: number;
  meanBlockTokens: number;
}

/** The sampler seed of sample `s` of problem `p` at `step`: a hash, so nearby indices give unrelated streams. */
export function rolloutSeed(seed: number, step: number, p: number, s: number): number {
  return fnv1a(`rl/${seed}/${step}/${p}/${s}`);
}

/** Blocks closed in a completion and their mean length (tokens strictly between block start and end markers). */
export function blockLengths(ids: readonly number[], blockStart: number, blockEnd: number): number[] {
  const out: number[] = [];
  let open = -1;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === blockStart) open = i;
    else if (ids[i] === blockEnd && open >= 0) {
      out.push(i - open - 1);
      open = -1;
    }
  }
  return out;
}

/** Anything that generates rollouts: a model here (`localRollouts`) or the RL worker pool. */
export interface RolloutSource {
  rollouts(items: readonly ToyDatasetItem[], group: number, opts: RolloutOptions): Promise<Rollout[][]>;
}

/** Rollouts generated on this thread. */
export function localRollouts(model: Qwen3Model, tok: CharTokenizer): RolloutSource {
  return { rollouts: (items, group, opts) => generateRollouts(model, tok, items, group, opts) };
}

/** `group` rollouts of each problem, generated together; returned problem by problem, sample by sample. */
export async function generateRollouts(
  model: Qwen3Model,
  tok: CharTokenizer,
  problems: readonly ToyDatasetItem[],
  group: number,
  opts: RolloutOptions,
): Promise<Rollout[][]> {
  // Nothing to generate (a worker dealt no problem): no engine, whose KV budget would be sized by an empty max.
  if (problems.length === 0) return [];
  const st = tok.specialTokens;
  const stops = [st.imEnd, st.pad].filter((x): x is number => x !== undefined && x >= 0);
  const masking: Partial<MaskingConfig> = { ...STAGE2_MASKING, ...(opts.masking ?? {}) };
  const prompts = problems.map((p) => tok.encode(renderSftPrompt(p.prompt)));
  const budget = (p: ToyDatasetItem) => opts.maxTokens ?? toyMaxTokens(p.problem);
  const longest = Math.max(...problems.map((p, i) => prompts[i].length + budget(p)));
  const requests = problems.length * group;
  const engine = createEngine({
    backend: new ReferenceBackend(model),
    tokenizer: tok,
    // Room for every request at full length: rollouts never wait on KV or get preempted.
    kvBudgetTokens: requests * longest + 64,
    maxRunning: requests,
    masking,
    stopTokenIds: stops,
  });
  try {
    const handles = problems.flatMap((p, pi) =>
      Array.from({ length: group }, (_, s) =>
        engine.submit({
          id: `${pi}/${s}`,
          promptTokens: prompts[pi],
          sampling: {
            temperature: opts.temperature,
            topP: 1,
            topK: 0,
            minP: 0,
            seed: rolloutSeed(opts.seed, opts.step, opts.problemIds?.[pi] ?? pi, s),
            maxTokens: budget(p),
          },
          ...(opts.logprobs === false ? {} : { logprobs: 0 }),
        }),
      ),
    );
    const results = await Promise.all(handles.map((h) => h.result()));
    return problems.map((p, pi) =>
      Array.from({ length: group }, (_, s) => {
        const r = results[pi * group + s];
        if (r.finishReason === "error") throw new Error(`rollout ${pi}/${s} failed: ${r.message ?? "engine error"}`);
        const lengths = blockLengths(r.tokens, st.blockStart, st.blockEnd);
        const text = tok.decode(r.tokens);
        const grade = gradeResponse(p.problem, text);
        return {
          problem: opts.problemIds?.[pi] ?? pi,
          sample: s,
          promptIds: prompts[pi],
          completionIds: r.tokens,
          logprobs: Float32Array.from(r.logprobs ?? []),
          forced: r.forced,
          text,
          answer: grade.answer,
          reward: grade.correct ? 1 : 0,
          finishReason: r.finishReason,
          peakKvTokens: r.stats.peakKvTokens,
          blocks: lengths.length,
          meanBlockTokens: lengths.length ? lengths.reduce((a, b) => a + b, 0) / lengths.length : 0,
        };
      }),
    );
  } finally {
    await engine.close();
  }
}
