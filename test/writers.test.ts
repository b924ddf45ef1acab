import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readAllRecords } from "../src/data/readers.js";
import type { Judgment, MementoHistory, PipelineRecord } from "../src/data/types.js";
import {
  AtomicFile,
  FAILED_FILE,
  parseMeta,
  recordToRow,
  rowToRecord,
  writeFileAtomic,
  writeRecords,
} from "../src/data/writers.js";
import { buildResponse } from "../src/format/response.js";
import { checkOpenMementosRow } from "../src/format/openmementos.js";
import { tempDir } from "./helpers/tmp.js";

const tmp = tempDir("memento-writers-");

/** The columns of a row with the "full" schema, in order (meta included). */
const FULL_COLUMNS = [
  "problem",
  "response",
  "domain",
  "source",
  "difficulty",
  "sentences",
  "blocks",
  "block_summaries",
  "meta",
];

function judgment(score: number): Judgment {
  return {
    score,
    dimensions: {
      formulas: 3,
      values: 2,
      methods: 1,
      validation: 1,
      noHallucination: 1,
      resultFirst: score >= 8 ? 1 : 0,
    },
    feedback: score >= 8 ? "" : "missing the value of x",
  };
}

function completed(id: string, domain: string, difficulty: number | null): PipelineRecord {
  const sentences = ["First, set x = 2.", "Then x^2 = 4, ünïcode ok.", "Check: 2*2 = 4.", "So the answer is 2."];
  const blocks: [number, number][] = [
    [0, 1],
    [2, 3],
  ];
  const block_summaries = ["x = 2 gives x^2 = 4.", "Verified 2*2 = 4; answer 2."];
  const history: MementoHistory[] = [
    {
      rounds: [
        { memento: "x = 2", judgment: judgment(6) },
        { memento: block_summaries[0], judgment: judgment(9) },
      ],
      final: block_summaries[0],
      passed: true,
    },
    { rounds: [{ memento: block_summaries[1], judgment: judgment(8) }], final: block_summaries[1], passed: true },
  ];
  return {
    id,
    status: "completed",
    problem: `Problem ${id}: find x with x^2 = 4.`,
    response: buildResponse({
      blocks: blocks.map(([a, b]) => sentences.slice(a, b + 1).join(" ")),
      mementos: block_summaries,
      answer: "\\boxed{2}",
    }),
    domain,
    source: "unit-test",
    difficulty,
    sentences,
    blocks,
    block_summaries,
    meta: {
      provider: "offline",
      heuristic: true,
      models: { score: "heuristic", compress: "heuristic", judge: "heuristic" },
      boundaryScores: [1, 3, 0],
      segmentationObjective: 2.5,
      blockTokens: [12, 11],
      mementoHistory: history,
    },
  };
}

const failed: PipelineRecord = {
  id: "f1",
  status: "failed",
  error: { stage: "score", message: "provider returned 3 scores for 4 boundaries" },
  problem: "p",
  domain: "code",
  source: "unit-test",
  difficulty: null,
};

const records: PipelineRecord[] = [completed("a", "math", 3), failed, completed("b", "science", null)];
const expectedCompleted = records.filter((r) => r.status === "completed");

function defaultOnly(r: PipelineRecord): PipelineRecord {
  const { sentences: _s, blocks: _b, block_summaries: _bs, ...rest } = r;
  return rest;
}

describe("recordToRow / rowToRecord", () => {
  it("builds a valid OpenMementos full row with meta (id, derived rounds and judge scores)", () => {
    const row = recordToRow(records[0], { schema: "full" });
    const { meta, ...omRow } = row;
    expect(checkOpenMementosRow(omRow)).toEqual([]);
    expect(Object.keys(row)).toEqual(FULL_COLUMNS);
    expect(meta).toMatchObject({
      id: "a",
      provider: "offline",
      rounds: [2, 1],
      judgeScores: [[6, 9], [8]],
      boundaryScores: [1, 3, 0],
    });
    expect(rowToRecord(row as unknown as Record<string, unknown>)).toEqual(records[0]);
  });

  it("omits the meta column on request", () => {
    expect(recordToRow(records[0], { meta: false }).meta).toBeUndefined();
  });

  it("parses meta from JSON text", () => {
    expect(parseMeta('{"id":"x"}')).toEqual({ id: "x" });
    expect(parseMeta("not json")).toBeNull();
    expect(parseMeta("[1]")).toBeNull();
  });
});

