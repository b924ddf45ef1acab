/**
 * Streaming a completion as Server-Sent Events: `data: {chunk}\n\n` per piece of text, then the chunk with
 * finish_reason (and the Memento statistics), the usage chunk when asked for, and `data: [DONE]`. An error
 * after the headers are sent can only be reported in the stream: an error object, then [DONE]. A request
 * cancelled by its client just ends the stream (nobody reads it); one cancelled by the server (shutdown deadline)
 * ends with the error the caller gives (`cancelledError`), then [DONE]. Writes to a closed socket are dropped.
 * With logprobs asked, each text chunk carries the logprobs of the tokens since the previous chunk (a token whose
 * text is held back, or a stop token with no text, rides with the next chunk; the last ones with a chunk of their
 * own before the finish_reason chunk), so a stream's logprobs concatenate to the whole completion's.
 */
import type { DoneEvent, EngineEvent, RequestHandle, TokenEvent } from "../engine/types.js";
import { ApiError } from "./errors.js";
import type { Endpoint } from "./metrics.js";
import { entryOf, type LogprobEntry, type LogprobsFormatter } from "./logprobs.js";
import { finalChunk, roleChunk, textChunk, usageChunk, type ResponseHead } from "./openai-shapes.js";

export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
  "x-accel-buffering": "no",
} as const;

/** The parts of http.ServerResponse an event stream writes to. */
export interface SseTarget {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: string): unknown;
  end(): unknown;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

/** One Server-Sent Events response: open (200 + headers), events, close. */
export class EventStream {
  constructor(private readonly target: SseTarget) {}

  open(): void {
    this.target.writeHead(200, { ...SSE_HEADERS });
  }

  /** Writes one `data:` event (an object as JSON); dropped once the response ended or the socket closed. */
  send(data: object | string): void {
    if (this.target.writableEnded || this.target.destroyed) return;
    this.target.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
  }

  /** The OpenAI end-of-stream marker. */
  done(): void {
    this.send("[DONE]");
  }

  close(): void {
    if (!this.target.writableEnded) this.target.end();
  }
}

export interface CompletionStreamOptions {
  endpoint: Endpoint;
  head: ResponseHead;
  /** Send a usage chunk before [DONE]. */
  includeUsage: boolean;
  /** Called with the request's done event, whatever the ending (metrics). */
  onDone?: (done: DoneEvent) => void;
  /** For a cancelled request: the error to send before [DONE], or undefined to just end (client gone). */
  cancelledError?: () => ApiError | undefined;
  /** The request asked for logprobs: how to format them (one formatter per stream). */
  logprobs?: LogprobsFormatter;
}

/** The tokens whose logprobs have not been sent yet, and the chunk that sends them. */
class PendingLogprobs {
  private entries: LogprobEntry[] = [];
  constructor(private readonly formatter: LogprobsFormatter | undefined) {}

  add(ev: TokenEvent): void {
    const e = this.formatter ? entryOf(ev) : undefined;
    if (e) this.entries.push(e);
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** The formatted logprobs of the pending tokens (null when none were asked), and none pending after. */
  take(): object | null {
    if (!this.formatter) return null;
    const out = this.formatter.format(this.entries);
    this.entries = [];
    return out;
  }
}

/**
 * Writes the request's events to `stream` until the request ends (the caller opens and closes the stream).
 * A failure while iterating is reported in the stream and cancels the request.
 */
export async function pipeCompletion(
  stream: EventStream,
  handle: AsyncIterable<EngineEvent> & Pick<RequestHandle, "cancel">,
  o: CompletionStreamOptions,
): Promise<void> {
  if (o.endpoint === "chat") stream.send(roleChunk(o.head));
  const pending = new PendingLogprobs(o.logprobs);
  try {
    for await (const ev of handle) {
      if (ev.type === "token") {
        pending.add(ev);
        if (ev.text) stream.send(textChunk(o.endpoint, o.head, ev.text, pending.take()));
      } else if (ev.type === "done") {
        o.onDone?.(ev);
        if (ev.finishReason === "cancelled") sendCancelled(stream, o);
        else sendEnding(stream, ev, o, pending);
      }
    }
  } catch (e) {
    stream.send(new ApiError(500, `internal error: ${(e as Error).message}`, "internal_error").toBody());
    stream.done();
    handle.cancel();
  }
}

/** The tail of a cancelled stream: the caller's error and [DONE], or nothing. */
function sendCancelled(stream: EventStream, o: CompletionStreamOptions): void {
  const error = o.cancelledError?.();
  if (error === undefined) return;
  stream.send(error.toBody());
  stream.done();
}

/** The tail of a finished stream: held-back text and logprobs, then finish_reason (or the error), usage, [DONE]. */
function sendEnding(stream: EventStream, ev: DoneEvent, o: CompletionStreamOptions, pending: PendingLogprobs): void {
  if (ev.text || !pending.empty) stream.send(textChunk(o.endpoint, o.head, ev.text ?? "", pending.take()));
  if (ev.finishReason === "error") {
    stream.send(new ApiError(500, ev.message ?? "generation failed", "generation_error").toBody());
  } else {
    stream.send(finalChunk(o.endpoint, o.head, ev));
    if (o.includeUsage) stream.send(usageChunk(o.endpoint, o.head, ev));
  }
  stream.done();
}
