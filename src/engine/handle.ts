/** The caller's side of a request: an async-iterable event queue plus the collected result. */
import type { CompletionResult, DoneEvent, EngineEvent, EvictEvent, RequestHandle, TokenLogprob } from "./types.js";

export class RequestChannel implements RequestHandle {
  private readonly queue: EngineEvent[] = [];
  private readonly waiters: ((r: IteratorResult<EngineEvent>) => void)[] = [];
  private ended = false;
  private readonly tokens: number[] = [];
  private readonly logprobs: number[] = [];
  private readonly topLogprobs: TokenLogprob[][] = [];
  private readonly forced: number[] = [];
  private text = "";
  private readonly evictions: EvictEvent[] = [];
  private readonly finished: Promise<CompletionResult>;
  private resolveFinished!: (r: CompletionResult) => void;

  constructor(
    readonly id: string,
    private readonly onCancel: () => void,
  ) {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  cancel(): void {
    if (!this.ended) this.onCancel();
  }

  result(): Promise<CompletionResult> {
    return this.finished;
  }

  /** Engine side: delivers one event (the last must be "done"). */
  emit(event: EngineEvent): void {
    if (this.ended) return;
    if (event.type === "token") {
      if (event.forced) this.forced.push(this.tokens.length);
      this.tokens.push(event.id);
      if (event.logprob !== undefined) this.logprobs.push(event.logprob);
      if (event.topLogprobs !== undefined) this.topLogprobs.push(event.topLogprobs);
      if (event.text) this.text += event.text;
    } else if (event.type === "evict") {
      this.evictions.push(event);
    } else {
      if (event.text) this.text += event.text;
      this.ended = true;
      this.resolveFinished(this.collect(event));
    }
    const w = this.waiters.shift();
    if (w) w({ value: event, done: false });
    else this.queue.push(event);
    if (this.ended) for (const rest of this.waiters.splice(0)) rest({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineEvent> {
    return {
      next: (): Promise<IteratorResult<EngineEvent>> => {
        const e = this.queue.shift();
        if (e) return Promise.resolve({ value: e, done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
      return: (): Promise<IteratorResult<EngineEvent>> => {
        // Leaving a for-await loop early abandons the request.
        this.cancel();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private collect(done: DoneEvent): CompletionResult {
    const r: CompletionResult = {
      id: this.id,
      tokens: this.tokens,
      text: this.text,
      finishReason: done.finishReason,
      stats: done.stats,
      evictions: this.evictions,
      forced: this.forced,
    };
    // Only when every token has one (a request that asked for logprobs; replays record none).
    if (this.logprobs.length > 0 && this.logprobs.length === this.tokens.length) r.logprobs = this.logprobs;
    if (this.topLogprobs.length > 0 && this.topLogprobs.length === this.tokens.length) r.topLogprobs = this.topLogprobs;
    if (done.stopReason !== undefined) r.stopReason = done.stopReason;
    if (done.message !== undefined) r.message = done.message;
    return r;
  }
}
