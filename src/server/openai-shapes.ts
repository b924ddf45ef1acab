/**
 * The JSON objects the server answers with, shaped as OpenAI's (and vLLM's) completions API: whole
 * completions, streamed chunks, and `usage` with Memento's `memento` extension (block and KV statistics of
 * the request). Pure builders over the engine's results; key order is part of the output and kept stable.
 *
 *   chat         chat.completion        choices: [{index, message: {role, content}, logprobs, finish_reason,
 *                                                 stop_reason}]
 *   completions  text_completion        choices: [{index, text, logprobs, finish_reason, stop_reason}]
 *   chat chunk   chat.completion.chunk  choices: [{index, delta, logprobs, finish_reason}]
 *   text chunk   text_completion        choices: [{index, text, logprobs, finish_reason}]
 * The final chunk adds `stop_reason` to its choice and a top-level `memento`; the usage chunk has `choices: []`.
 * `logprobs` is null unless the request asked (then the shape of logprobs.ts, in a chunk for the chunk's tokens).
 * With vLLM's `return_token_ids` a whole completion adds `prompt_token_ids` (chat: top level; completions: on the
 * choice) and the choice's `token_ids`, plus Memento's `forced_token_indices` (indices into `token_ids` of the
 * `<|block_end|>` tokens the engine forced at maxBlockTokens, so RL can leave them out of the policy loss).
 */
import type { FinishReason, RequestStats } from "../engine/types.js";
import type { Endpoint } from "./metrics.js";

/** `usage.memento`: what Memento did for one request (KV cells are token slots). */
export interface MementoUsage {
  blocks: number;
  evictions: number;
  evicted_tokens: number;
  peak_kv_tokens: number;
  final_kv_tokens: number;
  kv_auc_tokens: number;
  preemptions: number;
  recomputed_tokens: number;
  forced_block_ends: number;
  queue_ms: number;
  time_to_first_token_ms: number;
  total_ms: number;
  /** Why the request ended early, when the engine says (e.g. the KV budget ran out). */
  message?: string;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  memento: MementoUsage;
}

/** What every object of one response repeats. */
export interface ResponseHead {
  /** chatcmpl-... or cmpl-... */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The model name the request gave. */
  model: string;
}

/** How a request ended, as the builders need it (CompletionResult and the engine's done event both fit). */
export interface Ending {
  finishReason: FinishReason;
  stopReason?: string | number;
  message?: string;
  stats: RequestStats;
}

const COMPLETION_OBJECT = { chat: "chat.completion", completions: "text_completion" } as const;
const CHUNK_OBJECT = { chat: "chat.completion.chunk", completions: "text_completion" } as const;

/** Milliseconds rounded to microseconds. */
const roundMs = (x: number) => Math.round(x * 1000) / 1000;

export function mementoUsage(s: RequestStats, message?: string): MementoUsage {
  return {
    blocks: s.blocks,
    evictions: s.evictions,
    evicted_tokens: s.evictedTokens,
    peak_kv_tokens: s.peakKvTokens,
    final_kv_tokens: s.finalKvTokens,
    kv_auc_tokens: s.aucKvTokens,
    preemptions: s.preemptions,
    recomputed_tokens: s.recomputedTokens,
    forced_block_ends: s.forcedBlockEnds,
    queue_ms: roundMs(s.queueMs),
    time_to_first_token_ms: roundMs(s.firstTokenMs),
    total_ms: roundMs(s.totalMs),
    ...(message ? { message } : {}),
  };
}

export function completionUsage(s: RequestStats, message?: string): CompletionUsage {
  return {
    prompt_tokens: s.promptTokens,
    completion_tokens: s.completionTokens,
    total_tokens: s.promptTokens + s.completionTokens,
    memento: mementoUsage(s, message),
  };
}

/** OpenAI knows "stop" and "length"; a request that ends otherwise and still answers reports "stop". */
export function openAiFinishReason(r: FinishReason): "stop" | "length" {
  return r === "length" ? "length" : "stop";
}

function headOf(object: string, head: ResponseHead) {
  return { id: head.id, object, created: head.created, model: head.model };
}

/** The fields that close a choice: its logprobs (null: not asked), why it finished, and vLLM's stop_reason. */
function choiceEnding(e: Ending, logprobs: object | null = null) {
  return { logprobs, finish_reason: openAiFinishReason(e.finishReason), stop_reason: e.stopReason ?? null };
}

/** What a whole completion carries beyond its text, when the request asked. */
export interface CompletionExtras {
  /** The choice's `logprobs` object (logprobs.ts). */
  logprobs?: object;
  /** `return_token_ids`: the prompt's and the completion's ids, and the indices of forced tokens. */
  tokenIds?: { prompt: readonly number[]; completion: readonly number[]; forced: readonly number[] };
}

/** A whole (non-streamed) completion. */
export function completionResponse(
  endpoint: Endpoint,
  head: ResponseHead,
  text: string,
  e: Ending,
  extras: CompletionExtras = {},
) {
  const content = endpoint === "chat" ? { message: { role: "assistant", content: text } } : { text };
  const ids = extras.tokenIds;
  const choiceIds = ids
    ? {
        ...(endpoint === "completions" ? { prompt_token_ids: ids.prompt } : {}),
        token_ids: ids.completion,
        forced_token_indices: ids.forced,
      }
    : {};
  return {
    ...headOf(COMPLETION_OBJECT[endpoint], head),
    choices: [{ index: 0, ...content, ...choiceEnding(e, extras.logprobs ?? null), ...choiceIds }],
    usage: completionUsage(e.stats, e.message),
    ...(ids && endpoint === "chat" ? { prompt_token_ids: ids.prompt } : {}),
  };
}

function chunk(
  endpoint: Endpoint,
  head: ResponseHead,
  content: object,
  ending: object,
  logprobs: object | null = null,
) {
  return { ...headOf(CHUNK_OBJECT[endpoint], head), choices: [{ index: 0, ...content, logprobs, ...ending }] };
}

/** The first chunk of a chat stream: the assistant role, no text yet. */
export function roleChunk(head: ResponseHead) {
  return chunk("chat", head, { delta: { role: "assistant", content: "" } }, { finish_reason: null });
}

/** A piece of completion text, with the logprobs of the tokens it carries when the request asked. */
export function textChunk(endpoint: Endpoint, head: ResponseHead, text: string, logprobs: object | null = null) {
  const content = endpoint === "chat" ? { delta: { content: text } } : { text };
  return chunk(endpoint, head, content, { finish_reason: null }, logprobs);
}

/** The chunk that carries finish_reason (no text), with the request's Memento statistics. */
export function finalChunk(endpoint: Endpoint, head: ResponseHead, e: Ending) {
  const content = endpoint === "chat" ? { delta: {} } : { text: "" };
  return { ...chunk(endpoint, head, content, choiceEnding(e)), memento: mementoUsage(e.stats, e.message) };
}

/** The last chunk when the client asked for `stream_options.include_usage`. */
export function usageChunk(endpoint: Endpoint, head: ResponseHead, e: Pick<Ending, "stats" | "message">) {
  return { ...headOf(CHUNK_OBJECT[endpoint], head), choices: [], usage: completionUsage(e.stats, e.message) };
}
