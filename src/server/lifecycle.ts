/**
 * A server's life: open, then closing for good. While open it tracks every request handed to the engine;
 * closing cancels them all (their clients get 503 or a cut stream), and from then on /health answers 503
 * and new requests are refused with 503 `shutting_down`.
 */
import type { RequestHandle } from "../engine/types.js";
import { shuttingDown } from "./errors.js";

export class ServerLifecycle {
  private closed = false;
  private readonly inflight = new Set<RequestHandle>();

  get closing(): boolean {
    return this.closed;
  }

  /** Requests handed to the engine and not finished yet. */
  get inFlight(): number {
    return this.inflight.size;
  }

  /** Throws the 503 once the server is closing. */
  requireOpen(): void {
    if (this.closed) throw shuttingDown();
  }

  /** Remembers a request until it ends, so close() can cancel it. */
  track(handle: RequestHandle): void {
    this.inflight.add(handle);
    void handle.result().then(() => this.inflight.delete(handle));
  }

  /** Enters the closing state and cancels every request in flight. */
  close(): void {
    this.closed = true;
    for (const h of this.inflight) h.cancel();
  }
}
