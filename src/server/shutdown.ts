/**
 * Graceful shutdown of a listening server, in three phases, each reported once to `onPhase` with its counts:
 *
 *  1. draining: the server keeps listening but refuses new completions with an OpenAI-shaped 503
 *     `shutting_down` (and /health answers 503); the requests in flight, running or queued, go on;
 *  2. drained: when they have all ended, or at the deadline (`timeoutMs`, or at once when `cut` aborts: the
 *     CLI's second Ctrl-C), whatever is left is cancelled: an open stream gets an error event and `[DONE]`, a
 *     non-streaming request a 503 error reply (the routes write them; lifecycle.ts keeps the books); their
 *     clients get up to CUT_GRACE_MS to receive that last answer;
 *  3. closed: the listening socket and every connection are closed, and the engine too when the server owns it.
 *
 * Nothing is dropped silently: every request accepted before phase 1 gets either its full answer or an error.
 */
import type { FastifyInstance } from "fastify";
import type { ServerLifecycle } from "./lifecycle.js";

/**
 * Seconds `memento serve` lets running requests finish after SIGINT/SIGTERM before it cuts them. Below the 30 s
 * that Kubernetes waits between SIGTERM and SIGKILL by default, so the cut streams still get their ending.
 */
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 20;

/**
 * After the cut, how long the cancelled requests have to write their error answers before the connections
 * are closed anyway (the engine ends a cancelled request right after the backend call in flight).
 */
export const CUT_GRACE_MS = 5000;

/** Why the drain ended: everything ended in time, the deadline passed, or `cut` was aborted. */
export type DrainEnd = "drained" | "deadline" | "cut";

export type ShutdownPhase =
  | { phase: "draining"; requests: number; streams: number; timeoutMs: number }
  | { phase: "drained"; end: DrainEnd; ended: number; cutRequests: number; cutStreams: number; elapsedMs: number }
  | { phase: "closed"; elapsedMs: number };

export interface ShutdownOptions {
  /** How long the requests in flight may run on (ms; 0: cut them at once). */
  timeoutMs: number;
  /** Aborting it ends the drain at once (the requests still in flight are cut). */
  cut?: AbortSignal;
  /** Told each phase as it completes (the CLI prints one line each). */
  onPhase?: (phase: ShutdownPhase) => void;
}

/** Resolves true when `settled` resolves within `ms`, false at the timeout or when `cut` aborts first. */
function settleWithin(settled: Promise<void>, ms: number, cut?: AbortSignal): Promise<boolean> {
  if (cut?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => finish(false), ms);
    const onCut = () => finish(false);
    function finish(inTime: boolean) {
      clearTimeout(timer);
      cut?.removeEventListener("abort", onCut);
      resolve(inTime);
    }
    cut?.addEventListener("abort", onCut);
    void settled.then(() => finish(true));
  });
}

/** Runs the three phases on `app`, whose routes share `lifecycle`. */
export async function shutdownServer(
  app: FastifyInstance,
  lifecycle: ServerLifecycle,
  o: ShutdownOptions,
): Promise<void> {
  const t0 = performance.now();
  const elapsedMs = () => performance.now() - t0;
  const atStart = lifecycle.drain();
  o.onPhase?.({ phase: "draining", ...atStart, timeoutMs: o.timeoutMs });

  const inTime = await settleWithin(lifecycle.settled(), o.timeoutMs, o.cut);
  const cut = inTime ? { requests: 0, streams: 0 } : lifecycle.cutAll();
  o.onPhase?.({
    phase: "drained",
    end: inTime ? "drained" : o.cut?.aborted ? "cut" : "deadline",
    ended: atStart.requests - cut.requests,
    cutRequests: cut.requests,
    cutStreams: cut.streams,
    elapsedMs: elapsedMs(),
  });
  if (!inTime) await settleWithin(lifecycle.settled(), CUT_GRACE_MS);

  await app.close();
  o.onPhase?.({ phase: "closed", elapsedMs: elapsedMs() });
}
