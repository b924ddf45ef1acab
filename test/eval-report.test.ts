import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { loadResponses } from "../src/format/load.js";
import { ARCHITECTURE_PRESETS } from "../src/kv/architecture.js";
import { parseResponse } from "../src/format/response.js";
import { isUserError } from "../src/errors.js";
import {
  cdfPoints,
  downsampleEnvelope,
  downsampleMax,
  escapeXml,
  formatNumber,
  htmlTable,
  lineChart,
  niceTicks,
  pathPointCount,
  scatterChart,
  barChart,
  cdfChart,
} from "../src/util/charts.js";
import {
  computeGenerationKv,
  detectFullAttention,
  loadRun,
  renderReport,
  summariseRun,
  writeReport,
} from "../src/report/report.js";
import type { Generation, RunManifest } from "../src/eval/types.js";
import { PAPER_SAMPLING } from "../src/eval/types.js";
import { formatInKvUnit, formatKvBytes, pickKvUnit } from "../src/eval/kv-units.js";
import { hasReference, referencePath, repoRoot } from "./helpers/reference.js";
import { runCli, runInProcess } from "./helpers/cli.js";
import { hasChromium, noChromiumReason, openPage, saveScreenshot, seriesPointCounts } from "./helpers/browser.js";

// ---------------------------------------------------------------------------------------------------------
// Fixtures: run directories written the way `memento eval run` writes them, with real Memento responses.

interface FixtureProblem {
  id: string;
  text: string;
  problem?: string;
  answer: string;
}

function fixtureProblems(): FixtureProblem[] {
  const out: FixtureProblem[] = [
    { id: "base12-zeros", text: readFileSync(join(repoRoot, "assets", "sample-response.txt"), "utf8"), answer: "48" },
  ];
  if (hasReference) {
    const answers: Record<string, string> = { response: "504", science: "C", code: "code" };
    for (const name of ["response", "science", "code"]) {
      const r = loadResponses(referencePath(`memento_output_${name}.json`)).responses[0];
      out.push({ id: `ref-${name}`, text: r.text, problem: r.problem, answer: answers[name] });
    }
  }
  return out;
}

/** The response with the Memento markers removed: what a base model would write (no blocks, no eviction). */
function plain(text: string): string {
  const p = parseResponse(text);
  return "<think>\n" + p.blocks.map((b) => b.text).join("\n") + "\n</think>\n\n" + (p.answer?.text ?? "");
}

const N = 4;
const tok = loadTokenizer();
const arch = ARCHITECTURE_PRESETS["qwen3-8b"];

function manifest(label: string, problems: number, extra?: Record<string, unknown>): RunManifest {
  return {
    label,
    endpoint: "http://127.0.0.1:8080/v1",
    model: "memento-qwen3-8b",
    benchmark: "fixture",
    problems,
    n: N,
    sampling: { ...PAPER_SAMPLING },
    ...(extra ? { extraBody: extra } : {}),
    architecture: "qwen3-8b",
    startedAt: "2026-01-01T00:00:00.000Z",
  };
}

/**
 * Writes a run: N samples per problem; sample s of problem p is correct when (p + s + shift) % 3 != 0, and the
 * wrong ones vote for a wrong answer. The last problem's samples of the "errors" variant fail with a transport error.
 */
function writeRun(
  dir: string,
  label: string,
  probs: FixtureProblem[],
  opts: { transform?: (t: string) => string; shift?: number; extra?: Record<string, unknown> } = {},
): Generation[] {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "run.json"), JSON.stringify(manifest(label, probs.length, opts.extra), null, 2));
  const gens: Generation[] = [];
  probs.forEach((p, pi) => {
    const response = opts.transform ? opts.transform(p.text) : p.text;
    const kv = computeGenerationKv(response, { tokenizer: tok, architecture: arch, problem: p.problem });
    for (let s = 0; s < N; s++) {
      const correct = (pi + s + (opts.shift ?? 0)) % 3 !== 0;
      gens.push({
        problemId: p.id,
        sample: s,
        status: "ok",
        response,
        finishReason: "stop",
        usage: { promptTokens: kv.promptTokens, completionTokens: kv.outputTokens },
        latencyMs: 1000 + s,
        extracted: correct ? p.answer : `wrong-${s % 2}`,
        voteKey: correct ? p.answer : `wrong-${s % 2}`,
        correct,
        method: "string",
        kv,
      });
    }
  });
  writeFileSync(join(dir, "generations.jsonl"), gens.map((g) => JSON.stringify(g)).join("\n") + "\n");
  return gens;
}

