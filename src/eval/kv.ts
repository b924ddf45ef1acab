/**
 * The KV record of one response (`GenerationKv`), as `eval run` stores it and `eval report --fill-kv` recomputes it.
 *
 * Policy:
 * 1. The numbers are `traceStats` (src/kv/trace-stats.ts) on the same text, problem, tokenizer, architecture and
 *    masking: a run's KV figures equal `memento trace stats` on its responses.
 * 2. The masking is the one the server applied: keepLastNBlocks 0 unless `masking` says otherwise (a
 *    `vllm-memento` server's launch settings, server-kind.ts); full attention is always measured beside it.
 */
import type { MementoTokenizer } from "../format/tokenizer.js";
import type { KvArchitecture } from "../kv/architecture.js";
import { traceStats } from "../kv/trace-stats.js";
import { simulateKv } from "../kv/simulate.js";
import { trackerIdsOf, resolveMasking, type MaskingConfig } from "../masking/config.js";
import { downsampleMax } from "../util/charts.js";
import type { GenerationKv } from "./types.js";

/** Points kept of each stored KV trajectory (bucket maxima, so sawtooth peaks survive). */
export const TRAJECTORY_POINTS = 512;

/**
 * The `kv` record of one response, as `eval run` stores it: the simulator's numbers with block masking
 * (keepLastNBlocks 0, or `masking`) and under full attention (after the chat prompt of `problem`, when given),
 * per-block token counts, and both trajectories of the response's own tokens (resident tokens excluding the prompt).
 */
export function computeGenerationKv(
  response: string,
  opts: {
    tokenizer: MementoTokenizer;
    architecture: KvArchitecture;
    problem?: string;
    /** The server's masking settings over the defaults (policy 2); absent: keepLastNBlocks 0. */
    masking?: Partial<MaskingConfig>;
  },
): GenerationKv {
  const s = traceStats(
    { id: "", text: response, problem: opts.problem },
    { tokenizer: opts.tokenizer, architecture: opts.architecture, masking: opts.masking },
  );
  const special = trackerIdsOf(opts.tokenizer);
  const tokens = opts.tokenizer.encode(response);
  const masking = resolveMasking({ keepLastNBlocks: 0, ...opts.masking });
  const traj = simulateKv(tokens, 0, special, masking, { trajectory: true }).trajectory ?? [];
  return {
    promptTokens: s.promptTokens,
    outputTokens: s.outputTokens,
    blocks: s.blocks,
    compression: s.overallCompression,
    blockTokens: s.blockTokens,
    mementoTokens: s.mementoTokens,
    memento: {
      peakTokens: s.memento.peakTokens,
      aucTokens: s.memento.aucTokens,
      peakGB: s.memento.peakGB,
      aucGBxKtok: s.memento.aucGBxKtok,
    },
    vanilla: {
      peakTokens: s.vanilla.peakTokens,
      aucTokens: s.vanilla.aucTokens,
      peakGB: s.vanilla.peakGB,
      aucGBxKtok: s.vanilla.aucGBxKtok,
    },
    trajectory: downsampleMax(traj, TRAJECTORY_POINTS),
    vanillaTrajectory: downsampleMax(
      traj.map((_, i) => i + 1),
      TRAJECTORY_POINTS,
    ),
  };
}
