import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  collectStats,
  computeStats,
  distribution,
  renderStatsHtml,
  statsInputFiles,
  type DatasetStats,
} from "../src/data/stats.js";
import type { Judgment, MementoHistory, PipelineRecord } from "../src/data/types.js";
import { writeRecords } from "../src/data/writers.js";
import { buildResponse } from "../src/format/response.js";
import { runInProcess as run } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

const tmp = tempDir("memento-stats-");
afterEach(() => vi.restoreAllMocks());

const text = (n: number, c = "a"): string => c.repeat(n);

function judgment(score: number): Judgment {
  return {
    score,
    dimensions: { formulas: 0, values: 0, methods: 0, validation: 0, noHallucination: 0, resultFirst: 0 },
    feedback: "",
  };
}

function history(scores: number[][]): MementoHistory[] {
  return scores.map((s) => ({
    rounds: s.map((x) => ({ memento: "m", judgment: judgment(x) })),
    final: "m",
    passed: s[s.length - 1] >= 8,
  }));
}

function rec(id: string, domain: string, blocks: number[], mementos: number[], scores?: number[][]): PipelineRecord {
  const r: PipelineRecord = {
    id,
    status: "completed",
    problem: `problem ${id}`,
    response: buildResponse({
      blocks: blocks.map((n) => text(n)),
      mementos: mementos.map((n) => text(n, "m")),
      answer: "42",
    }),
    domain,
    source: "synthetic",
    difficulty: 1,
  };
  if (scores) {
    r.meta = {
      provider: "offline",
      heuristic: true,
      models: { score: "h", compress: "h", judge: "h" },
      boundaryScores: [],
      segmentationObjective: 0,
      blockTokens: blocks,
      mementoHistory: history(scores),
    };
  }
  return r;
}

const RECORDS: PipelineRecord[] = [
  rec("m1", "math", [100, 200, 300], [10, 40, 60], [[6, 9], [8], [9]]),
  rec("m2", "math", [400, 400, 400, 400, 400], [40, 40, 40, 40, 40], [[7, 7], [9], [9], [9], [3, 8]]),
  rec("c1", "code", [1000, 1000], [150, 150]),
  {
    id: "f",
    status: "failed",
    error: { stage: "judge", message: "timeout" },
    problem: "p",
    domain: "science",
    source: "s",
    difficulty: null,
  },
];

function checkNumbers(stats: DatasetStats): void {
  expect(stats.rows).toBe(3);
  expect(stats.domains.map((d) => [d.domain, d.count])).toEqual([
    ["math", 2],
    ["code", 1],
  ]);
  const math = stats.domains[0];
  expect(math.share).toBeCloseTo(2 / 3);
  expect(math.blocksPerSample).toMatchObject({ n: 2, median: 4, min: 3, max: 5 });
  expect(math.blocksPerSample.p10).toBeCloseTo(3.2);
  expect(math.blocksPerSample.p90).toBeCloseTo(4.8);
  expect(math.blockChars).toMatchObject({ n: 8, median: 400, min: 100, max: 400 });
  expect(math.mementoChars).toMatchObject({ n: 8, median: 40 });
  expect(math.compression.median).toBeCloseTo(0.1);
  expect(math.compression.max).toBeCloseTo(0.2);
  expect(math.judge).toMatchObject({ judged: 8, passRate: 7 / 8, firstRoundPassRate: 5 / 8 });
  expect(math.judge!.meanRounds).toBeCloseTo(11 / 8);
  const code = stats.domains[1];
  expect(code.blocksPerSample.median).toBe(2);
  expect(code.compression.median).toBeCloseTo(0.15);
  expect(code.judge).toBeNull();
  expect(stats.all.count).toBe(3);
  expect(stats.all.blockChars.n).toBe(10);
}