let tmp: string;
let memDir: string;
let vanDir: string;
let probs: FixtureProblem[];

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "memento-report-"));
  probs = fixtureProblems();
  memDir = join(tmp, "memento");
  vanDir = join(tmp, "base");
  writeRun(vanDir, "base", probs, { transform: plain, shift: 1 });
  writeRun(memDir, "memento", probs);
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------

describe("charts", () => {
  it("picks nice ticks", () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0, 1, 4)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(niceTicks(3, 3)).toEqual(expect.arrayContaining([3]));
    expect(niceTicks(0, 31234, 5)).toEqual([0, 10000, 20000, 30000]);
  });

  it("formats and escapes", () => {
    expect(formatNumber(12000)).toBe("12k");
    expect(formatNumber(1_500_000)).toBe("1.5M");
    expect(formatNumber(0.25)).toBe("0.25");
    expect(formatNumber(0)).toBe("0");
    expect(escapeXml(`<a href="x">&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  });

  it("draws deterministic line charts with escaped labels and a legend", () => {
    const series = [
      {
        name: "memento <masked>",
        points: Array.from({ length: 100 }, (_, i) => [i, (i % 20) * 3] as [number, number]),
      },
      {
        name: "full & vanilla",
        points: [
          [0, 0],
          [99, 99],
        ] as [number, number][],
        dashed: true,
      },
    ];
    const a = lineChart(series, { title: "KV", x: { label: "tokens" }, y: { label: "resident" } });
    expect(a).toBe(lineChart(series, { title: "KV", x: { label: "tokens" }, y: { label: "resident" } }));
    expect(a.startsWith("<svg")).toBe(true);
    expect(a).toContain("memento &lt;masked&gt;");
    expect(a).toContain("full &amp; vanilla");
    expect(a).not.toContain("<masked>");
    const d = /class="series" data-series="memento &lt;masked&gt;" data-points="100" d="([^"]+)"/.exec(a);
    expect(d).not.toBeNull();
    expect(pathPointCount(d![1])).toBe(100);
    expect(a).toContain('stroke-dasharray="6 4"');
    expect(a).toContain(">tokens</text>");
  });

  it("draws CDF steps, scatter points, bars, tables and 'no data'", () => {
    expect(cdfPoints([0.3, 0.1, 0.2, 0.2])).toEqual([
      [0.1, 0],
      [0.1, 0.25],
      [0.2, 0.75],
      [0.3, 1],
    ]);
    const cdf = cdfChart([{ name: "r", values: [0.1, 0.2, 0.3] }]);
    expect(cdf).toContain("(n=3)");
    expect(cdf).toContain("100%");
    const sc = scatterChart([
      { x: 1000, y: 60, label: "a" },
      { x: 2500, y: 61, label: "b", hollow: true },
    ]);
    expect((sc.match(/class="point"/g) ?? []).length).toBe(2);
    const bars = barChart([
      { label: "x", value: 2 },
      { label: "y", value: 3 },
    ]);
    expect((bars.match(/class="bar"/g) ?? []).length).toBe(2);
    expect(lineChart([], { title: "empty" })).toContain("no data");
    const t = htmlTable(["a", "b"], [["<1>", { html: "<b>2</b>" }]]);
    expect(t).toContain("<td>&lt;1&gt;</td><td><b>2</b></td>");
  });

  it("downsamples keeping peaks", () => {
    const saw = Array.from({ length: 10_000 }, (_, i) => 100 + (i % 1000));
    const d = downsampleMax(saw, 500);
    expect(d.length).toBe(500);
    expect(Math.max(...d)).toBe(1099);
    const e = downsampleEnvelope(saw, 400);
    expect(e.length).toBeLessThanOrEqual(400);
    expect(Math.max(...e.map((p) => p[1]))).toBe(1099);
    expect(Math.min(...e.map((p) => p[1]))).toBe(100);
  });
});

describe("metrics", () => {
  it("maj@1 equals pass@1 and maj@k / pass@k curves have one point per k", () => {
    const s = summariseRun(loadRun(memDir));
    expect(s.majAtK.length).toBe(N);
    expect(s.passAtK.length).toBe(N);
    expect(s.majAtK[0]).toBeCloseTo(s.pass1, 12);
    expect(s.passAtK[0]).toBeCloseTo(s.pass1, 12);
    for (let k = 1; k < N; k++) expect(s.passAtK[k]).toBeGreaterThanOrEqual(s.passAtK[k - 1]);
  });

  it("detects runs without eviction", () => {
    expect(detectFullAttention(manifest("memento", 1))).toBe(false);
    expect(detectFullAttention(manifest("x", 1, { keepLastNBlocks: -1 }))).toBe(true);
    expect(detectFullAttention(manifest("x", 1, { block_masking: false }))).toBe(true);
    expect(detectFullAttention(manifest("x", 1, { memento: { enable_masking: false } }))).toBe(true);
    expect(detectFullAttention(manifest("masking-off", 1))).toBe(true);
  });
});

describe("loading run directories", () => {
  it("summarises a run", () => {
    const run = loadRun(memDir);
    expect(run.generations.length).toBe(probs.length * N);
    const s = summariseRun(run);
    const expected = probs.map(
      (_, pi) =>
        Array.from({ length: N }, (_, sIdx) => ((pi + sIdx) % 3 !== 0 ? 1 : 0) as number).reduce((a, b) => a + b, 0) /
        N,
    );
    expect(s.pass1).toBeCloseTo(expected.reduce((a, b) => a + b, 0) / expected.length, 10);
    expect(s.majAtK.length).toBe(N);
    expect(s.passAtK[N - 1]).toBeGreaterThanOrEqual(s.passAtK[0]);
    expect(s.kvMode).toBe("memento");
    expect(s.mementoKv.peakTokens).toBeLessThan(s.vanillaKv.peakTokens);
    expect(s.compression.length).toBeGreaterThan(0);
    for (const c of s.compression) expect(c).toBeGreaterThan(0);
  });

  it("rejects missing or malformed runs with one-line user errors", () => {
    const bad = join(tmp, "bad");
    const check = (fn: () => unknown, re: RegExp) => {
      try {
        fn();
        expect.unreachable();
      } catch (e) {
        expect(isUserError(e)).toBe(true);
        expect((e as Error).message).toMatch(re);
        expect((e as Error).message).not.toContain("\n");
      }
    };
    check(() => loadRun(join(tmp, "nope")), /no such run directory/);
    mkdirSync(bad, { recursive: true });
    check(() => loadRun(bad), /no run\.json/);
    writeFileSync(join(bad, "run.json"), "{not json");
    check(() => loadRun(bad), /invalid JSON/);
    writeFileSync(join(bad, "run.json"), JSON.stringify({ ...manifest("x", 1), n: "four" }));
    check(() => loadRun(bad), /invalid run manifest: n:/);
    writeFileSync(join(bad, "run.json"), JSON.stringify(manifest("x", 1)));
    check(() => loadRun(bad), /no generations\.jsonl/);
    writeFileSync(
      join(bad, "generations.jsonl"),
      `{"problemId":"a","sample":0,"status":"ok"}\n{"problemId":"a","sample":"x","status":"ok"}\n{"problemId":"a","sample":2,"status":"ok"}\n`,
    );
    check(() => loadRun(bad), /generations\.jsonl:2: invalid generation: sample/);
  });

  it("tolerates a torn last line and keeps the latest retry of a generation", () => {
    const d = join(tmp, "torn");
    mkdirSync(d, { recursive: true });
    copyFileSync(join(memDir, "run.json"), join(d, "run.json"));
    const lines = readFileSync(join(memDir, "generations.jsonl"), "utf8").trim().split("\n");
    const first = JSON.parse(lines[0]) as Generation;
    const err: Generation = { problemId: first.problemId, sample: first.sample, status: "error", error: "ECONNRESET" };
    writeFileSync(join(d, "generations.jsonl"), [JSON.stringify(err), ...lines].join("\n") + "\n");
    appendFileSync(join(d, "generations.jsonl"), `{"problemId":"x","sam`);
    const run = loadRun(d);
    expect(run.generations.length).toBe(lines.length);
    expect(run.generations.every((g) => g.status === "ok")).toBe(true);
    expect(run.warnings.join(" ")).toMatch(/torn last line/);
  });
});

describe("the HTML report", () => {
  it("has the table, the sawtooth per problem, the CDF, maj@k and the scatter, self-contained", () => {
    const runs = [loadRun(vanDir), loadRun(memDir)];
    const html = renderReport(runs);
    expect(html).toBe(renderReport([loadRun(vanDir), loadRun(memDir)]));
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
    expect(html).not.toMatch(/@import|url\(/i);
    // Table 1: one row per run, with the delta in points and KV ratios against the first run.
    const table1 = /<table class="table1">[\s\S]*?<\/table>/.exec(html)![0];
    expect((table1.match(/<tr>/g) ?? []).length).toBe(3);
    expect(table1).toContain("baseline");
    expect(table1).toMatch(/[+-]\d+\.\d ± \d+\.\d<\/td>/);
    expect(table1).toMatch(/0\.\d\d×/);
    // Sawtooth: one figure per problem with a memento series of many points and the full-attention line.
    const figures = html.match(/<figure class="sawtooth"/g) ?? [];
    expect(figures.length).toBe(probs.length);
    const sawtooth = /<section id="sawtooth">[\s\S]*?<\/section>/.exec(html)![0];
    const counts = [...sawtooth.matchAll(/data-series="memento" data-points="(\d+)"/g)].map((m) => Number(m[1]));
    expect(counts.length).toBe(probs.length);
    for (const c of counts) expect(c).toBeGreaterThan(100);
    expect(html).toContain("full attention (simulated, memento)");
    for (const id of ["cdf", "majk", "scatter"]) expect(html).toContain(`<figure id="${id}">`);
    expect(html).toMatch(/memento \(n=\d+\)/);
    // Accuracy vs KV: base, memento, and memento's simulated full-attention twin.
    expect((/<figure id="scatter">[\s\S]*?<\/figure>/.exec(html)![0].match(/data-series=/g) ?? []).length).toBe(3);
  });

  it("a single run compares with its own full-attention KV", () => {
    const html = renderReport([loadRun(memDir)]);
    expect(html).toContain("full attention (sim.)");
    expect(html).toMatch(/<table class="table2">[\s\S]*?\d\.\d\d×/);
  });

  it("counts a masking-off run's KV under full attention", () => {
    const off = join(tmp, "off");
    writeRun(off, "memento masking-off", probs.slice(0, 1), {});
    const s = summariseRun(loadRun(off));
    expect(s.kvMode).toBe("full");
    expect(s.kv.peakTokens).toBe(s.vanillaKv.peakTokens);
    const forced = writeReport([memDir], join(tmp, "forced.html"), { fullAttention: ["memento"] });
    expect(forced.runs[0].kvMode).toBe("full");
  });

  it("`memento eval report` writes the file, and fails in one line on a bad directory", () => {
    const out = join(tmp, "cli-report.html");
    const r = runCli(["eval", "report", vanDir, memDir, "--out", out]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/wrote .*cli-report\.html/);
    expect(r.stdout).toMatch(/memento: pass@1 \d+\.\d%/);
    expect(readFileSync(out, "utf8")).toContain('<table class="table1">');
    const bad = runCli(["eval", "report", join(tmp, "missing-run"), "--out", join(tmp, "x.html")]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n").length).toBe(1);
    expect(bad.stderr).toMatch(/no such run directory/);
  });
});

describe.skipIf(!hasChromium)("the report in headless Chromium", () => {
  it("renders without errors, with charts and table rows, and a screenshot", async () => {
    const out = join(tmp, "report.html");
    writeReport([vanDir, memDir], out);
    const p = await openPage(pathToFileURL(out).href);
    try {
      const rows = await p.page.$$eval("table.table1 tbody tr", (trs) => trs.map((tr) => tr.textContent ?? ""));
      expect(rows.length).toBe(2);
      for (const r of rows) expect(r.trim().length).toBeGreaterThan(20);
      expect(await p.page.locator("figure.sawtooth svg").count()).toBe(probs.length);
      const counts = await seriesPointCounts(p.page, "figure.sawtooth");
      expect(Math.max(...counts)).toBeGreaterThan(100);
      // The base run has no blocks: only the memento run has a compression CDF.
      expect((await seriesPointCounts(p.page, "#cdf")).length).toBe(1);
      expect((await seriesPointCounts(p.page, "#majk")).every((c) => c === N)).toBe(true);
      expect(await p.page.locator("#scatter path.series").count()).toBe(3);
      // The charts are laid out with a real size.
      const box = await p.page.locator("figure.sawtooth svg").first().boundingBox();
      expect(box!.width).toBeGreaterThan(200);
      expect(box!.height).toBeGreaterThan(100);
      await saveScreenshot(p.page, join(tmp, "report.png"), "/tmp/memento-report.png");
      expect(p.problems).toEqual([]);
    } finally {
      await p.close();
    }
  });
});

if (!hasChromium) {
  describe("the report in headless Chromium", () => {
    it.skip(noChromiumReason, () => {});
  });
}

// ---------------------------------------------------------------------------------------------------------
// Small runs written by hand: a tiny model's KV (kilobytes), one sample per problem, failed generations.

interface TinyRunSpec {
  label: string;
  problems: number;
  n: number;
  /** Generations (problem index, sample) that failed with a transport error. */
  failed?: [number, number][];
  /** Which (problem, sample) are correct; default all. */
  correct?: (p: number, s: number) => boolean;
}

/** A run of a ~1M-parameter model: peak KV of a few hundred tokens at ~100 bytes each (tens of kB). */
function writeTinyRun(dir: string, spec: TinyRunSpec): string {
  mkdirSync(dir, { recursive: true });
  const m = { ...manifest(spec.label, spec.problems), n: spec.n, architecture: "toy" };
  writeFileSync(join(dir, "run.json"), JSON.stringify(m));
  const gens: Generation[] = [];
  for (let p = 0; p < spec.problems; p++) {
    for (let s = 0; s < spec.n; s++) {
      if (spec.failed?.some(([fp, fs]) => fp === p && fs === s)) {
        gens.push({ problemId: `q${p}`, sample: s, status: "error", error: "HTTP 404: model not found" });
        continue;
      }
      const correct = spec.correct ? spec.correct(p, s) : true;
      const peak = 180 + p;
      gens.push({
        problemId: `q${p}`,
        sample: s,
        status: "ok",
        response: "<think>x</think> 1",
        extracted: correct ? "1" : "2",
        voteKey: correct ? "1" : "2",
        correct,
        kv: {
          promptTokens: 20,
          outputTokens: 400,
          blocks: 5,
          compression: 0.2,
          blockTokens: [60, 60, 60, 60, 60],
          mementoTokens: [12, 12, 12, 12, 12],
          memento: { peakTokens: peak, aucTokens: 60_000, peakGB: peak * 96e-9, aucGBxKtok: 0.0058 },
          vanilla: { peakTokens: 420, aucTokens: 90_000, peakGB: 420 * 96e-9, aucGBxKtok: 0.0087 },
        },
      });
    }
  }
  writeFileSync(join(dir, "generations.jsonl"), gens.map((g) => JSON.stringify(g)).join("\n") + "\n");
  return dir;
}

const table1Of = (html: string) => /<table class="table1">[\s\S]*?<\/table>/.exec(html)![0];
const headersOf = (table: string) => [...table.matchAll(/<th[^>]*>([^<]*)<\/th>/g)].map((m) => m[1]);
const figureOf = (html: string, id: string) => new RegExp(`<figure id="${id}">[\\s\\S]*?</figure>`).exec(html)![0];

describe("failed generations in the report", () => {
  it("a problem is scored over its completed generations: a failed one is not a wrong answer", () => {
    // q0: 1 of 2 failed, the other right; q1: both right. Counting the failure as wrong would give 75%.
    const dir = writeTinyRun(join(tmp, "tiny-failed"), { label: "t", problems: 2, n: 2, failed: [[0, 1]] });
    const s = summariseRun(loadRun(dir));
    expect(s).toMatchObject({ errors: 1, scoredProblems: 2, pass1: 1 });
    expect(s.perProblem.find((p) => p.id === "q0")).toMatchObject({ samples: 2, completed: 1, correct: 1 });
  });

  it("a run with failures is marked in the table and warned about", () => {
    const ok = writeTinyRun(join(tmp, "tiny-ok"), { label: "ok", problems: 3, n: 1 });
    const bad = writeTinyRun(join(tmp, "tiny-bad"), { label: "bad", problems: 3, n: 1, failed: [[2, 0]] });
    const html = renderReport([loadRun(ok), loadRun(bad)]);
    expect(table1Of(html)).toContain("⚠ 1 of 3 failed");
    expect(html).toMatch(/<div class="warn">[^<]*bad: 1 of 3 generations failed and are not scored/);
  });
});

describe("comparing runs that do not cover the same ground", () => {
  it("warns when runs cover other problems or sample counts, and pairs Δ pass@1 over the common problems", async () => {
    // 10 problems, half wrong, against 2 problems both right: unpaired, that reads +50 points.
    const wide = writeTinyRun(join(tmp, "wide"), { label: "wide", problems: 10, n: 1, correct: (p) => p % 2 === 1 });
    const narrow = writeTinyRun(join(tmp, "narrow"), { label: "narrow", problems: 2, n: 4 });
    const out = join(tmp, "cmp.html");
    const r = writeReport([wide, narrow], out);
    expect(r.warnings.some((w) => /narrow covers 2 problems and wide 10, 2 in common/.test(w))).toBe(true);
    expect(r.warnings.some((w) => /samples per problem differ \(wide 1, narrow 4\)/.test(w))).toBe(true);
    // The two common problems: q0 wrong, q1 right in `wide`; both right in `narrow` -> +50 paired.
    expect(table1Of(readFileSync(out, "utf8"))).toMatch(/\+50\.0 ± \d+\.\d/);
    const cli = await runInProcess(["eval", "report", wide, narrow, "--out", join(tmp, "cmp-cli.html")]);
    expect(cli.code, cli.err).toBe(0);
    expect(cli.err).toMatch(/^warning: narrow covers 2 problems/m);
    expect(cli.err).toMatch(/^warning: samples per problem differ/m);
  });

  it("a run compared with itself gives no warning", () => {
    const a = writeTinyRun(join(tmp, "same-a"), { label: "a", problems: 3, n: 2 });
    const b = writeTinyRun(join(tmp, "same-b"), { label: "b", problems: 3, n: 2 });
    expect(writeReport([a, b], join(tmp, "same.html")).warnings).toEqual([]);
  });
});

describe("KV units (src/eval/kv-units.ts)", () => {
  it("picks the largest decimal unit in which the value is at least 1, with three significant digits", () => {
    expect(pickKvUnit(2.5)).toBe("GB");
    expect(pickKvUnit(0.38)).toBe("MB");
    expect(pickKvUnit(17.4e-6)).toBe("kB");
    expect(pickKvUnit(5e-10)).toBe("B");
    expect(formatKvBytes(17.376e-6)).toBe("17.4 kB");
    expect(formatKvBytes(0.38)).toBe("380 MB");
    expect(formatInKvUnit(0.0012, "MB")).toBe("1.20");
    expect(formatInKvUnit(0, "GB")).toBe("0");
  });
});

describe("the report's units and labels with a small model", () => {
  const tinyDir = () => writeTinyRun(join(tmp, "tiny-units"), { label: "toy", problems: 3, n: 1 });

  it("KV sizes are in the unit that fits (kB for a toy model), never 0.000 GB", () => {
    const html = renderReport([loadRun(tinyDir())]);
    const headers = headersOf(table1Of(html));
    expect(headers).toContain("peak KV (kB)");
    expect(headers).toContain("KV AUC (MB·ktok)");
    expect(table1Of(html)).not.toMatch(/>0\.000</);
    expect(table1Of(html)).toMatch(/>17\.4</); // (180 + 181 + 182) / 3 tokens x 96 bytes = 17.4 kB
  });

  it("with one sample per problem pass@1 is one column, not three (maj@1 and pass@1 again)", () => {
    const headers = headersOf(table1Of(renderReport([loadRun(tinyDir())])));
    expect(headers.filter((h) => /^(pass|maj)@1\b/.test(h))).toEqual(["pass@1 (%) ± SE"]);
  });

  it("maj@k with one sample is a note, not a lone point", () => {
    const majk = figureOf(renderReport([loadRun(tinyDir())]), "majk");
    expect(majk).not.toContain('data-points="1"');
    expect(majk).toMatch(/maj@k needs more than one sample per problem: toy has one/);
  });

  it("every name in the accuracy-vs-KV chart stays inside it", () => {
    const long = writeTinyRun(join(tmp, "tiny-long"), { label: "memento-toy", problems: 3, n: 1 });
    const scatter = figureOf(renderReport([loadRun(long)]), "scatter");
    const width = Number(/<svg[^>]* width="(\d+)"/.exec(scatter)![1]);
    const texts = [...scatter.matchAll(/<text[^>]* x="([\d.]+)"[^>]*>([^<]*)<\/text>/g)];
    expect(texts.some((t) => t[2].includes("full attention (sim.)"))).toBe(true);
    // 6.2 px per character at 11 px: the legend's own estimate (src/util/charts.ts).
    for (const [, x, text] of texts) expect(Number(x) + text.length * 6.2, text).toBeLessThanOrEqual(width);
  });
});
