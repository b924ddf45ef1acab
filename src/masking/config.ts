import { z } from "zod";
import { UserError } from "../errors.js";

/**
 * Block-masking settings, with the meaning the reference vLLM engine gives them. Defaults are Memento attention
 * for Qwen3: evict every completed block, keep its delimiters.
 *
 * MASKING_FIELDS is the one definition of each setting: its camelCase name (the key), its snake_case name in
 * HTTP request bodies, its CLI flag, help text, zod type and default. MaskingConfig, DEFAULT_MASKING,
 * maskingConfigSchema, the snake_case mapping and the CLI flags (src/cli/masking-options.ts) all derive from it.
 */

/** One block-masking setting. */
export interface MaskingField<S extends z.ZodType = z.ZodType> {
  /** Its name in request bodies besides the camelCase one (`block_masking: {keep_last_n_blocks: -1}`). */
  http: string;
  /**
   * Long CLI flag: `--name <n>` for a number; for a boolean, `--name` when it defaults to false and `--no-name`
   * when it defaults to true. null: no CLI flag.
   */
  flag: string | null;
  /** Short CLI alias (`-k`). */
  short?: string;
  /** Older long flags that stay accepted, hidden from the help. */
  aliases?: readonly string[];
  /** What it does (the CLI help text). */
  help: string;
  schema: S;
  default: z.output<S>;
}

function field<S extends z.ZodType>(spec: MaskingField<S>): MaskingField<S> {
  return spec;
}

export const MASKING_FIELDS = {
  /** -1: never evict (vanilla); 0: evict every completed block; N > 0: keep the last N completed blocks. */
  keepLastNBlocks: field({
    http: "keep_last_n_blocks",
    flag: "--keep-last-n-blocks <n>",
    short: "-k",
    aliases: ["--keep"],
    help: "completed blocks kept in the KV cache: 0 evicts every block (Memento), N the last N, -1 none (vanilla)",
    schema: z.number().int().min(-1),
    default: 0,
  }),
  /** false: evict block content only, `<|block_start|>`/`<|block_end|>` stay (Qwen3, Olmo 3); true: evict them too (Phi-4). */
  maskDelimiters: field({
    http: "mask_delimiters",
    flag: "--mask-delimiters",
    help: "evict <|block_start|>/<|block_end|> with the block (Phi-4 style)",
    schema: z.boolean(),
    default: false,
  }),
  /** Track only after `<|im_start|>assistant`; switched off when the tokenizer lacks those tokens. */
  requireAssistantSection: field({
    http: "require_assistant_section",
    // The trace commands derive it from the prompt; the server takes it per request.
    flag: null,
    help: "track blocks only after <|im_start|>assistant",
    schema: z.boolean(),
    default: false,
  }),
  /** Evict when `<|summary_end|>` closes a memento. */
  compactOnSummaryEnd: field({
    http: "compact_on_summary_end",
    flag: "--no-compact-on-summary-end",
    help: "do not evict when <|summary_end|> closes a memento",
    schema: z.boolean(),
    default: true,
  }),
  /** With keepLastNBlocks 0: defer each eviction to the next `<|block_start|>`, so the last block stays visible for the answer. */
  keepLastBlockForAnswer: field({
    http: "keep_last_block_for_answer",
    flag: "--keep-last-block-for-answer",
    help: "with keep 0, defer each eviction to the next <|block_start|> so the last block stays for the answer",
    schema: z.boolean(),
    default: false,
  }),
  /** Evict `[block_start, block_end]` inclusive and recompute the memento's KV without its block. */
  restartMode: field({
    http: "restart_mode",
    flag: "--restart-mode",
    help: "evict [block_start, block_end] and recompute the memento's KV without the block",
    schema: z.boolean(),
    default: false,
  }),
  /** Longest block content, in tokens, before the caller must force `<|block_end|>`; 0 = no limit. */
  maxBlockTokens: field({
    http: "max_block_tokens",
    flag: "--max-block-tokens <n>",
    help: "force <|block_end|> after this many block tokens (0 = no limit)",
    schema: z.number().int().min(0),
    default: 0,
  }),
};

type MaskingFields = typeof MASKING_FIELDS;
export type MaskingFieldName = keyof MaskingFields;

/** The settings, one value per MASKING_FIELDS entry (see there for each one's meaning). */
export type MaskingConfig = { [K in MaskingFieldName]: z.output<MaskingFields[K]["schema"]> };

export const MASKING_FIELD_NAMES = Object.keys(MASKING_FIELDS) as MaskingFieldName[];

export const DEFAULT_MASKING: Readonly<MaskingConfig> = Object.freeze(
  Object.fromEntries(MASKING_FIELD_NAMES.map((k) => [k, MASKING_FIELDS[k].default])) as MaskingConfig,
);

const maskingShape = Object.fromEntries(MASKING_FIELD_NAMES.map((k) => [k, MASKING_FIELDS[k].schema])) as {
  [K in MaskingFieldName]: MaskingFields[K]["schema"];
};

/** Any subset of the settings, camelCase keys; unknown keys are refused. */
export const maskingConfigSchema = z.object(maskingShape).partial().strict();

const camelOfSnake = new Map<string, MaskingFieldName>(MASKING_FIELD_NAMES.map((k) => [MASKING_FIELDS[k].http, k]));

/**
 * Renames the snake_case keys of a request's masking object to camelCase; other keys (camelCase ones, unknown
 * ones) pass unchanged, for maskingConfigSchema to accept or refuse.
 */
export function maskingFromSnakeCase(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) out[camelOfSnake.get(k) ?? k] = v;
  return out;
}

/** The settings with their snake_case (HTTP) names. */
export function maskingToSnakeCase(config: Partial<MaskingConfig>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of MASKING_FIELD_NAMES) if (config[k] !== undefined) out[MASKING_FIELDS[k].http] = config[k];
  return out;
}

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
  readonly specialTokens: Readonly<TrackerTokenIds>;
}

/** The tracker ids of a tokenizer; a UserError when it lacks a Memento marker (id -1). */
export function trackerIdsOf(tokenizer: HasMarkerIds): TrackerTokenIds {
  const s = tokenizer.specialTokens;
  for (const k of ["blockStart", "blockEnd", "summaryStart", "summaryEnd"] as const) {
    if (!(s[k] >= 0)) throw new UserError(`the tokenizer has no id for the Memento marker ${k}`);
  }
  const ids: TrackerTokenIds = {
    blockStart: s.blockStart,
    blockEnd: s.blockEnd,
    summaryStart: s.summaryStart,
    summaryEnd: s.summaryEnd,
  };
  if (s.imStart !== undefined && s.imStart >= 0) ids.imStart = s.imStart;
  if (s.assistant !== undefined && s.assistant >= 0) ids.assistant = s.assistant;
  return ids;
}
