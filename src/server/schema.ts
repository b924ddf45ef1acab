/**
 * Request bodies of the OpenAI-compatible endpoints, validated with zod, and their translation into the
 * engine's sampling and masking options.
 *
 * Unknown top-level fields are ignored (as OpenAI-compatible servers do: clients send `user`, `metadata`,
 * `store`, ...). Features this server does not implement are rejected with a 400 when asked for with a
 * non-default value: `n`/`best_of` > 1, `logprobs`, `tools`, a `response_format` other than text,
 * penalties, `logit_bias`, `echo`, `suffix`.
 *
 * Extensions (vLLM-style, plus Memento's):
 * - `top_k`, `min_p`, `stop_token_ids`, `skip_special_tokens` (default false: blocks and mementos stay in the text);
 * - `block_masking` (alias `memento`): per-request block-masking options over the server's defaults, the
 *   fields of MaskingConfig in camelCase or snake_case (MASKING_FIELDS in src/masking/config.ts): keepLastNBlocks /
 *   keep_last_n_blocks, maskDelimiters, requireAssistantSection, compactOnSummaryEnd, keepLastBlockForAnswer,
 *   restartMode, maxBlockTokens.
 */
import { z } from "zod";
import { maskingConfigSchema, maskingFromSnakeCase, type MaskingConfig } from "../masking/config.js";
import { ApiError, fromZod } from "./errors.js";

/** Largest max_tokens accepted at all; anything above is refused as absurd (values up to it are capped to the context). */
export const MAX_TOKENS_LIMIT = 1 << 24;

const stopSchema = z.union([z.string(), z.array(z.string()).max(16, "at most 16 stop strings")]).nullable();

const textPart = z.object(
  { type: z.literal("text"), text: z.string() },
  { error: 'content parts must be {type: "text", text}' },
);

const messageSchema = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool"], {
    error: "role must be system, developer, user, assistant or tool",
  }),
  content: z
    .union([z.string(), z.array(textPart), z.null()], { error: "content must be a string or an array of text parts" })
    .optional(),
  reasoning_content: z.string().nullable().optional(),
});

const samplingFields = {
  model: z.string({ error: "model must be a string" }).min(1, "model must not be empty"),
  stream: z.boolean().nullable().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullable().optional() }).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0, "top_p must be in (0, 1]").max(1).nullable().optional(),
  top_k: z.number().int().min(-1).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  max_tokens: z
    .number()
    .int()
    .min(1)
    .max(MAX_TOKENS_LIMIT, `max_tokens must be at most ${MAX_TOKENS_LIMIT}`)
    .nullable()
    .optional(),
  stop: stopSchema.optional(),
  stop_token_ids: z.array(z.number().int().min(0)).max(64).nullable().optional(),
  n: z.literal(1, { error: "only n = 1 is supported" }).nullable().optional(),
  best_of: z.literal(1, { error: "only best_of = 1 is supported" }).nullable().optional(),
  presence_penalty: z.literal(0, { error: "presence_penalty is not supported (only 0)" }).nullable().optional(),
  frequency_penalty: z.literal(0, { error: "frequency_penalty is not supported (only 0)" }).nullable().optional(),
  logit_bias: z
    .record(z.string(), z.number())
    .refine((o) => Object.keys(o).length === 0, "logit_bias is not supported")
    .nullable()
    .optional(),
  logprobs: z
    .union([z.literal(false), z.literal(0)], { error: "logprobs are not supported" })
    .nullable()
    .optional(),
  top_logprobs: z.literal(0, { error: "top_logprobs are not supported" }).nullable().optional(),
  skip_special_tokens: z.boolean().nullable().optional(),
  block_masking: z.record(z.string(), z.unknown()).nullable().optional(),
  memento: z.record(z.string(), z.unknown()).nullable().optional(),
};

export const chatRequestSchema = z.looseObject({
  ...samplingFields,
  messages: z
    .array(messageSchema, { error: "messages must be an array of {role, content}" })
    .min(1, "messages must not be empty"),
  max_completion_tokens: samplingFields.max_tokens,
  tools: z.array(z.unknown()).max(0, "tools are not supported").nullable().optional(),
  response_format: z
    .looseObject({ type: z.literal("text", { error: 'only response_format {type: "text"} is supported' }) })
    .nullable()
    .optional(),
});

export const completionRequestSchema = z.looseObject({
  ...samplingFields,
  prompt: z.union(
    [
      z.string(),
      z.array(z.string()).length(1, "only one prompt per request"),
      z.array(z.number().int().min(0)).min(1, "prompt must not be empty"),
      z.array(z.array(z.number().int().min(0)).min(1)).length(1, "only one prompt per request"),
    ],
    { error: "prompt must be a string or an array of token ids" },
  ),
  echo: z.literal(false, { error: "echo is not supported" }).nullable().optional(),
  suffix: z.null({ error: "suffix is not supported" }).optional(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type ChatMessageIn = z.infer<typeof messageSchema>;

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ApiError(400, "the request body must be a JSON object", "invalid_json");
  const r = schema.safeParse(body);
  if (!r.success) throw fromZod(r.error);
  return r.data;
}

/** The per-request masking override: `block_masking` or its alias `memento`, keys in camelCase or snake_case. */
export function parseMasking(body: {
  block_masking?: Record<string, unknown> | null;
  memento?: Record<string, unknown> | null;
}): Partial<MaskingConfig> | undefined {
  if (body.block_masking && body.memento)
    throw new ApiError(400, "give block_masking or memento, not both", "invalid_value", "block_masking");
  const field = body.block_masking ? "block_masking" : "memento";
  const raw = body.block_masking ?? body.memento;
  if (!raw) return undefined;
  const r = maskingConfigSchema.safeParse(maskingFromSnakeCase(raw));
  if (!r.success) throw fromZod(r.error, [field]);
  return r.data as Partial<MaskingConfig>;
}

/** Text of a message's content (string, text parts, or null). */
export function contentText(content: ChatMessageIn["content"]): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  return content.map((p) => p.text).join("");
}

export function stopList(stop: string | string[] | null | undefined): string[] | undefined {
  if (stop === undefined || stop === null) return undefined;
  const list = (typeof stop === "string" ? [stop] : stop).filter((s) => s.length > 0);
  return list.length > 0 ? list : undefined;
}
