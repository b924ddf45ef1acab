/**
 * Public API of the Memento inference engine: what a caller (the HTTP server, the benchmark, tests) submits and
 * receives, and what a model backend (reference transformer, llama.cpp) must implement.
 *
 * Data flows one way: EngineRequest -> Engine (queue) -> Scheduler (admission, preemption, batch) ->
 * KvBudget (token slots) -> Backend (prefill / decode / evict / recompute / free) -> events on the handle.
 *
 * Positions are LOGICAL everywhere: the token at index i of prompt + completion sits at position i forever.
 * Evicting a block leaves a gap; nothing is re-rotated or shifted.
 */
import type { MaskingConfig } from "../masking/config.js";
import type { SpecialTokenIds } from "../format/tokenizer.js";
import type { TokenLogprob } from "./logprobs.js";

export type { TokenLogprob } from "./logprobs.js";

// ---------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------

export interface SamplingParams {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability sums to >= topP (1 = off). */
  topP: number;
  /** Keep the K most likely tokens (0 or -1 = off). */
  topK: number;
  /** Drop tokens whose probability is below minP x the top token's probability (0 = off). */
  minP: number;
  /** Seed of this request's sampler; the same seed gives the same tokens (also across preemption). */
  seed?: number;
  /** Most completion tokens to generate (replay: most recorded tokens to feed). */
  maxTokens: number;
  /** Stop when the decoded completion text contains one of these; the stop string is not returned. */
  stop?: string[];
  /** Stop when one of these token ids is generated (the tokenizer's eos always stops). The token is not fed to the model. */
  stopTokenIds?: number[];
}

export interface EngineRequest {
  /** Caller's id (echoed in events and results); the engine makes one when absent. */
  id?: string;
  /** The prompt, already templated and tokenized. */
  promptTokens: number[];
  sampling: SamplingParams;
  /** Block-masking options for this request, over the engine's defaults. */
  masking?: Partial<MaskingConfig>;
  /**
   * Teacher-forced replay: feed these recorded completion tokens instead of sampling. Every step still computes
   * logits and runs the tracker and eviction; stop strings, stop ids and eos are ignored; the request ends with
   * "stop" after the last recorded token's KV has been computed (or "length" at maxTokens).
   */
  replayTokens?: number[];
  /**
   * Replay only: still have the backend compute each replayed row's logits, as generation would (and discard
   * them). For benchmarks that replay recorded token shapes at generation's per-token cost; default false.
   */
  replayLogits?: boolean;
  /** Decode token text without special tokens (default false: markers appear in the text). */
  skipSpecialTokens?: boolean;
  /**
   * Record each generated token's log-probability under the model (log_softmax of the logits, before sampling's
   * temperature and cuts; see engine/logprobs.ts), plus this many most likely alternatives (0 = the token's
   * only; at most MAX_TOP_LOGPROBS). Absent: none recorded. Replayed tokens carry none.
   */
  logprobs?: number;
}

/** Most alternatives a request may ask per token (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

// ---------------------------------------------------------------------------------------------------------
// Events and results
// ---------------------------------------------------------------------------------------------------------

export type FinishReason = "stop" | "length" | "cancelled" | "error";

export interface RequestStats {
  promptTokens: number;
  /** Completion tokens produced (sampled, forced or replayed), including a final stop token. */
  completionTokens: number;
  /** Blocks seen by the tracker (prompt and completion). */
  blocks: number;
  /** Eviction ranges applied. */
  evictions: number;
  /** KV cells freed by those evictions. */
  evictedTokens: number;
  /** Most KV cells this request held at once (after a token's KV was computed, before its eviction). */
  peakKvTokens: number;
  /** KV cells held now (0 once finished: the sequence is freed). */
  currentKvTokens: number;
  /** KV cells held when the request ended, just before its sequence was freed. */
  finalKvTokens: number;
  /** Sum over completion tokens of the cells held after that token's eviction (KV AUC, in token x tokens). */
  aucKvTokens: number;
  /** Times this request was preempted (KV freed, recomputed later). */
  preemptions: number;
  /** Tokens whose KV had to be computed again after preemptions. */
  recomputedTokens: number;
  /** Restart mode: memento tokens whose KV was recomputed without their block. */
  restartRecomputedTokens: number;
  /** maxBlockTokens: times `<|block_end|>` was forced. */
  forcedBlockEnds: number;
  /** Milliseconds from submit to admission, to the first token, and to the end. */
  queueMs: number;
  firstTokenMs: number;
  totalMs: number;
  /** Milliseconds between consecutive completion tokens (one entry per token after the first). */
  interTokenMs: number[];
}

