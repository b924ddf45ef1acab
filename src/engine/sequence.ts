/**
 * One request's state inside the engine: its tokens (prompt + completion, each at logical position = index),
 * how many of them have KV computed, its block tracker (the masking state after exactly those tokens), its
 * sampler, its text stream, and its counters. The engine moves it between waiting, running and finished and
 * performs the backend calls; this class only keeps the books and decides what the next token is.
 */
import { BlockTracker, type Eviction } from "../masking/tracker.js";
import type { MaskingConfig, TrackerTokenIds } from "../masking/config.js";
import { Sampler } from "./sampling.js";
import { logSumExp, tokenLogprob, topLogprobs } from "./logprobs.js";
import { TextStream } from "./text.js";
import type { RequestChannel } from "./handle.js";
import {
  emptyRequestStats,
  type EngineTokenizer,
  type FinishReason,
  type RequestStats,
  type SamplingParams,
  type SeqId,
  type TokenEvent,
} from "./types.js";

export type SequenceStatus = "waiting" | "running" | "finished";

export interface SequenceInit {
  id: string;
  arrival: number;
  prompt: readonly number[];
  sampling: SamplingParams;
  masking: MaskingConfig;
  markers: TrackerTokenIds;
  tokenizer: EngineTokenizer;
  stopIds: ReadonlySet<number>;
  replay?: readonly number[];
  /** Replay: have the backend compute logits anyway (EngineRequest.replayLogits). */
  replayLogits?: boolean;
  skipSpecialTokens: boolean;
  /** EngineRequest.logprobs: alternatives per token to record (0 = the token's own only); absent = none. */
  logprobs?: number;
  /** Sample only ids below this (the tokenizer's size, when the model has padded logits); absent = all. */
  sampleableIds?: number;
  channel: RequestChannel;
}

/** One step's share of a request's catch-up: tokens[from, to) at positions from..to-1. */
export interface CatchUpChunk {
  from: number;
  to: number;
  /** What the tracker returned for the chunk's last token (apply once the chunk's KV is computed). */
  evictions: readonly Eviction[];
  /** Whether the last token's logits are needed (it ends the prompt: they give the first completion token). */
  logits: boolean;
}

export interface Finish {
  reason: FinishReason;
  stopReason?: string | number;
  message?: string;
}

export class Sequence {
  readonly id: string;
  readonly arrival: number;
  readonly promptLength: number;
  /** Prompt then completion; `tokens[i]` sits at logical position i. */
  readonly tokens: number[];
  /**
   * tokens[0, computed) have KV computed (in the backend, or to be recomputed after a preemption); 0 until the
   * prompt's prefill has finished, then promptLength, then one more per decoded token.
   */
  computed = 0;
  /**
   * tokens[0, cached) have KV in the backend in this residency (0 while waiting). While cached < catchUpGoal the
   * request is catching up (prompt prefill, or the rebuild after a preemption), one chunk per step.
   */
  cached = 0;
  tracker: BlockTracker;
  readonly masking: MaskingConfig;
  readonly markers: TrackerTokenIds;
  readonly sampling: SamplingParams;
  readonly channel: RequestChannel;
  status: SequenceStatus = "waiting";
  /** Backend sequence while running. */
  seq: SeqId | undefined;
  /** Cells resident, as last measured. */
  residentTokens = 0;
  /** Has been admitted before (a later admission recomputes). */
  started = false;
  cancelRequested = false;
  readonly stats: RequestStats;
  readonly submittedAt = performance.now();
  /** When the last completion token was accepted (for the inter-token latencies). */
  private lastTokenAt = 0;

  private readonly sampler: Sampler;
  private readonly sampleableIds: number | undefined;
  private readonly logprobs: number | undefined;
  private readonly replay: readonly number[] | undefined;
  private readonly stopIds: ReadonlySet<number>;
  private readonly text: TextStream;

  constructor(init: SequenceInit) {
    this.id = init.id;
    this.arrival = init.arrival;
    this.promptLength = init.prompt.length;
    this.tokens = [...init.prompt];
    this.masking = init.masking;
    this.markers = init.markers;
    this.sampling = init.sampling;
    this.channel = init.channel;
    this.replay = init.replay;
    this.decodeLogits = init.replay === undefined || init.replayLogits === true;
    this.stopIds = init.stopIds;
    this.tracker = new BlockTracker(init.masking, init.markers);
    this.sampler = new Sampler(init.sampling);
    this.sampleableIds = init.sampleableIds;
    this.logprobs = init.replay ? undefined : init.logprobs;
    this.text = new TextStream(init.tokenizer, init.replay ? [] : (init.sampling.stop ?? []), init.skipSpecialTokens);
    this.stats = emptyRequestStats(init.prompt.length);
  }

  /** Cells an admission must be able to hold: the prompt, or after a preemption the peak reached (bounds the recompute). */
  get admissionNeed(): number {
    // The rebuild runs chunk by chunk with the evictions in between, so it never holds more than the peak: the
    // logical length (evicted tokens included) may exceed the whole budget and must not be asked for.
    return this.started ? Math.max(this.stats.peakKvTokens, this.promptLength) : this.promptLength;
  }

