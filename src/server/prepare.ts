/**
 * An HTTP request body -> the engine request it asks for: the prompt's tokens (chat messages rendered with the
 * model's template, Memento variant; or the raw prompt), sampling parameters, per-request masking overrides,
 * max_tokens capped to what the model's context leaves, and the log-probabilities asked for. Every mistake a
 * client can make here is a 400 naming the field at fault (`param`). Pure functions of the body: no engine, no
 * server state.
 */
import { randomUUID } from "node:crypto";
import type { EngineRequest, SamplingParams } from "../engine/types.js";
import { isUserError } from "../errors.js";
import { renderMementoChat, type ChatMessage } from "../format/chat.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { ApiError } from "./errors.js";
import type { Endpoint } from "./metrics.js";
import type { LogprobsRequest } from "./logprobs.js";
import {
  contentText,
  logprobsRequest,
  parseMasking,
  stopList,
  type ChatRequest,
  type CompletionRequest,
} from "./schema.js";

export type MaskingField = "block_masking" | "memento";

export interface PreparedRequest {
  endpoint: Endpoint;
  /** The response id (chatcmpl-... or cmpl-...), also the engine request's id. */
  id: string;
  /** What the engine runs. */
  request: EngineRequest & { id: string };
  /** Answer with Server-Sent Events. */
  stream: boolean;
  /** Streams end with a usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  /** The body field that carried the masking override, if any (refusals of a masking feature name it). */
  maskingField?: MaskingField;
  /** Log-probabilities asked for (`logprobs` / `top_logprobs`), if any. */
  logprobs?: LogprobsRequest;
  /** vLLM's `return_token_ids`: answer with the prompt's and the completion's token ids (not in streams). */
  returnTokenIds: boolean;
}

/** The body field holding the prompt, named by refusals about the prompt. */
export function promptParam(endpoint: Endpoint): "messages" | "prompt" {
  return endpoint === "chat" ? "messages" : "prompt";
}

/** The request's messages as the chat template takes them (`developer` is a system message). */
export function chatMessages(body: Pick<ChatRequest, "messages">): ChatMessage[] {
  return body.messages.map((m) => {
    const out: ChatMessage = { role: m.role === "developer" ? "system" : m.role, content: contentText(m.content) };
    if (typeof m.reasoning_content === "string") out.reasoning_content = m.reasoning_content;
    return out;
  });
}

/** The chat rendered with the model's template (Memento variant, generation prompt added), tokenized. */
export function chatPromptTokens(body: Pick<ChatRequest, "messages">, tokenizer: MementoTokenizer): number[] {
  let text: string;
  try {
    text = renderMementoChat(chatMessages(body), { tokenizer, addGenerationPrompt: true });
  } catch (e) {
    if (isUserError(e)) throw new ApiError(400, e.message, "invalid_value", "messages");
    throw e;
  }
  return tokenizer.encode(text);
}

/** The raw prompt's tokens: a string (or one string) is tokenized, token ids are taken as they are. */
export function completionPromptTokens(
  body: Pick<CompletionRequest, "prompt">,
  tokenizer: Pick<MementoTokenizer, "encode">,
): number[] {
  const prompt = body.prompt;
  let ids: number[];
  if (typeof prompt === "string") ids = tokenizer.encode(prompt);
  else if (prompt.length === 1 && typeof prompt[0] === "string") ids = tokenizer.encode(prompt[0]);
  else if (prompt.length === 1 && Array.isArray(prompt[0])) ids = prompt[0];
  else ids = prompt as number[];
  if (ids.length === 0) throw new ApiError(400, "prompt must not be empty", "invalid_value", "prompt");
  return ids;
}

/**
 * Most completion tokens: the request's max_tokens (default: all that is left), capped to what the context
 * leaves after the prompt. A prompt that leaves nothing is a 400 `context_length_exceeded`.
 */
export function completionTokenLimit(
  endpoint: Endpoint,
  promptLength: number,
  requested: number | null | undefined,
  maxModelLen: number,
): number {
  const room = maxModelLen - promptLength;
  if (room < 1) {
    const message = `the prompt has ${promptLength} tokens; the model's context is ${maxModelLen}`;
    throw new ApiError(400, message, "context_length_exceeded", promptParam(endpoint));
  }
  return Math.min(requested ?? room, room);
}

/** The body's sampling fields in the engine's terms (OpenAI's defaults where absent). */
export function samplingParams(body: ChatRequest | CompletionRequest, maxTokens: number): SamplingParams {
  const sampling: SamplingParams = {
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k ?? -1,
    minP: body.min_p ?? 0,
    maxTokens,
  };
  if (body.seed !== undefined && body.seed !== null) sampling.seed = body.seed;
  const stop = stopList(body.stop);
  if (stop) sampling.stop = stop;
  if (body.stop_token_ids && body.stop_token_ids.length > 0) sampling.stopTokenIds = body.stop_token_ids;
  return sampling;
}

/** Which of the two masking fields the body used (parseMasking refuses both at once). */
export function maskingFieldOf(body: ChatRequest | CompletionRequest): MaskingField | undefined {
  if (body.block_masking) return "block_masking";
  return body.memento ? "memento" : undefined;
}

export function newResponseId(endpoint: Endpoint): string {
  return `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replace(/-/g, "")}`;
}

/**
 * Everything but the prompt: limits, sampling, masking. `maxTokens` is the body's max_tokens (chat:
 * max_completion_tokens first).
 */
export function prepareRequest(
  endpoint: Endpoint,
  body: ChatRequest | CompletionRequest,
  promptTokens: number[],
  maxTokens: number | null | undefined,
  maxModelLen: number,
): PreparedRequest {
  const sampling = samplingParams(body, completionTokenLimit(endpoint, promptTokens.length, maxTokens, maxModelLen));
  const masking = parseMasking(body);
  const id = newResponseId(endpoint);
  const maskingField = masking ? maskingFieldOf(body) : undefined;
  const logprobs = logprobsRequest(body, endpoint);
  return {
    endpoint,
    id,
    request: {
      id,
      promptTokens,
      sampling,
      ...(masking ? { masking } : {}),
      skipSpecialTokens: body.skip_special_tokens ?? false,
      ...(logprobs ? { logprobs: logprobs.top } : {}),
    },
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
    ...(maskingField ? { maskingField } : {}),
    ...(logprobs ? { logprobs } : {}),
    returnTokenIds: body.return_token_ids ?? false,
  };
}
