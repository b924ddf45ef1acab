/**
 * The engine loop: requests enter a waiting queue; each step the scheduler plans preemptions, admissions and
 * one decode batch; the engine carries the plan out on the backend and feeds every computed token to its
 * request's block tracker, applying the evictions it returns before anything else is computed for that request.
 * A request whose masking needs a feature the backend declares it lacks (`backend.capabilities`) is refused at
 * submit with UnsupportedFeatureError, never half-run; so are such masking defaults when the engine is built.
 *
 * There is no prefill phase and decode phase, only requests whose computed tokens catch up with their tokens
 * so far (vLLM's v1 scheduler has the same idea). Order inside a step:
 *   1. finish requests cancelled while the previous backend call was in flight;
 *   2. preempt (free KV, back to waiting) / abort what the budget cannot hold;
 *   3. admit: give each admitted request a backend sequence and a fresh tracker; it is now catching up;
 *   4. plan the step's tokens under the per-step budget (maxStepTokens): one row for every request that has
 *      caught up (its pending token), then one chunk for each request catching up, oldest first: the next
 *      tokens of its prompt, or after a preemption of its tokens so far, each chunk ending right after a token
 *      that triggers evictions, so a rebuilt cache is the one it had, never larger;
 *   5. ONE forward pass for all of it (forwardStep: a single backend call where the backend has `step`);
 *      logits are asked for only where a token will be sampled (not for replayed tokens, not inside prompts);
 *   6. decode rows, each: measure cells (peak), tracker.push -> evict (-> restart: recompute the memento at its
 *      logical positions, whose last logits then replace the decode's), then pick the next token (replayed,
 *      forced `<|block_end|>`, or sampled); chunks, each: apply the evictions it ended on (and restart
 *      recomputes); the chunk that ends a prompt gives the first completion token.
 */
import { BlockTracker } from "../masking/tracker.js";
import { resolveMasking, type MaskingConfig, type TrackerTokenIds } from "../masking/config.js";
import { RequestChannel } from "./handle.js";
import { forwardStep } from "./forward.js";
import { KvBudget } from "./kv-budget.js";
import { Scheduler } from "./scheduler.js";
import { Sequence, type CatchUpChunk, type Finish } from "./sequence.js";
import { capabilitiesOf, missingFeature } from "./backends/capabilities.js";
import {
  DEFAULT_MAX_STEP_TOKENS,
  EngineError,
  MAX_TOP_LOGPROBS,
  UnsupportedFeatureError,
  type Backend,
  type BackendCapabilities,
  type Engine,
  type EngineConfig,
  type EngineRequest,
  type EngineStats,
  type RequestHandle,
  type SamplingParams,
  type StepInput,
} from "./types.js";

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

export class MementoEngine implements Engine {
  readonly backend: Backend;
  /** What the backend declared it can serve; requests needing more are refused at submit. */
  readonly capabilities: BackendCapabilities;
  readonly budget: KvBudget;
  private readonly scheduler: Scheduler;
  private readonly config: EngineConfig;
  private readonly markers: TrackerTokenIds;
  private readonly baseStopIds: number[];
  private readonly maxWaiting: number;
  /** Ids the sampler may draw (below the tokenizer's size when the model's logits are padded). */
  private readonly sampleableIds: number | undefined;
  /** Tokens one step computes at most (decode rows first, then catch-up chunks). */
  readonly maxStepTokens: number;
  private readonly running: Sequence[] = [];
  private readonly waiting: Sequence[] = [];
  private readonly frees = new Set<Promise<void>>();
  private arrivals = 0;
  private busy = false;
  private loop: Promise<void> | undefined;
  private closed = false;
  private counters = {
    preemptions: 0,
    evictions: 0,
    evictedTokens: 0,
    generatedTokens: 0,
    finishedRequests: 0,
    peakRunning: 0,
    steps: 0,
    decodedTokens: 0,
    prefillTokens: 0,
  };