/** The stats of a request before its first step: its prompt length, every count zero. */
export function emptyRequestStats(promptTokens: number): RequestStats {
  return {
    promptTokens,
    completionTokens: 0,
    blocks: 0,
    evictions: 0,
    evictedTokens: 0,
    peakKvTokens: 0,
    currentKvTokens: 0,
    finalKvTokens: 0,
    aucKvTokens: 0,
    preemptions: 0,
    recomputedTokens: 0,
    restartRecomputedTokens: 0,
    forcedBlockEnds: 0,
    queueMs: 0,
    firstTokenMs: 0,
    totalMs: 0,
    interTokenMs: [],
  };
}

export interface TokenEvent {
  type: "token";
  /** The token id. */
  id: number;
  /** Its logical position (prompt length + index in the completion). */
  position: number;
  /**
   * Text that became final with this token (may be "" while UTF-8 bytes or a possible stop-string prefix are
   * held back; held text is released with a later token, at the latest with the request's last token event).
   * The stop string itself and the text of a stop/eos token are never included.
   */
  text?: string;
  /** `logprobs` asked: log pi(id) under the model (a forced `<|block_end|>` has one too, though not drawn). */
  logprob?: number;
  /** `logprobs` > 0 asked: the most likely tokens at this position, best first. */
  topLogprobs?: TokenLogprob[];
  /** The engine forced this token (`<|block_end|>` at maxBlockTokens) instead of sampling it. */
  forced?: true;
}

export interface EvictEvent {
  type: "evict";
  /** Logical range [start, end) removed from this request's KV. */
  start: number;
  end: number;
  /** Tracker block index. */
  block: number;
  /** Position of the token whose KV triggered it. */
  trigger: number;
  /** Cells actually freed. */
  freed: number;
}

export interface DoneEvent {
  type: "done";
  finishReason: FinishReason;
  stats: RequestStats;
  /** "stop" only: the stop string matched, or the stop token id. */
  stopReason?: string | number;
  /** "error" only (also when the KV budget cannot hold a lone request: finishReason "length" with this set). */
  message?: string;
  /** Completion text no token event carried (held back for a possible stop string when the request ended otherwise). */
  text?: string;
}

export type EngineEvent = TokenEvent | EvictEvent | DoneEvent;

/** Everything a request produced, for callers that do not stream. */
export interface CompletionResult {
  id: string;
  /** Completion token ids (including a final stop token, if any). */
  tokens: number[];
  /** Completion text (stop string cut, stop token text dropped). */
  text: string;
  /** `logprobs` asked: log pi of each completion token (one per entry of `tokens`). */
  logprobs?: number[];
  /** `logprobs` > 0 asked: each completion token's most likely alternatives. */
  topLogprobs?: TokenLogprob[][];
  /** Indices into `tokens` of tokens the engine forced rather than sampled (maxBlockTokens). */
  forced: number[];
  finishReason: FinishReason;
  stopReason?: string | number;
  message?: string;
  stats: RequestStats;
  evictions: EvictEvent[];
}

export interface RequestHandle extends AsyncIterable<EngineEvent> {
  readonly id: string;
  /** Stops the request; its KV is freed at once (or right after the backend call in flight). Idempotent. */
  cancel(): void;
  /** Resolves when the request ends (never rejects; errors end with finishReason "error"). */
  result(): Promise<CompletionResult>;
}

// ---------------------------------------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------------------------------------

