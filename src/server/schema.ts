/**
 * Request bodies of the OpenAI-compatible endpoints, validated with zod, and their translation into the
 * engine's sampling and masking options.
 *
 * Unknown top-level fields are ignored (as OpenAI-compatible servers do: clients send `user`, `metadata`,
 * `store`, ...). Features this server does not implement are rejected with a 400 when asked for with a
 * non-default value: `n`/`best_of` > 1, `tools`, a `response_format` other than text, penalties, `logit_bias`,
 * `echo`, `suffix`.
 *
 * Log-probabilities (logprobs.ts): chat `logprobs: true` with `top_logprobs` 0..20; completions `logprobs` 0..5
 * (the legacy shape). A chat `top_logprobs` > 0 without `logprobs: true` is a 400, as OpenAI answers.
 *
 * Extensions (vLLM-style, plus Memento's):
 * - `top_k`, `min_p`, `stop_token_ids`, `skip_special_tokens` (default false: blocks and mementos stay in the text);
 * - `return_tokens_as_token_ids` (logprob token strings are `token_id:<id>`) and `return_token_ids` (the answer
 *   carries `prompt_token_ids` and the choice's `token_ids`; not in streams), both vLLM's;
 * - `block_masking` (alias `memento`): per-request block-masking options over the server's defaults, the
 *   fields of MaskingConfig in camelCase or snake_case (MASKING_FIELDS in src/masking/config.ts): keepLastNBlocks /
 *   keep_last_n_blocks, maskDelimiters, requireAssistantSection, compactOnSummaryEnd, keepLastBlockForAnswer,
 *   restartMode, maxBlockTokens.
 */
import { z } from "zod";
import { maskingConfigSchema, maskingFromSnakeCase, type MaskingConfig } from "../masking/config.js";
import { ApiError, fromZod } from "./errors.js";
import { MAX_CHAT_TOP_LOGPROBS, MAX_COMPLETION_LOGPROBS, type LogprobsRequest } from "./logprobs.js";

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
  return_tokens_as_token_ids: z.boolean().nullable().optional(),
  return_token_ids: z.boolean().nullable().optional(),
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
  logprobs: z.boolean({ error: "logprobs must be true or false" }).nullable().optional(),
  top_logprobs: z
    .number()
    .int()
    .min(0, `top_logprobs must be an integer in [0, ${MAX_CHAT_TOP_LOGPROBS}]`)
    .max(MAX_CHAT_TOP_LOGPROBS, `top_logprobs must be an integer in [0, ${MAX_CHAT_TOP_LOGPROBS}]`)
    .nullable()
    .optional(),
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
  logprobs: z
    .number({ error: `logprobs must be an integer in [0, ${MAX_COMPLETION_LOGPROBS}] (or null)` })
    .int()
    .min(0, `logprobs must be an integer in [0, ${MAX_COMPLETION_LOGPROBS}]`)
    .max(MAX_COMPLETION_LOGPROBS, `logprobs must be an integer in [0, ${MAX_COMPLETION_LOGPROBS}]`)
    .nullable()
    .optional(),
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

/** What the body asks of log-probabilities, or undefined for none (chat: `logprobs: true`; completions: a number). */
export function logprobsRequest(
  body: ChatRequest | CompletionRequest,
  endpoint: "chat" | "completions",
): LogprobsRequest | undefined {
  const tokenIds = body.return_tokens_as_token_ids ?? false;
  if (endpoint === "completions") {
    const k = (body as CompletionRequest).logprobs;
    return k === undefined || k === null ? undefined : { top: k, tokenIds };
  }
  const chat = body as ChatRequest;
  const top = chat.top_logprobs ?? 0;
  if (chat.logprobs !== true) {
    if (top > 0)
      throw new ApiError(
        400,
        "top_logprobs: logprobs must be true when top_logprobs is set",
        "invalid_value",
        "top_logprobs",
      );
    return undefined;
  }
  return { top, tokenIds };
}