  constructor(config: EngineConfig) {
    this.config = config;
    this.backend = config.backend;
    this.capabilities = capabilitiesOf(config.backend);
    const total = Math.min(config.kvBudgetTokens, config.backend.kvCapacityTokens ?? Infinity);
    this.budget = new KvBudget(total, config.admissionReserveTokens ?? 16);
    const stepTokens = config.maxStepTokens ?? DEFAULT_MAX_STEP_TOKENS;
    if (!Number.isInteger(stepTokens) || stepTokens < 1)
      throw new RangeError(`maxStepTokens must be a positive integer, got ${stepTokens}`);
    this.maxStepTokens = Math.min(stepTokens, config.backend.maxStepTokens ?? Infinity);
    const maxRunning =
      config.maxRunning ?? (Number.isFinite(config.backend.maxSequences) ? config.backend.maxSequences : 256);
    // A step holds one row per decoding request, so at most maxStepTokens run: a request that is catching up
    // is then never shut out of a step by the decode rows alone.
    this.scheduler = new Scheduler(
      this.budget,
      Math.max(1, Math.min(maxRunning, config.backend.maxSequences, this.maxStepTokens)),
    );
    this.maxWaiting = config.maxWaiting ?? 1024;
    const known = config.tokenizer.vocabSize;
    this.sampleableIds = known !== undefined && known < config.backend.vocabSize ? known : undefined;
    const st = config.tokenizer.specialTokens;
    this.markers = {
      blockStart: st.blockStart,
      blockEnd: st.blockEnd,
      summaryStart: st.summaryStart,
      summaryEnd: st.summaryEnd,
    };
    if (st.imStart !== undefined) this.markers.imStart = st.imStart;
    if (st.assistant !== undefined) this.markers.assistant = st.assistant;
    this.baseStopIds = [...(st.eos !== undefined ? [st.eos] : []), ...(config.stopTokenIds ?? [])];
    this.requireSupported(resolveMasking(config.masking ?? {})); // fail early on bad or unservable defaults
  }

  submit(req: EngineRequest): RequestHandle {
    if (this.closed) throw new EngineError("closed", "the engine is closed");
    const { masking, sampling } = this.validate(req);
    this.requireSupported(masking);
    if (!this.budget.canEverHold(req.promptTokens.length)) {
      throw new EngineError(
        "prompt_too_large",
        `prompt of ${req.promptTokens.length} tokens does not fit the KV budget of ${this.budget.total} tokens (with a reserve of ${this.budget.reserve})`,
      );
    }
    // The limit is on requests held (running + waiting), not on the waiting queue alone: a request submitted into
    // a free running slot waits only for the next step, so a burst gets exactly maxRunning + maxWaiting accepted,
    // whenever the step runs.
    const maxRunning = this.scheduler.maxRunning;
    if (this.running.length + this.waiting.length >= maxRunning + this.maxWaiting) {
      throw new EngineError(
        "queue_full",
        `${this.running.length} requests running and ${this.waiting.length} waiting, the most it holds ` +
          `(max running ${maxRunning} + max waiting ${this.maxWaiting})`,
      );
    }
    const arrival = this.arrivals++;
    const id = req.id ?? `req-${arrival}`;
    let seqRef: Sequence | undefined;
    const channel = new RequestChannel(id, () => seqRef && this.cancel(seqRef));
    const seq = new Sequence({
      id,
      arrival,
      prompt: req.promptTokens,
      sampling,
      masking,
      markers: this.markers,
      tokenizer: this.config.tokenizer,
      stopIds: new Set([...this.baseStopIds, ...(sampling.stopTokenIds ?? [])]),
      replay: req.replayTokens ? [...req.replayTokens] : undefined,
      replayLogits: req.replayLogits === true,
      skipSpecialTokens: req.skipSpecialTokens ?? false,
      ...(req.logprobs !== undefined ? { logprobs: req.logprobs } : {}),
      ...(this.sampleableIds !== undefined ? { sampleableIds: this.sampleableIds } : {}),
      channel,
    });
    seqRef = seq;
    this.waiting.push(seq);
    this.kick();
    return channel;
  }

