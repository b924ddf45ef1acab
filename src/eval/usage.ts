/**
 * The server's token counts (`usage`) against our replay's: the KV figures come from re-tokenising each response
 * with our tokenizer, so they describe the served model only if that tokenizer is the served model's.
 *
 * Policy:
 * 1. A generation agrees when |usage.completion_tokens - replayed output tokens| <= DEFAULT_USAGE_TOLERANCE_TOKENS
 *    or DEFAULT_USAGE_TOLERANCE_FRACTION of the usage count, whichever is larger: the server counts the stop token
 *    (`<|im_end|>`), which the text leaves out, and re-encoding text may merge a token or two differently.
 * 2. Only completed generations with both counts are compared; the rest are neither agreements nor mismatches.
 */
import type { Generation } from "./types.js";

/** Tokens by which the two counts may differ anywhere (the stop token, a merge at a marker). */
export const DEFAULT_USAGE_TOLERANCE_TOKENS = 2;
/** Fraction of the usage count by which long responses may differ (re-encoding merges). */
export const DEFAULT_USAGE_TOLERANCE_FRACTION = 0.01;

export interface UsageCheck {
  /** Generations compared (completed, with usage and a KV replay). */
  compared: number;
  /** Of those, how many differ by more than the tolerance. */
  mismatches: number;
  /** The first mismatch: the server's count and ours. */
  first?: { problemId: string; sample: number; usageTokens: number; replayTokens: number };
}

/** Whether the server's completion count and our replay's output count agree (policy 1). */
export function usageAgrees(usageTokens: number, replayTokens: number): boolean {
  const tolerance = Math.max(DEFAULT_USAGE_TOLERANCE_TOKENS, DEFAULT_USAGE_TOLERANCE_FRACTION * usageTokens);
  return Math.abs(usageTokens - replayTokens) <= tolerance;
}

/** Compares every completed generation's usage with its replay (policy 2). */
export function checkUsage(generations: readonly Generation[]): UsageCheck {
  const out: UsageCheck = { compared: 0, mismatches: 0 };
  for (const g of generations) {
    if (g.status !== "ok" || !g.usage || !g.kv || g.usage.completionTokens <= 0) continue;
    out.compared++;
    if (usageAgrees(g.usage.completionTokens, g.kv.outputTokens)) continue;
    out.mismatches++;
    out.first ??= {
      problemId: g.problemId,
      sample: g.sample,
      usageTokens: g.usage.completionTokens,
      replayTokens: g.kv.outputTokens,
    };
  }
  return out;
}