/** What the engine needs from a tokenizer: MementoTokenizer and the toy CharTokenizer both fit. */
export interface EngineTokenizer {
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  readonly specialTokens: Readonly<SpecialTokenIds>;
  /**
   * Ids the tokenizer knows (0..vocabSize-1). When the model has more logits (embedding rows padded to a
   * multiple of 8, as the toy's are), the engine never samples the extra ids: they decode to nothing, and a
   * policy at temperature 1.0 that RL has nudged can draw one.
   */
  readonly vocabSize?: number;
}

export interface EngineConfig {
  backend: Backend;
  tokenizer: EngineTokenizer;
  /** KV cells (token slots) shared by all running requests; the scheduler never lets resident cells exceed it. */
  kvBudgetTokens: number;
  /** Most requests decoded together (default: backend.maxSequences, else 256). */
  maxRunning?: number;
  /**
   * Requests waiting beyond the running ones: submit() throws EngineError "queue_full" once running + waiting
   * reach the most running + maxWaiting (default 1024).
   */
  maxWaiting?: number;
  /**
   * Tokens one engine step computes at most (default DEFAULT_MAX_STEP_TOKENS, capped to backend.maxStepTokens):
   * one per decoding request first, then prompt/rebuild chunks of requests catching up, oldest first. A long
   * prompt is prefilled over several steps while the others keep decoding.
   */
  maxStepTokens?: number;
  /** Cells a new request must leave free beyond its prompt to be admitted (default 16, at least 1). */
  admissionReserveTokens?: number;
  /** Masking defaults for every request (over DEFAULT_MASKING). */
  masking?: Partial<MaskingConfig>;
  /** Extra token ids that end every request (the tokenizer's eos always does). */
  stopTokenIds?: number[];
}

/**
 * Per-step token budget when neither the caller nor the backend sets one: vLLM's long-standing default for
 * chunked prefill (max_num_batched_tokens 512) and llama.cpp's default n_batch, so on llama.cpp a step is one
 * llama_decode.
 */
export const DEFAULT_MAX_STEP_TOKENS = 512;

export interface EngineStats {
  running: number;
  waiting: number;
  /** Resident KV cells of all running requests (as the backend reports them). */
  kvUsedTokens: number;
  kvTotalTokens: number;
  preemptions: number;
  evictions: number;
  evictedTokens: number;
  /** Completion tokens accepted so far (running requests too): once they finish, the sum of their completionTokens. */
  generatedTokens: number;
  finishedRequests: number;
  /** Most cells in use at once since start. */
  peakKvUsedTokens: number;
  /** Most requests running at once since start. */
  peakRunning: number;
  /** Engine steps (one forward pass each: decode rows and catch-up chunks). */
  steps: number;
  /** Decode rows computed (one per decoding request per step): decodedTokens / steps is the mean batch. */
  decodedTokens: number;
  /** Catch-up tokens computed: prompts, and rebuilds after preemptions. */
  prefillTokens: number;
}

export interface Engine {
  /**
   * Queues a request. Throws EngineError for invalid input, a feature the backend lacks (UnsupportedFeatureError),
   * a prompt larger than the budget, a full queue or a closed engine.
   */
  submit(req: EngineRequest): RequestHandle;
  stats(): EngineStats;
  /** Cancels every request, frees all KV and closes the backend. */
  close(): Promise<void>;
}

export type EngineErrorCode = "invalid_request" | "prompt_too_large" | "queue_full" | "closed" | "unsupported_feature";

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string) {
    super(message);
    this.name = "EngineError";
    this.code = code;
  }
}

/**
 * A request (or the engine's masking defaults) asks for a feature its backend declares it lacks
 * (`backend.capabilities`). Code "unsupported_feature"; `feature` names the MaskingConfig field.
 */
export class UnsupportedFeatureError extends EngineError {
  constructor(
    readonly feature: BackendFeature,
    /** The backend's name (Backend.name). */
    readonly backend: string,
    /** Why the backend lacks it, when it says (BackendCapabilities.limitations). */
    readonly reason?: string,
  ) {
    const why = reason ? ` (${reason})` : "";
    super("unsupported_feature", `${feature} is not supported by the ${backend} backend${why}`);
    this.name = "UnsupportedFeatureError";
  }
}

// ---------------------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------------------

/** A backend's handle for one sequence's KV cache. */
export type SeqId = number;

