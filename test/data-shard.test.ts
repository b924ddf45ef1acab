/**
 * Sharded data builds: `memento data build --shard K/N` takes the traces whose id hashes into shard K
 * (src/data/shard.ts), and `memento data merge` (src/data/merge-check.ts, src/data/merge.ts) combines the N shard
 * directories into one dataset equal to an unsharded build's, refusing shards that do not make one build.
 * Everything runs offline (the heuristic provider) on 20 synthetic traces, in process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syntheticTraceRecord } from "../src/bench/traces.js";
import { isUserError } from "../src/errors.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { OfflineProvider } from "../src/data/providers/offline.js";
import { readAllRecords } from "../src/data/readers.js";
import { buildDataset } from "../src/data/runner.js";
import { collectStats } from "../src/data/stats.js";
import { inShard, parseShardSpec, shardOfId } from "../src/data/shard.js";
import { runInProcess } from "./helpers/cli.js";

const TRACES = 20;

let root: string;
let input: string;
let whole: string;
let shard1: string;
let shard2: string;

const text = (path: string) => readFileSync(path, "utf8");
const json = (path: string) => JSON.parse(text(path));
const lines = (path: string) =>
  text(path)
    .split("\n")
    .filter((l) => l.trim());
const lineId = (line: string) => (JSON.parse(line).meta?.id ?? JSON.parse(line).id) as string;
const sortedById = (ls: string[]) =>
  [...ls].sort((a, b) => (lineId(a) < lineId(b) ? -1 : lineId(a) > lineId(b) ? 1 : 0));
/** The `memento: ...` lines of a run's stderr. */
const errorLines = (err: string) => err.split("\n").filter((l) => l.startsWith("memento: "));

function writeTraces(path: string, count: number): string {
  const records = Array.from({ length: count }, (_, i) => JSON.stringify(syntheticTraceRecord(i)));
  writeFileSync(path, records.join("\n") + "\n");
  return path;
}

async function build(args: string[]): Promise<void> {
  const r = await runInProcess(["data", "build", ...args]);
  expect(r.code, r.err).toBe(0);
}

async function merge(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runInProcess(["data", "merge", ...args]);
}

/** Merging `dirs` is refused with exactly one `memento:` line matching `pattern`, exit 2. */
async function expectRefused(dirs: string[], pattern: RegExp): Promise<void> {
  const r = await merge([...dirs, "-o", join(root, `refused-${Math.random().toString(36).slice(2)}`)]);
  expect(r.code, r.err).toBe(2);
  expect(errorLines(r.err)).toEqual([expect.stringMatching(pattern)]);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "memento-shard-"));
  input = writeTraces(join(root, "traces.jsonl"), TRACES);
  whole = join(root, "whole");
  shard1 = join(root, "shard-1");
  shard2 = join(root, "shard-2");
  await build(["-i", input, "-o", whole, "--parquet"]);
  await build(["-i", input, "-o", shard2, "--shard", "2/2", "--workers", "3"]); // order and workers do not matter
  await build(["-i", input, "-o", shard1, "--shard", "1/2", "--schema", "default"]); // nor the shard's schema
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = undefined;
});

describe("the shard of a trace (src/data/shard.ts)", () => {
  const ids = Array.from({ length: 200 }, (_, i) => `trace-${i}`);

  it("depends only on the id: the same in any order, and each id is in exactly one of N shards", () => {
    const forward = ids.map((id) => shardOfId(id, 5));
    const backward = [...ids].reverse().map((id) => shardOfId(id, 5));
    expect(backward.reverse()).toEqual(forward);
    for (const id of ids) {
      const homes = [1, 2, 3, 4, 5].filter((k) => inShard(id, { index: k, count: 5 }));
      expect(homes).toEqual([shardOfId(id, 5)]);
    }
    for (let k = 1; k <= 5; k++) expect(forward.filter((s) => s === k).length).toBeGreaterThan(20); // ~40 each
  });

  it("is pinned: hosts on different versions must agree on every trace's shard", () => {
    const synthetic = Array.from({ length: TRACES }, (_, i) => shardOfId(`synthetic-${i}`, 2));
    expect(synthetic.join(",")).toBe("2,2,1,1,1,2,2,1,1,2,2,2,1,1,2,1,1,1,1,2");
    expect([2, 3, 8].map((n) => shardOfId("h-0123456789abcdef", n))).toEqual([2, 1, 8]);
    expect([2, 3, 8].map((n) => shardOfId("ü-ид", n))).toEqual([1, 2, 7]);
  });

  it("parses K/N with whole numbers 1 <= K <= N and refuses anything else as a user error", () => {
    expect(parseShardSpec("--shard", "2/8")).toEqual({ index: 2, count: 8 });
    expect(parseShardSpec("--shard", "1/1")).toEqual({ index: 1, count: 1 });
    for (const bad of ["3/2", "0/2", "1/0", "x", "1/2/3", "1.5/2", "-1/2", "", "2"]) {
      let error: unknown;
      try {
        parseShardSpec("--shard", bad);
      } catch (e) {
        error = e;
      }
      expect(isUserError(error), bad).toBe(true);
      expect(String((error as Error).message)).toMatch(/^--shard: expected K\/N/);
    }
  });
});

