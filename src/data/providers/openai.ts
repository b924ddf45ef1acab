/**
 * The `openai` provider: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, llama.cpp,
 * OpenRouter, ...) through the official `openai` client.
 *
 * Answers: every reply is validated (JSON syntax, exact counts, integer ranges; see ../prompts.ts). A bad reply
 * is asked for once more with the validation error appended to the conversation (after the model's own reply);
 * if the second reply is bad as well, the call throws `ProviderAnswerError`.
 *
 * JSON mode: by default requests carry `response_format: {type: "json_object"}`. If the server rejects that
 * with a 400 naming `response_format`, JSON mode is switched off for the rest of this provider's life and the
 * request is sent again at once (that resend is not counted as a retry); the prompts ask for bare JSON anyway.
 *
 * Transport: the client's own retries are off (`maxRetries: 0`). Ours retry 408/409/429/5xx, timeouts
 * (`timeoutMs` covers the whole request, body included: the client's timer stops at the headers), connection
 * failures and resets, and bodies that end early or are not JSON. The delay is exponential backoff with full
 * jitter, `random() * min(maxDelayMs, baseDelayMs * 2^(attempt-1))`, except that a `retry-after-ms` or
 * `Retry-After` header (seconds or an HTTP date) is obeyed when present (capped at `maxRetryAfterMs`). After
 * `attempts` tries, or at once for other statuses (400, 401, 403, 404, 422, ...), the call throws
 * `ProviderRequestError`. Everything is abortable through the AbortSignal: sleeps, rate-limit waits, requests.
 *
 * Rate limits: optional requests-per-minute and tokens-per-minute budgets, enforced by two token buckets
 * (`RateLimiter`). We wrote the ~60 lines rather than add `bottleneck`: we need a token-weighted budget whose
 * cost is only known after the response (the bucket is charged an estimate up front and corrected with the
 * reported usage), abortable waits, and an injectable clock for tests; and the project keeps dependencies few.
 *
 * Counters: usage (prompt/completion tokens as reported by the server, requests = completions received, re-asks
 * included), cost from optional per-1M-token prices, and `stats()` (retries, re-asks, JSON-mode fallback).
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "openai";
import {
  buildCompressMessages,
  buildJudgeMessages,
  buildRefineMessages,
  buildReaskMessage,
  buildScoreMessages,
  checkJudgeInput,
  parseJudgeAnswer,
  parseMementoAnswer,
  parseScoreAnswer,
  type ChatMessage,
  type ParseResult,
  type PromptKind,
} from "../prompts.js";
import type { Judgment, Provider, Usage } from "../types.js";

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** The model answered twice (once after being told what was wrong) without a valid answer. */
export class ProviderAnswerError extends Error {
  override name = "ProviderAnswerError";
  constructor(
    readonly stage: PromptKind,
    /** The validation error of the last answer. */
    readonly validation: string,
    /** The last answer (cut to 2,000 chars). */
    readonly answer: string,
  ) {
    super(`${stage}: invalid answer after one re-ask: ${validation}`);
  }
}

