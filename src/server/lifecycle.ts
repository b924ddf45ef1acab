/**
 * A server's life: open, then draining, then closed. It keeps the books of every exchange in flight (a request
 * handed to the engine and the HTTP response answering it); it never writes a response itself.
 *
 *  1. Open: requests are accepted and tracked from submit on.
 *  2. Draining (`drain()`): new requests are refused with 503 `shutting_down` (requireOpen) and /health answers
 *     503, so load balancers stop sending; the exchanges in flight go on untouched.
 *  3. Cut (`cutAll()`, or `close()` = drain + cut): every exchange still in flight is cancelled; the routes
 *     answer a request cancelled while the server is closing with a 503 error object (a stream: an error event,
 *     then `[DONE]`).
 *  4. An exchange leaves the books only once its request has ended AND its response has closed, so `settled()`
 *     resolves when every client has had its last byte, not merely when the engine is done.
 */
import type { RequestHandle } from "../engine/types.js";
import { shuttingDown } from "./errors.js";

/** The parts of http.ServerResponse watched to know that an exchange's answer is complete. */
export interface TrackedResponse {
  once(event: "close", listener: () => void): unknown;
  /** True once the response has emitted "close" (Node's writable.closed). */
  readonly closed?: boolean;
}

/** How to track one exchange. */
export interface TrackOptions {
  /** A Server-Sent Events answer (counted apart in the shutdown log). Default false. */
  streaming?: boolean;
  /** The response answering it; without one, the exchange ends with its request. */
  response?: TrackedResponse;
}

/** Exchanges in flight: all of them, and how many of them stream. */
export interface InFlightCounts {
  requests: number;
  streams: number;
}

export class ServerLifecycle {
  private draining = false;
  /** Each exchange in flight, and whether it streams. Emptied only by the exchanges ending (clause 4). */
  private readonly inflight = new Map<RequestHandle, { streaming: boolean }>();
  private waiters: Array<() => void> = [];

  get closing(): boolean {
    return this.draining;
  }

  /** Exchanges in flight (requests not finished, or finished with their response still open). */
  get inFlight(): number {
    return this.inflight.size;
  }

  counts(): InFlightCounts {
    let streams = 0;
    for (const e of this.inflight.values()) if (e.streaming) streams++;
    return { requests: this.inflight.size, streams };
  }

  /** Throws the 503 once the server is closing. */
  requireOpen(): void {
    if (this.draining) throw shuttingDown();
  }

  /** Remembers an exchange until its request has ended and its response (when given) has closed. */
  track(handle: RequestHandle, opts: TrackOptions = {}): void {
    this.inflight.set(handle, { streaming: opts.streaming ?? false });
    const res = opts.response;
    const ended =
      res === undefined || res.closed === true
        ? handle.result()
        : Promise.all([handle.result(), new Promise<void>((done) => res.once("close", done))]);
    void ended.then(() => this.forget(handle));
  }

  /** Refuses new requests from now on (clause 2); returns what is in flight. */
  drain(): InFlightCounts {
    this.draining = true;
    return this.counts();
  }

  /** Cancels every exchange still in flight (clause 3); returns what was cancelled. */
  cutAll(): InFlightCounts {
    const cut = this.counts();
    for (const h of this.inflight.keys()) h.cancel();
    return cut;
  }

  /** Resolves when no exchange is in flight (at once when none is). */
  settled(): Promise<void> {
    if (this.inflight.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Drains and cuts at once: what closing the server without a drain does. */
  close(): void {
    this.drain();
    this.cutAll();
  }

  private forget(handle: RequestHandle): void {
    this.inflight.delete(handle);
    if (this.inflight.size > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
