import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJournalled, type JobProgress, type JournalledPoolOptions } from "../src/io/pool.js";

interface Rec {
  id: string;
  ok: boolean;
  note?: string;
}

let dir: string;
let journal: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "memento-pool-"));
  journal = join(dir, "journal.jsonl");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const ids = (n: number) => Array.from({ length: n }, (_, i) => `t${i}`);
const journalled = () =>
  readFileSync(journal, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Rec);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pool(items: string[], extra: Partial<JournalledPoolOptions<string, Rec>> = {}) {
  return runJournalled<string, Rec>({
    items,
    journal,
    itemKey: (id) => id,
    recordKey: (r) => r.id,
    work: (id) => ({ id, ok: true }),
    succeeded: (r) => r.ok,
    ...extra,
  });
}

describe("runJournalled", () => {
  it("journals one record per item and reports progress at the start and after each record", async () => {
    const seen: { p: JobProgress; last?: Rec }[] = [];
    const r = await pool(ids(5), {
      work: (id) => ({ id, ok: id !== "t3" }),
      concurrency: 2,
      meter: () => ({ usage: { promptTokens: 1, completionTokens: 2, requests: 3 }, cost: 0.5 }),
      onProgress: (p, last) => seen.push({ p, last }),
    });
    expect(r.status).toBe("done");
    expect(r.progress).toMatchObject({ total: 5, done: 5, completed: 4, failed: 1, resumed: 0, cost: 0.5 });
    expect(r.progress.usage).toEqual({ promptTokens: 1, completionTokens: 2, requests: 3 });
    expect(seen).toHaveLength(6);
    expect(seen[0]).toEqual({ p: expect.objectContaining({ done: 0, completed: 0, failed: 0 }), last: undefined });
    expect(seen.map((s) => s.p.done)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const { p } of seen) expect(p.completed + p.failed).toBe(p.done);
    expect(
      seen
        .slice(1)
        .map((s) => s.last?.id)
        .sort(),
    ).toEqual(ids(5));
    expect(
      journalled()
        .map((x) => x.id)
        .sort(),
    ).toEqual(ids(5));
    expect([...r.records.keys()].sort()).toEqual(ids(5));
  });

  it("on resume skips the items already journalled; failed ones are taken again only with retryFailed", async () => {
    const prior = [
      { id: "t0", ok: true },
      { id: "t1", ok: false },
    ];
    writeFileSync(journal, prior.map((x) => JSON.stringify(x) + "\n").join(""));
    const calls: string[] = [];
    const work = (id: string) => {
      calls.push(id);
      return { id, ok: true };
    };
    const first = await pool(ids(4), { work });
    expect(calls.sort()).toEqual(["t2", "t3"]);
    expect(first.progress).toMatchObject({ total: 4, done: 4, completed: 3, failed: 1, resumed: 2 });

    calls.length = 0;
    const progress: JobProgress[] = [];
    const retry = await pool(ids(4), { work, retryFailed: true, onProgress: (p) => progress.push(p) });
    expect(calls).toEqual(["t1"]);
    expect(progress[0]).toMatchObject({ done: 3, completed: 3, failed: 0, resumed: 3 });
    expect(retry.progress).toMatchObject({ total: 4, done: 4, completed: 4, failed: 0, resumed: 3 });
    expect(retry.records.get("t1")).toEqual({ id: "t1", ok: true }); // the later line wins
    expect(journalled().map((x) => x.id)).toEqual(["t0", "t1", "t2", "t3", "t1"]);

    calls.length = 0;
    await pool(ids(4), { work, retryFailed: true });
    expect(calls).toEqual([]); // nothing left to do
  });

  it("keeps at most `concurrency` items in flight and takes them in input order", async () => {
    let inFlight = 0;
    let peak = 0;
    const started: string[] = [];
    await pool(ids(12), {
      concurrency: 3,
      work: async (id) => {
        started.push(id);
        peak = Math.max(peak, ++inFlight);
        await sleep(2 + (Number(id.slice(1)) % 3) * 3);
        inFlight--;
        return { id, ok: true };
      },
    });
    expect(peak).toBe(3);
    expect(started).toEqual(ids(12));
    expect(journalled()).toHaveLength(12);
  });

  it("an abort stops taking items; an item that throws because of it is not journalled; a rerun finishes", async () => {
    const ac = new AbortController();
    const r = await pool(ids(20), {
      concurrency: 2,
      signal: ac.signal,
      work: async (id) => {
        await sleep(5);
        if (ac.signal.aborted) throw new Error("aborted");
        return { id, ok: true };
      },
      onProgress: (p) => {
        if (p.done === 3) ac.abort();
      },
    });
    expect(r.status).toBe("interrupted");
    expect(r.progress.done).toBe(3);
    expect(journalled()).toHaveLength(3); // the other item in flight threw on the abort: left for the next run

    const again = await pool(ids(20));
    expect(again.status).toBe("done");
    expect(again.progress).toMatchObject({ done: 20, resumed: 3, completed: 20 });
    const keys = journalled().map((x) => x.id);
    expect(new Set(keys).size).toBe(20);
    expect(keys).toHaveLength(20);
  });

  it("yields between synchronous items, so an abort fired from a timer stops the run early", async () => {
    const ac = new AbortController();
    const busy = (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // purely synchronous work
      }
    };
    setTimeout(() => ac.abort(), 20);
    const r = await pool(ids(500), {
      concurrency: 2,
      signal: ac.signal,
      work: (id) => {
        busy(1);
        return { id, ok: true };
      },
    });
    expect(r.status).toBe("interrupted");
    expect(r.progress.done).toBeGreaterThan(0);
    expect(r.progress.done).toBeLessThan(500);
    expect(journalled()).toHaveLength(r.progress.done);
  });

  it("an abort after the last item is not an interruption", async () => {
    const ac = new AbortController();
    const r = await pool(ids(3), { signal: ac.signal, onProgress: (p) => p.done === 3 && ac.abort() });
    expect(r.status).toBe("done");
  });

  it("with onError a throwing worker yields a journalled failed record and the run goes on", async () => {
    const r = await pool(ids(4), {
      work: (id) => {
        if (id === "t1") throw new Error("boom");
        return { id, ok: true };
      },
      onError: (id, e) => ({ id, ok: false, note: (e as Error).message }),
    });
    expect(r.status).toBe("done");
    expect(r.progress).toMatchObject({ done: 4, completed: 3, failed: 1 });
    expect(r.records.get("t1")).toEqual({ id: "t1", ok: false, note: "boom" });
    // A failed record is taken again when asked to.
    const again = await pool(ids(4), { retryFailed: true });
    expect(again.progress).toMatchObject({ resumed: 3, completed: 4, failed: 0 });
  });

  it("without onError a worker error is fatal: nothing new is taken, those in flight are journalled", async () => {
    const started: string[] = [];
    const run = pool(ids(10), {
      concurrency: 3,
      work: async (id) => {
        started.push(id);
        await sleep(id === "t1" ? 5 : 30);
        if (id === "t1") throw new Error("bug in t1");
        return { id, ok: true };
      },
    });
    await expect(run).rejects.toThrow("bug in t1");
    expect(started).toEqual(["t0", "t1", "t2"]);
    expect(
      journalled()
        .map((x) => x.id)
        .sort(),
    ).toEqual(["t0", "t2"]);
    // The journal was closed cleanly: the same call resumes from it.
    const again = await pool(ids(10));
    expect(again.progress).toMatchObject({ resumed: 2, done: 10 });
  });
});
