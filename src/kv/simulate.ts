import { z } from "zod";
import { BlockTracker } from "../masking/tracker.js";
import { resolveMasking, trackerTokenIdsSchema, type MaskingConfig, type TrackerTokenIds } from "../masking/config.js";
import { KvLedger } from "./ledger.js";
import { bytesPerToken, kvBytes, type KvArchitecture } from "./architecture.js";
import { UserError } from "../errors.js";

export interface KvSimulationOptions {
  /** Convert token counts to bytes for this architecture (sliding-window layers counted exactly). */
  architecture?: KvArchitecture;
  /** Also return the resident count after every token's removals. */
  trajectory?: boolean;
}

export interface KvBytesReport {
  architecture: string;
  /** Bytes per token over all layers as if all were full attention. */
  bytesPerToken: number;
  peakBytes: number;
  finalBytes: number;
  /** Sum over output tokens of the bytes held after that token, in bytes x tokens. */
  aucByteTokens: number;
  peakGB: number;
  /** The paper's unit for KV AUC: GB x thousands of tokens. */
  aucGBxKtok: number;
}

export interface KvSimulationResult {
  /** Evicted ranges `[start, end)` of logical positions, in emission order. */
  compactions: [number, number][];
  /** For restart mode: where each compaction's memento recomputation begins (parallel to `compactions`). */
  recomputeFrom?: (number | null)[];
  /** Max resident tokens, measured after a token is added and before the removal it triggers. */
  peakTokens: number;
  /** Resident tokens after the last token. */
  finalTokens: number;
  /** Sum over output tokens of the resident count after that token's removals. */
  aucTokens: number;
  promptTokens: number;
  outputTokens: number;
  blocks: number;
  evictedTokens: number;
  bytes?: KvBytesReport;
  trajectory?: number[];
}

/**
 * Replays a token sequence through the block tracker and counts resident KV entries, the way the paper
 * measures peak KV and KV AUC. The sequence is the prompt (first `promptLength` tokens) then the output.
 */
export function simulateKv(
  tokens: ArrayLike<number>,
  promptLength: number,
  specialTokens: TrackerTokenIds,
  masking: Readonly<MaskingConfig>,
  options: KvSimulationOptions = {},
): KvSimulationResult {
  if (!Number.isInteger(promptLength) || promptLength < 0 || promptLength > tokens.length) {
    throw new UserError(`promptLength must be an integer in [0, ${tokens.length}], got ${promptLength}`);
  }
  const arch = options.architecture;
  const tracker = new BlockTracker(masking, specialTokens);
  const ledger = new KvLedger(arch?.slidingWindow?.window ?? Infinity, tokens.length);
  const compactions: [number, number][] = [];
  const recompute: (number | null)[] = [];
  const trajectory = options.trajectory ? new Array<number>(tokens.length - promptLength) : undefined;

  let peak = 0;
  let auc = 0;
  let peakBytes = 0;
  let aucBytes = 0;
  let evicted = 0;
  const n = tokens.length;
  for (let i = 0; i < n; i++) {
    const isPrompt = i < promptLength;
    ledger.add();
    if (ledger.resident > peak) peak = ledger.resident;
    if (arch) {
      const b = kvBytes(arch, ledger.resident, ledger.residentInWindow);
      if (b > peakBytes) peakBytes = b;
    }
    const evictions = tracker.push(tokens[i], isPrompt);
    for (let e = 0; e < evictions.length; e++) {
      const ev = evictions[e];
      compactions.push([ev.start, ev.end]);
      if (masking.restartMode) recompute.push(ev.recomputeFrom ?? null);
      evicted += ledger.remove(ev.start, ev.end);
    }
    if (!isPrompt) {
      auc += ledger.resident;
      if (arch) aucBytes += kvBytes(arch, ledger.resident, ledger.residentInWindow);
      if (trajectory) trajectory[i - promptLength] = ledger.resident;
    }
  }

  const result: KvSimulationResult = {
    compactions,
    peakTokens: peak,
    finalTokens: ledger.resident,
    aucTokens: auc,
    promptTokens: promptLength,
    outputTokens: n - promptLength,
    blocks: tracker.blocks.length,
    evictedTokens: evicted,
  };
  if (masking.restartMode) result.recomputeFrom = recompute;
  if (arch) {
    result.bytes = {
      architecture: arch.name,
      bytesPerToken: bytesPerToken(arch),
      peakBytes,
      finalBytes: kvBytes(arch, ledger.resident, ledger.residentInWindow),
      aucByteTokens: aucBytes,
      peakGB: peakBytes / 1e9,
      aucGBxKtok: aucBytes / 1e9 / 1e3,
    };
  }
  if (trajectory) result.trajectory = trajectory;
  return result;
}

/** The JSON that `memento kv simulate` reads on stdin. */
export const kvSimulateInputSchema = z
  .object({
    tokens: z.array(z.number().int()),
    promptLength: z.number().int().min(0),
    specialTokens: trackerTokenIdsSchema,
    masking: z.unknown().optional(),
    architecture: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
    trajectory: z.boolean().optional(),
  })
  .strict();

export type KvSimulateInput = z.infer<typeof kvSimulateInputSchema>;

export function parseKvSimulateInput(value: unknown): KvSimulateInput & { maskingConfig: MaskingConfig } {
  const input = kvSimulateInputSchema.parse(value);
  if (input.promptLength > input.tokens.length) {
    throw new UserError(`promptLength (${input.promptLength}) exceeds the number of tokens (${input.tokens.length})`);
  }
  return { ...input, maskingConfig: resolveMasking(input.masking) };
}