describe("writeRecords round trips", () => {
  for (const format of ["jsonl", "parquet"] as const) {
    for (const schema of ["default", "full"] as const) {
      it(`${format} / ${schema}`, async () => {
        const dir = join(tmp, `${format}-${schema}`);
        const path = join(dir, `out.${format}`);
        const res = writeRecords(records, path, { schema });
        expect(res).toMatchObject({ format, written: 2, failed: 1, failedPath: join(dir, FAILED_FILE) });

        const { records: rows } = await readAllRecords(path);
        expect(rows).toHaveLength(2);
        const back = rows.map((r) => rowToRecord(r));
        expect(back).toEqual(schema === "full" ? expectedCompleted : expectedCompleted.map(defaultOnly));
        // JSONL keeps meta as an object, Parquet as JSON text.
        expect(typeof rows[0].meta).toBe(format === "jsonl" ? "object" : "string");
        expect(Object.keys(rows[0])).toEqual(
          schema === "full" ? FULL_COLUMNS : ["problem", "response", "domain", "source", "difficulty", "meta"],
        );

        const failures = readFileSync(res.failedPath, "utf8")
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l));
        expect(failures).toEqual([
          {
            id: "f1",
            stage: "score",
            reason: "provider returned 3 scores for 4 boundaries",
            domain: "code",
            source: "unit-test",
          },
        ]);
        // No temporary files are left behind.
        expect(readdirSync(dir).sort()).toEqual([FAILED_FILE, `out.${format}`].sort());
      });
    }
  }

  it("writes a string difficulty column when difficulties are mixed", async () => {
    const path = join(tmp, "mixed", "out.parquet");
    writeRecords([completed("a", "math", 3), { ...completed("b", "math", null), difficulty: "hard" }], path);
    const { records: rows } = await readAllRecords(path);
    expect(rows.map((r) => r.difficulty)).toEqual(["3", "hard"]);
  });

  it("sends completed records that lack fields to failed.jsonl instead of dropping them", async () => {
    const dir = join(tmp, "lacking");
    const noResponse: PipelineRecord = { ...completed("c", "math", 1), response: undefined };
    const noSentences: PipelineRecord = { ...completed("d", "math", 1), sentences: undefined };
    const res = writeRecords([noResponse, noSentences, completed("e", "math", 1)], join(dir, "out.parquet"), {
      schema: "full",
    });
    expect(res).toMatchObject({ written: 1, failed: 2 });
    const failures = readFileSync(res.failedPath, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { id: string; reason: string });
    expect(failures.map((f) => [f.id, f.reason])).toEqual([
      ["c", "completed record has no response"],
      ["d", "completed record has no sentences (needed by the full schema)"],
    ]);
  });

  it("writes an empty output and an empty failed.jsonl (replacing a stale one)", async () => {
    const dir = join(tmp, "empty");
    writeFileAtomic(join(dir, FAILED_FILE), '{"id":"stale"}\n');
    const res = writeRecords([], join(dir, "out.parquet"));
    expect(res.written).toBe(0);
    expect((await readAllRecords(join(dir, "out.parquet"))).records).toEqual([]);
    expect(readFileSync(res.failedPath, "utf8")).toBe("");
  });
});

describe("atomic files", () => {
  it("replaces the target only on commit and cleans up on abort", () => {
    const path = join(tmp, "atomic", "f.txt");
    writeFileAtomic(path, "old");
    const f = new AtomicFile(path);
    f.write("new");
    expect(readFileSync(path, "utf8")).toBe("old");
    f.commit();
    expect(readFileSync(path, "utf8")).toBe("new");
    const g = new AtomicFile(path);
    g.write("discarded");
    g.abort();
    expect(readFileSync(path, "utf8")).toBe("new");
    expect(readdirSync(join(tmp, "atomic"))).toEqual(["f.txt"]);
  });

  it("reports an unwritable path as a user error", () => {
    const blocker = join(tmp, "blocker");
    writeFileSync(blocker, "a file, not a directory");
    expect(() => writeFileAtomic(join(blocker, "x.jsonl"), "")).toThrow(/cannot create directory/);
  });
});
