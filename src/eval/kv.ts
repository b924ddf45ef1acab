import type { MementoTokenizer } from "../format/tokenizer.js";
import type { KvArchitecture } from "../kv/architecture.js";
import { traceStats } from "../kv/trace-stats.js";
import { simulateKv } from "../kv/simulate.js";
import { trackerIdsOf, resolveMasking } from "../masking/config.js";
import { downsampleMax } from "../util/charts.js";
import type { GenerationKv } from "./types.js";

/** Points kept of each stored KV trajectory (bucket maxima, so sawtooth peaks survive). */
export const TRAJECTORY_POINTS = 512;

/**
 * The `kv` record of one response, as `eval run` stores it: the simulator's numbers with block masking
 * (keepLastNBlocks 0) and under full attention (after the chat prompt of `problem`, when given), per-block token
 * counts, and both trajectories of the response's own tokens (resident tokens excluding the prompt).
 */
export function computeGenerationKv(
  response: string,
  opts: { tokenizer: MementoTokenizer; architecture: KvArchitecture; problem?: string },
): GenerationKv {
  const s = traceStats(
    { id: "", text: response, problem: opts.problem },
    { tokenizer: opts.tokenizer, architecture: opts.architecture },
  );
  const special = trackerIdsOf(opts.tokenizer);
  const tokens = opts.tokenizer.encode(response);
  const traj =
    simulateKv(tokens, 0, special, resolveMasking({ keepLastNBlocks: 0 }), { trajectory: true }).trajectory ?? [];
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