/** A request failed for good: a non-retryable status, or every attempt failed. */
export class ProviderRequestError extends Error {
  override name = "ProviderRequestError";
  constructor(
    readonly stage: RequestStage,
    message: string,
    /** HTTP status of the last failure, when there was a response. */
    readonly status: number | undefined,
    /** Attempts made (1 for a non-retryable failure). */
    readonly attempts: number,
    /** Whether the last failure was of a retryable kind (so retrying later may help). */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(`${stage}: ${message}`, options);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Abortable sleep

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Rate limiting

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const systemClock: Clock = { now: () => Date.now(), sleep };

/** A bucket of `perMinute` units that refills continuously; it may go negative (debt) after a correction. */
export class TokenBucket {
  private level: number;
  private last: number;
  constructor(
    readonly perMinute: number,
    private readonly now: () => number,
  ) {
    if (!(perMinute > 0)) throw new RangeError(`rate limit must be > 0, got ${perMinute}`);
    this.level = perMinute;
    this.last = now();
  }
  private refill(): void {
    const t = this.now();
    this.level = Math.min(this.perMinute, this.level + (Math.max(0, t - this.last) * this.perMinute) / 60_000);
    this.last = t;
  }
  /** Milliseconds until `n` units (at most a full bucket) are available; 0 when they are now. */
  delayFor(n: number): number {
    this.refill();
    const need = Math.min(n, this.perMinute);
    return this.level >= need ? 0 : Math.ceil(((need - this.level) * 60_000) / this.perMinute);
  }
  take(n: number): void {
    this.refill();
    this.level -= n;
  }
  get available(): number {
    this.refill();
    return this.level;
  }
}

export interface RateLimitOptions {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

/** Requests-per-minute and tokens-per-minute budgets; waiters are served first come, first served. */
export class RateLimiter {
  private readonly requests?: TokenBucket;
  private readonly tokens?: TokenBucket;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    options: RateLimitOptions,
    private readonly clock: Clock = systemClock,
  ) {
    const now = () => clock.now();
    if (options.requestsPerMinute !== undefined) this.requests = new TokenBucket(options.requestsPerMinute, now);
    if (options.tokensPerMinute !== undefined) this.tokens = new TokenBucket(options.tokensPerMinute, now);
  }

  get enabled(): boolean {
    return this.requests !== undefined || this.tokens !== undefined;
  }

  /** Waits until one request of about `estimatedTokens` tokens fits both budgets, then charges it. */
  acquire(estimatedTokens: number, signal?: AbortSignal): Promise<void> {
    const run = this.queue.then(() => this.waitAndTake(estimatedTokens, signal));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Charges (or refunds) the difference between the reported and the estimated tokens. */
  settle(estimatedTokens: number, actualTokens: number): void {
    this.tokens?.take(actualTokens - estimatedTokens);
  }

  private async waitAndTake(n: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      const wait = Math.max(this.requests?.delayFor(1) ?? 0, this.tokens?.delayFor(n) ?? 0);
      if (wait <= 0) {
        this.requests?.take(1);
        this.tokens?.take(n);
        return;
      }
      await this.clock.sleep(wait, signal);
    }
  }
}

/** A rough prompt-size estimate for the token budget (about 4 characters per token). */
export function estimatePromptTokens(messages: readonly ChatMessage[]): number {
  let chars = 0;
  for (const m of messages) chars += m.content.length + 8;
  return Math.ceil(chars / 4);
}

// ---------------------------------------------------------------------------------------------------------------
// Failure classification

export interface FailureInfo {
  retryable: boolean;
  status?: number;
  retryAfterMs?: number;
  reason: string;
}

/** `retry-after-ms`, else `Retry-After` (seconds or an HTTP date), in milliseconds. */
export function parseRetryAfter(
  headers: { get(name: string): string | null } | undefined,
  now = Date.now(),
): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers.get("retry-after");
  if (ra === null || ra.trim() === "") return undefined;
  if (Number.isFinite(Number(ra))) return Math.max(0, Number(ra) * 1000);
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const CONNECTION_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

function errorCodes(e: unknown): string[] {
  const out: string[] = [];
  for (let cur: unknown = e, depth = 0; cur && typeof cur === "object" && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") out.push(code);
    cur = (cur as { cause?: unknown }).cause;
  }
  return out;
}

function errorText(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur && depth < 5; depth++) {
    parts.push(cur instanceof Error ? cur.message : String(cur));
    cur = cur instanceof Error ? (cur as Error & { cause?: unknown }).cause : undefined;
  }
  return parts.join(": ");
}

/** Whether a failed request is worth retrying, and how long the server asks us to wait. */
export function classifyFailure(e: unknown): FailureInfo {
  if (e instanceof APIConnectionTimeoutError) return { retryable: true, reason: "request timed out" };
  if (e instanceof APIConnectionError)
    return { retryable: true, reason: `connection error (${errorText(e.cause ?? e)})` };
  if (e instanceof APIError && typeof e.status === "number") {
    const status = e.status;
    const retryable = status === 408 || status === 409 || status === 429 || status >= 500;
    const retryAfterMs = parseRetryAfter(e.headers);
    return { retryable, status, retryAfterMs, reason: `HTTP ${status}: ${e.message}` };
  }
  if (e instanceof SyntaxError) return { retryable: true, reason: `response body is not JSON (${e.message})` };
  const codes = errorCodes(e);
  const text = errorText(e);
  if (
    codes.some((c) => CONNECTION_CODES.has(c)) ||
    /terminated|socket|other side closed|ECONNRESET|fetch failed/i.test(text)
  ) {
    return { retryable: true, reason: `connection error (${text})` };
  }
  return { retryable: false, reason: text };
}

/** Full-jitter exponential backoff: uniform in [0, min(max, base * 2^(attempt-1))]. */
export function backoffDelay(
  attempt: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  return random() * Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt - 1));
}

class MalformedResponseError extends Error {
  override name = "MalformedResponseError";
}

class TimeoutError extends Error {
  override name = "TimeoutError";
}

// ---------------------------------------------------------------------------------------------------------------
// Provider

export interface StageModels {
  score: string;
  compress: string;
  judge: string;
}