describe("distribution", () => {
  it("interpolates quantiles", () => {
    expect(distribution([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).toMatchObject({
      n: 10,
      median: 5.5,
      mean: 5.5,
      min: 1,
      max: 10,
    });
    expect(distribution([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).p10).toBeCloseTo(1.9);
    expect(distribution([]).n).toBe(0);
  });
});

describe("dataset statistics", () => {
  it("computes per-domain numbers from JSONL output", async () => {
    const dir = join(tmp, "jsonl");
    writeRecords(RECORDS, join(dir, "out.jsonl"));
    expect(statsInputFiles(dir)).toEqual([join(dir, "out.jsonl")]);
    const { stats } = await collectStats(dir);
    checkNumbers(stats);
    expect(stats.skipped).toBe(0); // the failed record went to failed.jsonl, which stats does not read
  });

  it("gives the same numbers from Parquet output (preferred over JSONL in the same directory)", async () => {
    const dir = join(tmp, "parquet");
    writeRecords(RECORDS, join(dir, "out.parquet"), { meta: true });
    writeFileSync(join(dir, "checkpoint.jsonl"), "{}\n");
    expect(statsInputFiles(dir)).toEqual([join(dir, "out.parquet")]);
    checkNumbers((await collectStats(dir)).stats);
  });

  it("uses sentences/blocks/block_summaries when the response has no blocks, and counts skipped rows", () => {
    const { stats } = computeStats([
      {
        response: "<think>\nplain\n</think>\n\nx",
        domain: "science",
        sentences: ["ab", "cd", "efgh"],
        blocks: [
          [0, 1],
          [2, 2],
        ],
        block_summaries: ["x", "yy"],
      },
      { problem: "no response" },
      { response: "r", status: "failed" },
    ]);
    expect(stats.rows).toBe(1);
    expect(stats.skipped).toBe(2);
    expect(stats.domains[0].blockChars).toMatchObject({ n: 2, min: 4, max: 5 }); // "ab cd", "efgh"
    expect(stats.domains[0].compression.max).toBeCloseTo(0.5);
  });

  it("renders a self-contained HTML report with four non-empty SVG histograms", async () => {
    const dir = join(tmp, "jsonl");
    const { stats, values } = await collectStats(dir);
    const html = renderStatsHtml(stats, values);
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    expect(svgs).toHaveLength(4);
    for (const svg of svgs) {
      const rects = [...svg.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)];
      expect(rects.length).toBeGreaterThan(0);
      expect(rects.some((m) => Number(m[2]) > 0 && Number(m[3]) > 0)).toBe(true);
      const paths = [...svg.matchAll(/<path d="([^"]*)"/g)];
      expect(paths).toHaveLength(2); // one outline per domain
      for (const p of paths) expect(p[1]).toMatch(/^M[\d.]+ [\d.]+( L[\d.]+ [\d.]+)+$/);
      expect(svg).toContain("math (2)");
      expect(svg).toContain("code (1)");
    }
    for (const title of ["(a) Blocks per sample", "(b) Block size", "(c) Memento size", "(d) Compression ratio"])
      expect(html).toContain(title);
    // Self-contained: no scripts, external resources, fonts or URLs.
    expect(html).not.toMatch(/<script|<link|src=|href=|url\(|@import|@font-face|https?:/i);
    expect(html).toContain("87.5%"); // math judge pass rate
    expect(html).toContain("62.5%"); // math first-round pass rate
  });

  it("escapes domain names in the HTML", () => {
    const { stats, values } = computeStats([
      { response: buildResponse({ blocks: ["abc"], mementos: ["a"], answer: "" }), domain: "<b>&x" },
    ]);
    const html = renderStatsHtml(stats, values);
    expect(html).toContain("&lt;b&gt;&amp;x");
    expect(html).not.toContain("<b>&x");
  });
});

describe("memento data stats", () => {
  it("prints the table and writes DIR/stats.html", async () => {
    const dir = join(tmp, "cli");
    writeRecords(RECORDS, join(dir, "out.parquet"));
    const r = await run(["data", "stats", dir]);
    expect(r.code).toBe(0);
    const lines = r.out.split("\n");
    expect(lines[0]).toMatch(/^domain\s+samples\s+share\s+blocks\/sample/);
    expect(lines.find((l) => l.startsWith("math"))).toMatch(/^math\s+2\s+66\.7%\s+4 \[3\.2, 4\.8\]\s+400 \[170, 400\]/);
    expect(r.out).toContain(`wrote ${join(dir, "stats.html")}`);
    expect(readFileSync(join(dir, "stats.html"), "utf8")).toContain("<svg");
  });

  it("takes --html and --json", async () => {
    const dir = join(tmp, "cli");
    const html = join(tmp, "report", "s.html");
    const r = await run(["data", "stats", dir, "--html", html, "--json"]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as DatasetStats).domains[0].domain).toBe("math");
    expect(existsSync(html)).toBe(true);
  });

  it("exits 2 for a missing directory or one without outputs", async () => {
    const missing = await run(["data", "stats", join(tmp, "nope")]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/nope: cannot read \(ENOENT\)/);
    const empty = join(tmp, "empty-dir");
    mkdirSync(empty);
    const r = await run(["data", "stats", empty]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no \.parquet or \.jsonl output files/);
  });
});
