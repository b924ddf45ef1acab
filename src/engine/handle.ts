/** The caller's side of a request: an async-iterable event queue plus the collected result. */
import type { CompletionResult, DoneEvent, EngineEvent, EvictEvent, RequestHandle } from "./types.js";

export class RequestChannel implements RequestHandle {
  private readonly queue: EngineEvent[] = [];
  private readonly waiters: ((r: IteratorResult<EngineEvent>) => void)[] = [];
  private ended = false;
  private readonly tokens: number[] = [];
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
      this.tokens.push(event.id);
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
    };
    if (done.stopReason !== undefined) r.stopReason = done.stopReason;
    if (done.message !== undefined) r.message = done.message;
    return r;
  }
}