  stats(): EngineStats {
    const c = this.counters;
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvUsedTokens: this.usedTokens(),
      kvTotalTokens: this.budget.total,
      preemptions: c.preemptions,
      evictions: c.evictions,
      evictedTokens: c.evictedTokens,
      generatedTokens: c.generatedTokens,
      finishedRequests: c.finishedRequests,
      peakKvUsedTokens: this.budget.peakUsed,
      peakRunning: c.peakRunning,
      steps: c.steps,
      decodedTokens: c.decodedTokens,
      prefillTokens: c.prefillTokens,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.waiting, ...this.running]) {
      s.cancelRequested = true;
      if (!this.busy) this.finish(s, { reason: "cancelled" });
    }
    await this.loop;
    for (const s of [...this.waiting, ...this.running]) this.finish(s, { reason: "cancelled" });
    await this.settleFrees();
    await this.backend.close?.();
  }

  /** Resolves when nothing is running or waiting (for tests and the benchmark). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
    await this.settleFrees();
  }

  // -------------------------------------------------------------------------------------------------------

  private validate(req: EngineRequest): { masking: MaskingConfig; sampling: SamplingParams } {
    const bad = (m: string): never => {
      throw new EngineError("invalid_request", m);
    };
    const vocab = this.backend.vocabSize;
    const checkIds = (ids: unknown, what: string, allowEmpty: boolean) => {
      if (!Array.isArray(ids)) bad(`${what} must be an array of token ids`);
      const a = ids as unknown[];
      if (!allowEmpty && a.length === 0) bad(`${what} must not be empty`);
      for (const t of a)
        if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= vocab)
          bad(`${what}: ${String(t)} is not a token id in [0, ${vocab})`);
    };
    if (typeof req !== "object" || req === null) bad("request must be an object");
    checkIds(req.promptTokens, "promptTokens", false);
    if (req.replayTokens !== undefined) checkIds(req.replayTokens, "replayTokens", true);
    const s = req.sampling;
    if (typeof s !== "object" || s === null) bad("sampling is required");
    const num = (v: unknown, name: string, lo: number, hi: number, int = false) => {
      if (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi || (int && !Number.isInteger(v)))
        bad(`sampling.${name} must be ${int ? "an integer" : "a number"} in [${lo}, ${hi}], got ${String(v)}`);
    };
    num(s.temperature, "temperature", 0, 100);
    num(s.topP, "topP", 0, 1);
    num(s.topK, "topK", -1, 2 ** 31, true);
    num(s.minP, "minP", 0, 1);
    num(s.maxTokens, "maxTokens", 1, 2 ** 31, true);
    if (s.seed !== undefined) num(s.seed, "seed", -(2 ** 53), 2 ** 53, true);
    if (s.stop !== undefined && (!Array.isArray(s.stop) || s.stop.some((x) => typeof x !== "string")))
      bad("sampling.stop must be an array of strings");
    if (s.stopTokenIds !== undefined) checkIds(s.stopTokenIds, "sampling.stopTokenIds", true);
    const lp = req.logprobs;
    if (lp !== undefined && (typeof lp !== "number" || !Number.isInteger(lp) || lp < 0 || lp > MAX_TOP_LOGPROBS))
      bad(`logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${String(lp)}`);
    let masking: MaskingConfig;
    try {
      masking = resolveMasking({ ...(this.config.masking ?? {}), ...(req.masking ?? {}) });
    } catch (err) {
      return bad(`masking: ${(err as Error).message}`);
    }
    return {
      masking,
      sampling: {
        ...s,
        stop: s.stop ? [...s.stop] : undefined,
        stopTokenIds: s.stopTokenIds ? [...s.stopTokenIds] : undefined,
      },
    };
  }

  /** Throws UnsupportedFeatureError when `masking` needs a feature the backend declared it lacks. */
  private requireSupported(masking: MaskingConfig): void {
    const feature = missingFeature(this.capabilities, masking);
    if (feature === undefined) return;
    throw new UnsupportedFeatureError(feature, this.backend.name, this.capabilities.limitations?.[feature]);
  }

  private usedTokens(): number {
    let used = 0;
    for (const s of this.running) if (s.seq !== undefined) used += this.backend.residentTokens(s.seq);
    return used;
  }

  private kick(): void {
    if (this.loop || this.closed) return;
    this.loop = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
  }

  private async run(): Promise<void> {
    try {
      while (!this.closed && (this.running.length > 0 || this.waiting.length > 0)) {
        await this.step();
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.loop = undefined;
    }
  }

  private cancel(s: Sequence): void {
    if (s.status === "finished") return;
    s.cancelRequested = true;
    // Between steps the KV is freed right away; during a step, right after the backend call in flight.
    if (s.status === "waiting" || !this.busy) this.finish(s, { reason: "cancelled" });
  }

  private async settleFrees(): Promise<void> {
    while (this.frees.size > 0) await Promise.all([...this.frees]);
  }

  private async step(): Promise<void> {
    this.busy = true;
    try {
      await this.settleFrees();
      for (const s of [...this.running]) if (s.cancelRequested) this.finish(s, { reason: "cancelled" });
      const plan = this.scheduler.plan(this.running, this.waiting);
      for (const s of plan.preempt) await this.preempt(s);
      for (const s of plan.abort) {
        this.finish(s, {
          reason: "length",
          message: `KV budget exhausted: the request holds ${s.residentTokens} of ${this.budget.total} cells and cannot grow`,
        });
      }
      for (const s of plan.admit) if (s.status === "waiting") await this.admit(s);
      this.counters.peakRunning = Math.max(this.counters.peakRunning, this.running.length);
      const decoding = plan.decode.filter((s) => s.status === "running" && !s.cancelRequested && !s.catchingUp);
      const chunks = this.planCatchUp(this.maxStepTokens - decoding.length);
      if (decoding.length + chunks.length > 0) {
        const inputs: StepInput[] = decoding.map((s) => ({
          seq: s.seq as number,
          tokens: [s.pendingToken],
          position: s.computed,
          logits: s.decodeLogits, // a replayed request's next token is recorded, not sampled
        }));
        for (const { s, chunk } of chunks) {
          inputs.push({
            seq: s.seq as number,
            tokens: s.tokens.slice(chunk.from, chunk.to),
            position: chunk.from,
            logits: chunk.logits,
          });
        }
        const logits = await forwardStep(this.backend, inputs);
        this.observeUsage();
        await this.afterDecode(decoding, logits);
        for (let i = 0; i < chunks.length; i++)
          await this.afterChunk(chunks[i].s, chunks[i].chunk, logits[decoding.length + i]);
      }
      for (const s of [...this.running]) if (s.cancelRequested) this.finish(s, { reason: "cancelled" });
      this.counters.steps++;
    } catch (err) {
      const message = `backend failure: ${(err as Error)?.message ?? String(err)}`;
      for (const s of [...this.running]) this.finish(s, { reason: "error", message });
    } finally {
      this.busy = false;
    }
    await this.settleFrees();
  }

  private async preempt(s: Sequence): Promise<void> {
    this.remove(this.running, s);
    const seq = s.seq;
    s.seq = undefined;
    s.status = "waiting";
    s.cached = 0;
    s.measure(0);
    s.stats.preemptions++;
    this.counters.preemptions++;
    let i = this.waiting.findIndex((w) => w.arrival > s.arrival);
    if (i < 0) i = this.waiting.length;
    this.waiting.splice(i, 0, s);
    if (seq !== undefined) await this.backend.free(seq);
  }

  /** A backend sequence and a fresh tracker: the request is running and starts catching up (planCatchUp). */
  private async admit(s: Sequence): Promise<void> {
    this.remove(this.waiting, s);
    this.running.push(s);
    s.status = "running";
    s.seq = await this.backend.allocate();
    s.cached = 0;
    s.tracker = new BlockTracker(s.masking, s.markers);
    if (!s.started) {
      s.started = true;
      s.stats.queueMs = performance.now() - s.submittedAt;
    }
  }

  /**
   * This step's catch-up chunks within `budgetTokens`: one per request catching up, oldest first, each as long
   * as the budget left allows (and no longer than up to its next eviction trigger).
   */
  private planCatchUp(budgetTokens: number): { s: Sequence; chunk: CatchUpChunk }[] {
    const out: { s: Sequence; chunk: CatchUpChunk }[] = [];
    let left = budgetTokens;
    const catchingUp = this.running.filter((s) => s.catchingUp && !s.cancelRequested);
    catchingUp.sort((a, b) => a.arrival - b.arrival);
    for (const s of catchingUp) {
      if (left <= 0) break;
      const chunk = s.nextChunk(left);
      left -= chunk.to - chunk.from;
      out.push({ s, chunk });
    }
    return out;
  }

  /**
   * A catch-up chunk's KV is computed: apply the evictions it ended on (a rebuild repeats what the request did
   * before its preemption, so no events and no counters), and when it ends the prompt, pick the first token.
   */
  private async afterChunk(s: Sequence, chunk: CatchUpChunk, logits: Float32Array | undefined): Promise<void> {
    if (s.status !== "running") return;
    if (s.cancelRequested) return this.finish(s, { reason: "cancelled" });
    const seq = s.seq as number;
    s.stats.recomputedTokens += Math.max(0, Math.min(chunk.to, s.computed) - chunk.from);
    s.cached = chunk.to;
    this.counters.prefillTokens += chunk.to - chunk.from;
    s.measure(this.backend.residentTokens(seq));
    for (const e of chunk.evictions) {
      await this.backend.evict(seq, e.start, e.end);
      if (s.masking.restartMode && e.recomputeFrom !== undefined) {
        await this.backend.recompute(
          seq,
          s.tokens.slice(e.recomputeFrom, e.trigger + 1),
          range(e.recomputeFrom, e.trigger + 1),
        );
      }
    }
    if (chunk.evictions.length > 0) s.measure(this.backend.residentTokens(seq));
    this.observeUsage();
    if (!chunk.logits) return;
    // The prompt is in: its last logits give the first completion token.
    s.computed = s.promptLength;
    s.stats.blocks = s.tracker.blocks.length;
    this.advance(s, logits as Float32Array);
  }

  /** The decode rows' KV is computed (logits[i] for batch[i], undefined where not asked for). */
  private async afterDecode(batch: Sequence[], logits: (Float32Array | undefined)[]): Promise<void> {
    for (let i = 0; i < batch.length; i++) {
      const s = batch[i];
      if (s.status !== "running") continue;
      if (s.cancelRequested) {
        this.finish(s, { reason: "cancelled" });
        continue;
      }
      const seq = s.seq as number;
      const token = s.pendingToken;
      s.computed++;
      s.cached++;
      this.counters.decodedTokens++;
      s.measure(this.backend.residentTokens(seq));
      let next = logits[i];
      for (const e of s.tracker.push(token, false)) {
        const freed = await this.backend.evict(seq, e.start, e.end);
        s.stats.evictions++;
        s.stats.evictedTokens += freed;
        this.counters.evictions++;
        this.counters.evictedTokens += freed;
        s.channel.emit({ type: "evict", start: e.start, end: e.end, block: e.block, trigger: e.trigger, freed });
        if (s.masking.restartMode && e.recomputeFrom !== undefined) {
          const positions = range(e.recomputeFrom, e.trigger + 1);
          next = await this.backend.recompute(seq, s.tokens.slice(e.recomputeFrom, e.trigger + 1), positions);
          s.stats.restartRecomputedTokens += positions.length;
        }
      }
      s.measure(this.backend.residentTokens(seq));
      s.afterCompletionToken();
      if (s.cancelRequested) {
        this.finish(s, { reason: "cancelled" });
        continue;
      }
      this.advance(s, next);
    }
  }

  /** Picks and accepts the token after the last computed one, or finishes the request. */
  private advance(s: Sequence, logits: Float32Array | undefined): void {
    if (s.isReplay) {
      const r = s.nextReplay();
      if ("token" in r) {
        s.accept(r.token);
        this.counters.generatedTokens++;
      } else this.finish(s, r);
      return;
    }
    const { token, forced } = s.choose(logits as Float32Array);
    const finish = s.accept(token, forced, logits);
    // Counted when accepted, as usage.completion_tokens counts it: the last token is never decoded.
    this.counters.generatedTokens++;
    if (finish) this.finish(s, finish);
  }

  /**
   * Ends a request: leaves the queues now, frees its KV (the backend's free starts now; the next step waits for
   * it), then the done event.
   */
  private finish(s: Sequence, f: Finish): void {
    if (s.status === "finished") return;
    if (s.status === "running") this.remove(this.running, s);
    else this.remove(this.waiting, s);
    s.status = "finished";
    const seq = s.seq;
    s.seq = undefined;
    s.stats.finalKvTokens = s.residentTokens;
    s.measure(0);
    s.stats.blocks = s.tracker.blocks.length;
    s.stats.totalMs = performance.now() - s.submittedAt;
    this.counters.finishedRequests++;
    const done = () => {
      const text = s.flushText();
      s.channel.emit({
        type: "done",
        finishReason: f.reason,
        stats: { ...s.stats },
        ...(f.stopReason !== undefined ? { stopReason: f.stopReason } : {}),
        ...(f.message !== undefined ? { message: f.message } : {}),
        ...(text ? { text } : {}),
      });
    };
    if (seq === undefined) {
      done();
      return;
    }
    const p = this.backend
      .free(seq)
      .catch(() => undefined)
      .then(() => {
        this.frees.delete(p);
        done();
      });
    this.frees.add(p);
  }

  private observeUsage(): void {
    this.budget.observe(this.usedTokens());
  }

  private remove(list: Sequence[], s: Sequence): void {
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
  }
}

export function createEngine(config: EngineConfig): MementoEngine {
  return new MementoEngine(config);
}