  /** Tokens whose KV must be in the backend before this request decodes: the prompt, or all computed ones. */
  get catchUpGoal(): number {
    return Math.max(this.computed, this.promptLength);
  }

  /** Running, but its prompt prefill (or its rebuild after a preemption) is not finished. */
  get catchingUp(): boolean {
    return this.status === "running" && this.cached < this.catchUpGoal;
  }

  /**
   * Cells the scheduler counts for a running request: those it holds, or while it catches up those its
   * admission promised it (the chunks still to come will fill them).
   */
  get claimedTokens(): number {
    return this.catchingUp ? Math.max(this.residentTokens, this.admissionNeed) : this.residentTokens;
  }

  /**
   * The next catch-up chunk: tokens[cached, to) with at most `maxTokens` of them, ending early right after a
   * token that triggers evictions (they must be applied before anything later is computed). Feeds the chunk's
   * tokens to the tracker, so call it once per chunk, in order, and compute the chunk before the next.
   */
  nextChunk(maxTokens: number): CatchUpChunk {
    const from = this.cached;
    const goal = this.catchUpGoal;
    let to = from;
    let evictions: readonly Eviction[] = [];
    while (to < goal && to - from < maxTokens) {
      const found = this.tracker.push(this.tokens[to], to < this.promptLength);
      to++;
      if (found.length > 0) {
        evictions = found;
        break;
      }
    }
    // Logits only for the prompt's last token: a rebuild's next token was chosen before the preemption.
    return { from, to, evictions, logits: to === goal && this.computed < this.promptLength };
  }

  get completionLength(): number {
    return this.tokens.length - this.promptLength;
  }

  get isReplay(): boolean {
    return this.replay !== undefined;
  }

  /** Whether a decode row of this request asks the backend for logits: always, unless a replay skips them. */
  readonly decodeLogits: boolean;

  /** The token whose KV the next decode step computes. */
  get pendingToken(): number {
    return this.tokens[this.computed];
  }

  /** Records a fresh measurement of this sequence's cells. */
  measure(resident: number): void {
    this.residentTokens = resident;
    this.stats.currentKvTokens = resident;
    if (resident > this.stats.peakKvTokens) this.stats.peakKvTokens = resident;
  }

  /** After a completion token's KV and its evictions: KV AUC and block count. */
  afterCompletionToken(): void {
    this.stats.aucKvTokens += this.residentTokens;
    this.stats.blocks = this.tracker.blocks.length;
  }

  /**
   * Replay: the next recorded token, or the finish once every accepted token's KV is computed.
   * Call only when tokens.length === computed.
   */
  nextReplay(): { token: number } | Finish {
    const replay = this.replay as readonly number[];
    const n = this.completionLength;
    if (n >= this.sampling.maxTokens) return { reason: n < replay.length ? "length" : "stop" };
    if (n >= replay.length) return { reason: "stop" };
    return { token: replay[n] };
  }

  /** Generation: the next token from the logits of the last computed token (forced `<|block_end|>` when the block is full). */
  choose(logits: Float32Array): { token: number; forced: boolean } {
    if (this.tracker.mustEndBlock()) return { token: this.markers.blockEnd, forced: true };
    // A view, not a copy: the padded ids are simply out of the sampler's reach (log-probabilities stay raw).
    const view = this.sampleableIds !== undefined ? logits.subarray(0, this.sampleableIds) : logits;
    return { token: this.sampler.sample(view), forced: false };
  }

  /**
   * Appends a completion token and emits its event. Returns how the request ends if this token ends it
   * (generation only: stop id, stop string or max tokens; replay ends in nextReplay).
   */
  accept(token: number, forced = false, logits?: Float32Array): Finish | undefined {
    this.tokens.push(token);
    this.stats.completionTokens++;
    if (forced) this.stats.forcedBlockEnds++;
    const now = performance.now();
    if (this.stats.completionTokens === 1) this.stats.firstTokenMs = now - this.submittedAt;
    else this.stats.interTokenMs.push(now - this.lastTokenAt);
    this.lastTokenAt = now;
    const position = this.tokens.length - 1;
    let finish: Finish | undefined;
    if (!this.replay && this.stopIds.has(token)) {
      finish = { reason: "stop", stopReason: token };
    } else {
      const hit = this.text.push(token);
      if (!this.replay && hit) finish = { reason: "stop", stopReason: this.text.stopped };
      else if (!this.replay && this.completionLength >= this.sampling.maxTokens) finish = { reason: "length" };
    }
    const text = this.text.release(finish !== undefined);
    const event: TokenEvent = { type: "token", id: token, position, text };
    if (forced) event.forced = true;
    if (this.logprobs !== undefined && logits) {
      const lse = logSumExp(logits);
      event.logprob = tokenLogprob(logits, token, lse);
      if (this.logprobs > 0) event.topLogprobs = topLogprobs(logits, this.logprobs, lse);
    }
    this.channel.emit(event);
    return finish;
  }

  /** Text not yet released (emitted with the done event's last token when a replay or an abort ends). */
  flushText(): string {
    return this.text.release(true);
  }

  get completionText(): string {
    return this.text.fullText;
  }
}