export interface RetryOptions {
  /** Tries per request, the first included (default 6). */
  attempts?: number;
  /** Backoff base in ms (default 1000). */
  baseDelayMs?: number;
  /** Backoff cap in ms (default 60,000). */
  maxDelayMs?: number;
  /** Longest Retry-After we obey, in ms (default 120,000). */
  maxRetryAfterMs?: number;
  /** Limit for one request, headers and body, in ms (default 180,000). */
  timeoutMs?: number;
}

export interface Prices {
  /** USD per 1M prompt tokens. */
  inputPerMillion: number;
  /** USD per 1M completion tokens. */
  outputPerMillion: number;
}

/** A pipeline prompt kind, or "generate" for plain completions (`complete()`, used by evaluation). */
export type RequestStage = PromptKind | "generate";

export type ProviderEvent =
  | { type: "retry"; stage: RequestStage; attempt: number; delayMs: number; reason: string; status?: number }
  | { type: "reask"; stage: PromptKind; error: string }
  | { type: "json-mode-off"; stage: RequestStage; reason: string };

export interface CompletionResult {
  content: string;
  usage: { prompt: number; completion: number };
  finishReason?: string;
}

export interface OpenAIProviderOptions {
  /** Endpoint, e.g. "http://localhost:8000/v1" (default: the client's, i.e. OPENAI_BASE_URL or api.openai.com). */
  baseURL?: string;
  /** API key (default OPENAI_API_KEY; servers that need none get a placeholder when baseURL is set). */
  apiKey?: string;
  /** Model for every stage unless `models` overrides it. */
  model?: string;
  /** Per-stage models; refine uses the compress model. */
  models?: Partial<StageModels>;
  /** Ask for `response_format: json_object` (default true). */
  jsonMode?: boolean;
  temperature?: number;
  /** `max_tokens` per request (default: none, the server's). */
  maxTokens?: number;
  retry?: RetryOptions;
  rateLimit?: RateLimitOptions;
  prices?: Prices;
  /** Progress and diagnostics hook. */
  onEvent?: (event: ProviderEvent) => void;
  /** For tests: the random source of the jitter and the clock of the rate limiter. */
  random?: () => number;
  clock?: Clock;
}

export interface ProviderStats {
  retries: number;
  reasks: number;
  answerErrors: number;
  requestErrors: number;
  jsonMode: boolean;
}

const NO_KEY = "sk-no-key-required";

export class OpenAIProvider implements Provider {
  readonly name = "openai";
  readonly heuristic = false;
  readonly models: Readonly<StageModels>;
  private readonly client: OpenAI;
  private jsonMode: boolean;
  private readonly temperature?: number;
  private readonly maxTokens?: number;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly timeoutMs: number;
  private readonly limiter: RateLimiter;
  private readonly prices?: Prices;
  private readonly onEvent?: (event: ProviderEvent) => void;
  private readonly random: () => number;
  private readonly clock: Clock;
  private readonly counters: Usage = { promptTokens: 0, completionTokens: 0, requests: 0 };
  private readonly statsCounters = { retries: 0, reasks: 0, answerErrors: 0, requestErrors: 0 };

  constructor(options: OpenAIProviderOptions) {
    const fallback = options.model;
    const pick = (stage: keyof StageModels): string => {
      const m = options.models?.[stage] ?? fallback;
      if (!m) throw new RangeError(`openai provider: no model for stage "${stage}" (set model or models.${stage})`);
      return m;
    };
    this.models = Object.freeze({ score: pick("score"), compress: pick("compress"), judge: pick("judge") });
    const apiKey = options.apiKey ?? process.env.OPENAI_API_KEY ?? (options.baseURL ? NO_KEY : undefined);
    if (!apiKey) throw new RangeError("openai provider: no API key (set apiKey or OPENAI_API_KEY)");
    const r = options.retry ?? {};
    this.attempts = r.attempts ?? 6;
    this.baseDelayMs = r.baseDelayMs ?? 1000;
    this.maxDelayMs = r.maxDelayMs ?? 60_000;
    this.maxRetryAfterMs = r.maxRetryAfterMs ?? 120_000;
    this.timeoutMs = r.timeoutMs ?? 180_000;
    if (!Number.isInteger(this.attempts) || this.attempts < 1)
      throw new RangeError(`retry.attempts must be an integer >= 1`);
    if (!(this.timeoutMs > 0)) throw new RangeError(`retry.timeoutMs must be > 0`);
    if (!(this.baseDelayMs >= 0) || !(this.maxDelayMs >= 0)) throw new RangeError(`retry delays must be >= 0`);
    this.jsonMode = options.jsonMode ?? true;
    this.temperature = options.temperature;
    this.maxTokens = options.maxTokens;
    this.prices = options.prices;
    this.onEvent = options.onEvent;
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? systemClock;
    this.limiter = new RateLimiter(options.rateLimit ?? {}, this.clock);
    this.client = new OpenAI({
      apiKey,
      baseURL: options.baseURL,
      maxRetries: 0,
      timeout: Math.max(1, Math.ceil(this.timeoutMs)),
    });
  }

