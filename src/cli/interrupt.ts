/**
 * Ctrl-C and SIGTERM for the long, resumable jobs (`train toy`, `train rl`, `eval run`, `rl rollouts`): the first
 * signal aborts the returned signal, so the job stops at its next safe point and leaves a checkpoint or journal;
 * `release()` (in a `finally`) removes the handlers, so a signal after the job is Node's default again. The
 * handlers are `once`: a second signal while the job winds down kills the process.
 */
export interface Interrupt {
  readonly signal: AbortSignal;
  release(): void;
}

export function onInterrupt(): Interrupt {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return {
    signal: controller.signal,
    release: () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    },
  };
}