describe("data build --shard", () => {
  it("processes exactly the selected traces whose id hashes into its shard, and records the shard", () => {
    for (const [dir, k] of [
      [shard1, 1],
      [shard2, 2],
    ] as const) {
      const manifest = json(join(dir, "manifest.json"));
      expect(manifest.options["--shard"]).toBe(`${k}/2`);
      expect(manifest.selectedTraces).toBe(TRACES);
      const ids = lines(join(dir, "journal.jsonl")).map(lineId);
      const expected = Array.from({ length: TRACES }, (_, i) => `synthetic-${i}`).filter(
        (id) => shardOfId(id, 2) === k,
      );
      expect(ids.sort()).toEqual(expected.sort());
    }
  });

  it("a resume with another --shard (or none) is refused in one line naming it", async () => {
    const other = await runInProcess(["data", "build", "-i", input, "-o", shard1, "--shard", "2/2"]);
    expect(other.code).toBe(2);
    expect(errorLines(other.err)).toEqual([expect.stringMatching(/--shard 1\/2 \(now 2\/2\)/)]);
    const none = await runInProcess(["data", "build", "-i", input, "-o", shard1]);
    expect(none.code).toBe(2);
    expect(errorLines(none.err)).toEqual([expect.stringMatching(/--shard 1\/2 \(now unset\)/)]);
  });

  it("--shard 3/2, 0/2 and x are one-line errors with exit 2, before any work", async () => {
    for (const bad of ["3/2", "0/2", "x"]) {
      const out = join(root, `bad-${bad.replace("/", "-")}`);
      const r = await runInProcess(["data", "build", "-i", input, "-o", out, "--shard", bad]);
      expect(r.code, bad).toBe(2);
      expect(r.err.trim().split("\n"), bad).toEqual([
        `memento: --shard: expected K/N with whole numbers 1 <= K <= N (e.g. 1/4), got ${JSON.stringify(bad)}`,
      ]);
    }
  });
});