  // --- Provider -------------------------------------------------------------------------------------------------

  async scoreBoundaries(sentences: readonly string[], signal?: AbortSignal): Promise<number[]> {
    if (sentences.length < 2) return [];
    return this.ask(
      "score",
      this.models.score,
      buildScoreMessages(sentences),
      (t) => parseScoreAnswer(t, sentences.length),
      signal,
    );
  }

  async writeMementos(problem: string, blocks: readonly string[], signal?: AbortSignal): Promise<string[]> {
    if (blocks.length === 0) return [];
    return this.ask(
      "compress",
      this.models.compress,
      buildCompressMessages(problem, blocks),
      (t) => parseMementoAnswer(t, blocks.length),
      signal,
    );
  }

  async judgeMementos(
    blocks: readonly string[],
    mementos: readonly string[],
    signal?: AbortSignal,
  ): Promise<Judgment[]> {
    checkJudgeInput(blocks, mementos);
    if (blocks.length === 0) return [];
    return this.ask(
      "judge",
      this.models.judge,
      buildJudgeMessages(blocks, mementos),
      (t) => parseJudgeAnswer(t, blocks.length),
      signal,
    );
  }

  async refineMementos(
    blocks: readonly string[],
    mementos: readonly string[],
    judgments: readonly Judgment[],
    indices: readonly number[],
    signal?: AbortSignal,
  ): Promise<string[]> {
    if (indices.length === 0) return [];
    const items = indices.map((i) => {
      if (!(i >= 0 && i < blocks.length)) throw new RangeError(`refine: index ${i} out of range`);
      return { block: blocks[i], memento: mementos[i], feedback: judgments[i]?.feedback ?? "" };
    });
    return this.ask(
      "refine",
      this.models.compress,
      buildRefineMessages(items),
      (t) => parseMementoAnswer(t, indices.length),
      signal,
    );
  }

  usage(): Usage {
    return { ...this.counters };
  }

  // --- extras ---------------------------------------------------------------------------------------------------

  /** USD spent so far at the configured prices (0 without prices). */
  costUsd(): number {
    if (!this.prices) return 0;
    return (
      (this.counters.promptTokens * this.prices.inputPerMillion +
        this.counters.completionTokens * this.prices.outputPerMillion) /
      1_000_000
    );
  }

  stats(): ProviderStats {
    return { ...this.statsCounters, jsonMode: this.jsonMode };
  }

  /** Whether requests still carry `response_format` (false after a server rejected it). */
  get jsonModeActive(): boolean {
    return this.jsonMode;
  }

  // --- internals ------------------------------------------------------------------------------------------------

  /** One answer, validated; one re-ask with the validation error; then ProviderAnswerError. */
  private async ask<T>(
    stage: PromptKind,
    model: string,
    messages: ChatMessage[],
    parse: (text: string) => ParseResult<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const first = await this.chat(stage, model, messages, signal);
    const r1 = parse(first);
    if (r1.ok) return r1.value;
    this.statsCounters.reasks++;
    this.onEvent?.({ type: "reask", stage, error: r1.error });
    const retryMessages: ChatMessage[] = [
      ...messages,
      { role: "assistant", content: first },
      buildReaskMessage(r1.error),
    ];
    const second = await this.chat(stage, model, retryMessages, signal);
    const r2 = parse(second);
    if (r2.ok) return r2.value;
    this.statsCounters.answerErrors++;
    throw new ProviderAnswerError(stage, r2.error, second.slice(0, 2000));
  }

  /**
   * One plain chat completion with the same rate limiting and transport retries as the pipeline stages, no JSON
   * mode, and extra request fields (sampling such as top_k/min_p/seed, `skip_special_tokens`, ...) passed through.
   */
  async complete(
    messages: ChatMessage[],
    opts: { model?: string; extra?: Record<string, unknown>; signal?: AbortSignal } = {},
  ): Promise<CompletionResult> {
    return this.chatFull("generate", opts.model ?? this.models.compress, messages, opts.signal, opts.extra ?? {});
  }

