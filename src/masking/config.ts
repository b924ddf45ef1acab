import { z } from "zod";
import { UserError } from "../errors.js";

/**
 * Block-masking settings, with the meaning the reference vLLM engine gives them.
 * Defaults are Memento attention for Qwen3: evict every completed block, keep its delimiters.
 */
export interface MaskingConfig {
  /** -1: never evict (vanilla); 0: evict every completed block; N > 0: keep the last N completed blocks. */
  keepLastNBlocks: number;
  /** false: evict block content only, `<|block_start|>`/`<|block_end|>` stay (Qwen3, Olmo 3); true: evict them too (Phi-4). */
  maskDelimiters: boolean;
  /** Track only after `<|im_start|>assistant`; switched off when the tokenizer lacks those tokens. */
  requireAssistantSection: boolean;
  /** Evict when `<|summary_end|>` closes a memento. */
  compactOnSummaryEnd: boolean;
  /** With keepLastNBlocks 0: defer each eviction to the next `<|block_start|>`, so the last block stays visible for the answer. */
  keepLastBlockForAnswer: boolean;
  /** Evict `[block_start, block_end]` inclusive and recompute the memento's KV without its block. */
  restartMode: boolean;
  /** Longest block content, in tokens, before the caller must force `<|block_end|>`; 0 = no limit. */
  maxBlockTokens: number;
}

export const DEFAULT_MASKING: Readonly<MaskingConfig> = Object.freeze({
  keepLastNBlocks: 0,
  maskDelimiters: false,
  requireAssistantSection: false,
  compactOnSummaryEnd: true,
  keepLastBlockForAnswer: false,
  restartMode: false,
  maxBlockTokens: 0,
});

export const maskingConfigSchema = z
  .object({
    keepLastNBlocks: z.number().int().min(-1),
    maskDelimiters: z.boolean(),
    requireAssistantSection: z.boolean(),
    compactOnSummaryEnd: z.boolean(),
    keepLastBlockForAnswer: z.boolean(),
    restartMode: z.boolean(),
    maxBlockTokens: z.number().int().min(0),
  })
  .partial()
  .strict();

/** Fills omitted fields from DEFAULT_MASKING after validating the given ones. */
export function resolveMasking(partial: unknown = {}): MaskingConfig {
  const given = maskingConfigSchema.parse(partial ?? {});
  const out: MaskingConfig = { ...DEFAULT_MASKING };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  return out;
}

/** Token ids the tracker reacts to. `imStart`/`assistant` are needed only for requireAssistantSection. */
export interface TrackerTokenIds {
  blockStart: number;
  blockEnd: number;
  summaryStart: number;
  summaryEnd: number;
  imStart?: number;
  assistant?: number;
}

export const trackerTokenIdsSchema = z
  .object({
    blockStart: z.number().int(),
    blockEnd: z.number().int(),
    summaryStart: z.number().int(),
    summaryEnd: z.number().int(),
    imStart: z.number().int().optional(),
    assistant: z.number().int().optional(),
  })
  .strict()
  .refine((s) => new Set([s.blockStart, s.blockEnd, s.summaryStart, s.summaryEnd]).size === 4, {
    message: "blockStart, blockEnd, summaryStart and summaryEnd must be four different ids",
  });

/** What `trackerIdsOf` needs of a tokenizer (MementoTokenizer and the toy CharTokenizer both fit). */
export interface HasMarkerIds {
  readonly specialTokens: Readonly<{ blockStart: number; blockEnd: number; summaryStart: number; summaryEnd: number; imStart?: number; assistant?: number }>;
}

/** The tracker ids of a tokenizer; a UserError when it lacks a Memento marker (id -1). */
export function trackerIdsOf(tokenizer: HasMarkerIds): TrackerTokenIds {
  const s = tokenizer.specialTokens;
  for (const k of ["blockStart", "blockEnd", "summaryStart", "summaryEnd"] as const) {
    if (!(s[k] >= 0)) throw new UserError(`the tokenizer has no id for the Memento marker ${k}`);
  }
  const ids: TrackerTokenIds = { blockStart: s.blockStart, blockEnd: s.blockEnd, summaryStart: s.summaryStart, summaryEnd: s.summaryEnd };
  if (s.imStart !== undefined && s.imStart >= 0) ids.imStart = s.imStart;
  if (s.assistant !== undefined && s.assistant >= 0) ids.assistant = s.assistant;
  return ids;
}