describe("data merge", () => {
  it("2 shards merged equal one unsharded build, byte for byte after sorting by id (JSONL, Parquet, failures, stats)", async () => {
    const merged = join(root, "merged");
    const r = await merge([shard2, shard1, "-o", merged, "--parquet", "--json"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(new RegExp(`merged 2 shards: ${TRACES} completed, 0 failed`));
    const mergedLines = lines(join(merged, "openmementos.jsonl"));
    expect(mergedLines).toEqual(sortedById(mergedLines)); // written in id order
    expect(mergedLines).toHaveLength(TRACES);
    expect(mergedLines.join("\n")).toBe(sortedById(lines(join(whole, "openmementos.jsonl"))).join("\n"));
    expect(text(join(merged, "failed.jsonl"))).toBe(text(join(whole, "failed.jsonl")));
    expect(text(join(merged, "seed-report.json"))).toBe(text(join(whole, "seed-report.json")));

    const parquetRows = async (dir: string) =>
      (await readAllRecords(join(dir, "openmementos.parquet"))).records.sort((a, b) =>
        (a.meta as string) < (b.meta as string) ? -1 : 1,
      );
    expect(await parquetRows(merged)).toEqual(await parquetRows(whole));

    const wholeStats = (await collectStats(join(whole, "openmementos.jsonl"))).stats;
    const mergedStats = json(join(merged, "stats.json"));
    expect({ ...mergedStats, files: [] }).toEqual({ ...wholeStats, files: [] });
    expect(JSON.parse(r.out)).toEqual(mergedStats);

    const manifest = json(join(merged, "manifest.json"));
    const wholeManifest = json(join(whole, "manifest.json"));
    expect(manifest).toMatchObject({ status: "finished", total: TRACES, completed: TRACES, failed: 0 });
    expect(manifest.options).toEqual(wholeManifest.options); // the unsharded identity: no --shard
    expect(manifest.input).toEqual(wholeManifest.input);
    expect(manifest.mergedFrom.map((s: { shard: string }) => s.shard)).toEqual(["1/2", "2/2"]);
  });

  it("the merged directory resumes as a finished unsharded build: data build on it redoes nothing", async () => {
    const merged = join(root, "merged-resume");
    expect((await merge([shard1, shard2, "-o", merged])).code).toBe(0);
    const again = await runInProcess(["data", "build", "-i", input, "-o", merged]);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toMatch(new RegExp(`${TRACES} from an earlier run`));
    expect(text(join(merged, "openmementos.jsonl"))).toBe(text(join(whole, "openmementos.jsonl"))); // input order
  });

  it("refuses shards built with other options, another input or another --limit, naming what differs", async () => {
    const rounds = join(root, "shard-2-rounds");
    await build(["-i", input, "-o", rounds, "--shard", "2/2", "--max-rounds", "1"]);
    await expectRefused([shard1, rounds], /shard-2-rounds was built with other options .*: --max-rounds 2 \(now 1\)$/);

    const otherInput = writeTraces(join(root, "other.jsonl"), TRACES + 1);
    const elsewhere = join(root, "shard-2-other-input");
    await build(["-i", otherInput, "-o", elsewhere, "--shard", "2/2"]);
    await expectRefused([shard1, elsewhere], /shard-2-other-input was built with .*: --input \(its contents differ\)$/);

    const limited = join(root, "shard-2-limited");
    await build(["-i", input, "-o", limited, "--shard", "2/2", "--limit", "10"]);
    await expectRefused([shard1, limited], /shard-2-limited cut 10 selected traces but .*shard-1 20: .*same --limit$/);
  });

  it("refuses a missing shard, a shard given twice, and shards of different N", async () => {
    await expectRefused([shard1], /^memento: missing shard 2\/2 \(given 1 of 2\)$/);
    const copy = join(root, "shard-1-copy");
    cpSync(shard1, copy, { recursive: true });
    await expectRefused([shard1, copy, shard2], /^memento: shard 1\/2 given twice: .*shard-1 and .*shard-1-copy$/);
    const third = join(root, "shard-1-of-3");
    await build(["-i", input, "-o", third, "--shard", "1/3"]);
    await expectRefused([shard1, third], /shard-1-of-3 is shard 1\/3 but .*shard-1 is 1\/2/);
  });

  it("refuses a shard whose build is unfinished", async () => {
    const tokenizer = loadTokenizer();
    const ac = new AbortController();
    const unfinished = join(root, "shard-2-unfinished");
    const summary = await buildDataset({
      input,
      outputDir: unfinished,
      provider: new OfflineProvider({ countTokens: (t) => tokenizer.count(t) }),
      tokenizer,
      shard: { index: 2, count: 2 },
      workers: 1,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.done === 1) setTimeout(() => ac.abort(), 0); // as a SIGINT handler would
      },
    });
    expect(summary.interrupted).toBe(true);
    await expectRefused([shard1, unfinished], /shard-2-unfinished: its build is not finished \(status interrupted\)/);
  });

  it("refuses a shard that holds a trace of another shard, and an unsharded build", async () => {
    const tampered = join(root, "shard-2-tampered");
    cpSync(shard2, tampered, { recursive: true });
    const foreign = lines(join(shard1, "openmementos.jsonl"))[0];
    const own = lines(join(tampered, "openmementos.jsonl"));
    writeFileSync(join(tampered, "openmementos.jsonl"), [...own, foreign].join("\n") + "\n");
    await expectRefused([shard1, tampered], /shard-2-tampered: trace synthetic-\d+ belongs to shard 1\/2, not 2\/2$/);
    await expectRefused([whole], /whole: not a sharded build \(built without --shard\)$/);
  });

  it("writes only into a new or empty directory or over an earlier merge, never into a shard", async () => {
    await expectRefusedInto(shard1, /is one of the shards being merged$/);
    const busy = join(root, "busy");
    mkdirSync(busy);
    writeFileSync(join(busy, "notes.txt"), "mine\n");
    await expectRefusedInto(busy, /is not empty and holds no earlier merge/);
    const merged = join(root, "merged-twice");
    expect((await merge([shard1, shard2, "-o", merged, "--parquet"])).code).toBe(0);
    expect((await merge([shard1, shard2, "-o", merged])).code).toBe(0);
    expect(() => readFileSync(join(merged, "openmementos.parquet"))).toThrow(); // the stale one is gone
  });
});

async function expectRefusedInto(out: string, pattern: RegExp): Promise<void> {
  const r = await merge([shard1, shard2, "-o", out]);
  expect(r.code, r.err).toBe(2);
  expect(errorLines(r.err)).toEqual([expect.stringMatching(pattern)]);
}