  /** One completion's text, with rate limiting and transport retries. */
  private async chat(stage: PromptKind, model: string, messages: ChatMessage[], signal?: AbortSignal): Promise<string> {
    return (await this.chatFull(stage, model, messages, signal)).content;
  }

  private async chatFull(
    stage: RequestStage,
    model: string,
    messages: ChatMessage[],
    signal?: AbortSignal,
    extra?: Record<string, unknown>,
  ): Promise<CompletionResult> {
    const estimate = estimatePromptTokens(messages) + (this.maxTokens ?? 0);
    let attempt = 0;
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      attempt++;
      if (this.limiter.enabled) await this.limiter.acquire(estimate, signal);
      try {
        const result = await this.requestOnce(model, messages, signal, extra);
        const { usage } = result;
        if (this.limiter.enabled) this.limiter.settle(estimate, usage.prompt + usage.completion || estimate);
        return result;
      } catch (e) {
        if (signal?.aborted) throw abortReason(signal);
        const info: FailureInfo =
          e instanceof TimeoutError || e instanceof MalformedResponseError
            ? { retryable: true, reason: e.message }
            : classifyFailure(e);
        const status = info.status;
        if (this.jsonMode && !extra && status === 400 && /response_format/i.test(describeApiError(e))) {
          this.jsonMode = false;
          this.onEvent?.({ type: "json-mode-off", stage, reason: info.reason });
          attempt--; // the resend without response_format is not a retry
          continue;
        }
        if (!info.retryable || attempt >= this.attempts) {
          this.statsCounters.requestErrors++;
          const what = info.retryable
            ? `gave up after ${attempt} attempt${attempt === 1 ? "" : "s"}: ${info.reason}`
            : info.reason;
          throw new ProviderRequestError(stage, what, status, attempt, info.retryable, { cause: e });
        }
        const retryAfter = info.retryAfterMs;
        const delayMs =
          retryAfter !== undefined
            ? Math.min(retryAfter, this.maxRetryAfterMs)
            : backoffDelay(attempt, this.baseDelayMs, this.maxDelayMs, this.random);
        this.statsCounters.retries++;
        this.onEvent?.({ type: "retry", stage, attempt, delayMs, reason: info.reason, status });
        await this.clock.sleep(delayMs, signal);
      }
    }
  }

  /**
   * Sends one request; the whole exchange (headers and body) is bounded by `timeoutMs`. With `extra` (a plain
   * completion) the fields are merged into the body and no response_format is sent.
   */
  private async requestOnce(
    model: string,
    messages: ChatMessage[],
    signal?: AbortSignal,
    extra?: Record<string, unknown>,
  ): Promise<CompletionResult> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new TimeoutError(`request timed out after ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const body: OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming = {
      model,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
    };
    if (this.temperature !== undefined) body.temperature = this.temperature;
    if (this.maxTokens !== undefined) body.max_tokens = this.maxTokens;
    if (this.jsonMode && !extra) body.response_format = { type: "json_object" };
    if (extra) Object.assign(body, extra);
    try {
      const completion: unknown = await this.client.chat.completions.create(body, { signal: controller.signal });
      const c = completion as {
        choices?: { message?: { content?: unknown }; finish_reason?: unknown }[];
        usage?: { prompt_tokens?: unknown; completion_tokens?: unknown };
      } | null;
      if (
        !c ||
        typeof c !== "object" ||
        !Array.isArray(c.choices) ||
        c.choices.length === 0 ||
        !c.choices[0]?.message
      ) {
        throw new MalformedResponseError("response is not a chat completion (no choices[0].message)");
      }
      const prompt = typeof c.usage?.prompt_tokens === "number" ? c.usage.prompt_tokens : 0;
      const completionTokens = typeof c.usage?.completion_tokens === "number" ? c.usage.completion_tokens : 0;
      this.counters.requests++;
      this.counters.promptTokens += prompt;
      this.counters.completionTokens += completionTokens;
      const content = c.choices[0].message.content;
      const finish = c.choices[0].finish_reason;
      return {
        content: typeof content === "string" ? content : "",
        usage: { prompt, completion: completionTokens },
        finishReason: typeof finish === "string" ? finish : undefined,
      };
    } catch (e) {
      if (timedOut && !signal?.aborted) throw new TimeoutError(`request timed out after ${this.timeoutMs} ms`);
      if (e instanceof APIUserAbortError && signal?.aborted) throw abortReason(signal);
      throw e;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

function describeApiError(e: unknown): string {
  if (!(e instanceof APIError)) return "";
  let body = "";
  try {
    body = JSON.stringify(e.error ?? "");
  } catch {
    body = "";
  }
  return `${e.message} ${body} ${e.param ?? ""}`;
}
