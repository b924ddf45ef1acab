/**
 * The journalled worker pool behind the long resumable jobs (`memento data build`, `memento eval run`): `work` runs
 * over `items`, at most `concurrency` at a time, and every finished record is appended to a JSONL journal
 * (fsync'd, see JsonlJournal), so running the same job again picks up where it stopped.
 *
 * Policy and invariants:
 * - Resume: an item is skipped when the journal already holds a record under its key, unless that record failed
 *   and `retryFailed` is set. Skipped items are `resumed` and count as `done` from the start.
 * - Order: items are taken in input order from one shared cursor; each record is journalled (one line) as soon as
 *   its item finishes, so the journal is in completion order. Callers wanting input order look records up by key.
 * - Yielding: a worker waits for a macrotask before taking each item, so timers and signal handlers (SIGINT,
 *   SIGTERM) run even when `work` never really waits.
 * - Abort: once `signal` is aborted no new item is taken. An item whose `work` throws while the signal is aborted
 *   is not journalled: it is left for the next run. The run is "interrupted" when the signal was aborted and some
 *   items are not done; an abort after the last item changes nothing.
 * - Worker errors: with `onError`, an error thrown by `work` becomes a failed record, journalled like any other.
 *   Without it the error is fatal: no new item is taken, the items in flight settle (and are journalled), then the
 *   pool rejects with the first error. The same holds for an error thrown by `onError` or `onProgress`.
 * - Progress: reported once at the start and after every journalled record; `done = completed + failed` always.
 * - The journal is opened here (its torn tail cut off) and closed before the pool returns or rejects.
 */

import { setImmediate as nextMacrotask } from "node:timers/promises";
import { JsonlJournal } from "./journal.js";

/** Tokens spent so far, for jobs that call a language model. */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  requests: number;
}

/** Where a journalled job stands. */
export interface JobProgress {
  total: number;
  /** Items with a record: resumed ones plus those finished in this run. */
  done: number;
  completed: number;
  failed: number;
  /** Items already done in the journal when this run started. */
  resumed: number;
  usage: TokenUsage;
  /** USD so far, where the job counts it (0 otherwise). */
  cost: number;
}

export interface JournalledPoolOptions<Item, Rec> {
  items: readonly Item[];
  /** The JSONL journal file. */
  journal: string;
  /** The key of an item; the record it produces must have the same `recordKey`. */
  itemKey: (item: Item) => string;
  recordKey: (record: Rec) => string;
  work: (item: Item) => Promise<Rec> | Rec;
  /** Whether a record counts as completed (otherwise failed). */
  succeeded: (record: Rec) => boolean;
  /** Take again the items whose journalled record failed. */
  retryFailed?: boolean;
  /** Turns an error thrown by `work` into a failed record; without it such an error is fatal. */
  onError?: (item: Item, error: unknown) => Rec;
  /** Items in flight at most (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Usage and cost so far, read into the progress at the start and after each record. */
  meter?: () => { usage: TokenUsage; cost: number };
  onProgress?: (progress: JobProgress, last?: Rec) => void;
}

export interface JournalledPoolResult<Rec> {
  status: "done" | "interrupted";
  progress: JobProgress;
  /** Every record in the journal after the run, by key (the last line per key wins). */
  records: ReadonlyMap<string, Rec>;
}

/** Runs `work` over the items not yet done in the journal; see the policy at the top of this file. */
export async function runJournalled<Item, Rec>(
  opts: JournalledPoolOptions<Item, Rec>,
): Promise<JournalledPoolResult<Rec>> {
  const { items, signal, succeeded } = opts;
  const journal = new JsonlJournal<Rec>(opts.journal, opts.recordKey);
  try {
    const todo: Item[] = [];
    let completed = 0;
    let failed = 0;
    for (const item of items) {
      const prior = journal.records.get(opts.itemKey(item));
      if (prior === undefined) todo.push(item);
      else if (succeeded(prior)) completed++;
      else if (opts.retryFailed) todo.push(item);
      else failed++;
    }
    const resumed = items.length - todo.length;
    const meter = opts.meter ?? (() => ({ usage: { promptTokens: 0, completionTokens: 0, requests: 0 }, cost: 0 }));
    const progress: JobProgress = { total: items.length, done: resumed, completed, failed, resumed, ...meter() };
    opts.onProgress?.({ ...progress });

    let cursor = 0;
    let fatal: { error: unknown } | undefined;
    const worker = async () => {
      try {
        for (;;) {
          await nextMacrotask();
          if (fatal || signal?.aborted || cursor >= todo.length) return;
          const item = todo[cursor++];
          let record: Rec;
          try {
            record = await opts.work(item);
          } catch (error) {
            if (signal?.aborted) continue; // interrupted, not failed: left for the next run
            if (!opts.onError) throw error;
            record = opts.onError(item, error);
          }
          journal.append(record);
          progress.done++;
          if (succeeded(record)) progress.completed++;
          else progress.failed++;
          Object.assign(progress, meter());
          opts.onProgress?.({ ...progress }, record);
        }
      } catch (error) {
        fatal ??= { error };
      }
    };
    const size = Math.min(Math.max(1, Math.floor(opts.concurrency ?? 4) || 1), todo.length);
    await Promise.all(Array.from({ length: size }, worker));
    if (fatal) throw fatal.error;
    const interrupted = signal?.aborted === true && progress.done < progress.total;
    return { status: interrupted ? "interrupted" : "done", progress, records: journal.records };
  } finally {
    journal.close();
  }
}