export interface DecodeInput {
  seq: SeqId;
  token: number;
  /** Logical position of `token` (may be past the sequence's cell count: evicted ranges are gaps). */
  position: number;
}

/** One sequence's share of a step: `tokens` at consecutive logical positions from `position`. */
export interface StepInput {
  seq: SeqId;
  tokens: readonly number[];
  /** Logical position of tokens[0]; the others follow one by one (contiguous, past the resident ones). */
  position: number;
  /** Whether the caller needs the last token's logits (false: the backend may skip computing or copying them). */
  logits: boolean;
}

/** Request features a backend may lack; each is a MaskingConfig field a request can switch on. */
export type BackendFeature = "restartMode";

/** What a backend can serve, declared by the backend itself; the engine refuses requests that need more. */
export interface BackendCapabilities {
  /** Restart mode: after evicting a block, `recompute` the memento's KV at its logical positions, past the gap. */
  readonly restartMode: boolean;
  /**
   * All sequences draw KV cells from one shared pool (false: each sequence owns a fixed slice of
   * kvCapacityTokens / maxSequences cells, as llama.cpp's non-unified cache does).
   */
  readonly unifiedKvPool: boolean;
  /** Why a missing feature is missing, one clause each (quoted in refusals). */
  readonly limitations?: Readonly<Partial<Record<BackendFeature, string>>>;
}

/**
 * What a backend that declares nothing is taken to support: its contract (`recompute`, one budget of cells)
 * in full. Backends that cannot honour part of it must declare `capabilities`.
 */
export const DEFAULT_BACKEND_CAPABILITIES: BackendCapabilities = Object.freeze({
  restartMode: true,
  unifiedKvPool: true,
});

/**
 * A model with per-sequence KV caches that can drop logical ranges without moving positions. All methods may
 * be called only by the engine's single loop, one at a time (never concurrently).
 */
export interface Backend {
  readonly name: string;
  /** What this backend can serve (default DEFAULT_BACKEND_CAPABILITIES). */
  readonly capabilities?: BackendCapabilities;
  /** Logit vector length. */
  readonly vocabSize: number;
  /** Most sequences alive at once (a llama.cpp context's sequence count); Infinity when unbounded. */
  readonly maxSequences: number;
  /** Where the weights run, for banners and health checks ("CPU", a GPU's name); absent: in this process's JS. */
  readonly device?: string;
  /** Physical KV cells the backend can hold over all sequences, if fixed (the engine caps its budget to it). */
  readonly kvCapacityTokens?: number;
  /** A new, empty sequence. */
  allocate(): Promise<SeqId>;
  /**
   * Computes the KV of `tokens` at strictly increasing logical `positions` (all past the sequence's resident
   * ones), causally, and returns the logits of the LAST token [vocabSize].
   */
  prefill(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array>;
  /** One token for each listed sequence, in one batch; returns each one's logits, in input order. */
  decode(batch: readonly DecodeInput[]): Promise<Float32Array[]>;
  /**
   * Optional: one forward pass over several sequences at once, decode rows and prefill chunks mixed (each
   * sequence at most once). Returns per input the last token's logits when it asked for them, else undefined;
   * the arrays may be views valid only until the next call. Backends without it are driven through prefill
   * (one call per chunk) and decode (the one-token rows, as one batch).
   */
  step?(inputs: readonly StepInput[]): Promise<(Float32Array | undefined)[]>;
  /** Most tokens one `step` call can take (llama.cpp's n_batch); the engine's per-step budget is capped to it. */
  readonly maxStepTokens?: number;
  /** Frees the sequence's cells with logical position in [start, end); later positions do not move. Returns cells freed. */
  evict(seq: SeqId, start: number, end: number): Promise<number>;
  /**
   * Restart mode: recomputes the KV of resident `tokens` at their logical `positions` against the cache as it
   * is now (overwriting their cells; no new cells), and returns the logits of the last one.
   */
  recompute(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array>;
  /** Frees every cell of the sequence and the sequence itself. */
  free(seq: SeqId): Promise<void>;
  /** Cells the sequence holds now (exact, measured by the backend). */
  residentTokens(seq: SeqId): number;
  close?(): Promise<void>;
}
