/**
 * The RL run's HTML page (src/rl/report-html.ts), one test per header clause where it can be checked from the
 * markup, on a synthetic report of a few steps; then the page in headless Chromium when Debian's is installed.
 */
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { isUserError } from "../src/errors.js";
import {
  DEFAULT_MOVING_AVERAGE_STEPS,
  intervalBarPoints,
  movingAverage,
  renderRlReportHtml,
  type RlCompare,
} from "../src/rl/report-html.js";
import type { RlReport } from "../src/rl/train-rl.js";
import { hasChromium, noChromiumReason, openPage, saveScreenshot, seriesPointCounts } from "./helpers/browser.js";

type ValRow = RlReport["val"][number];
type TrainRow = RlReport["train"][number];

function val(step: number, passAt1: number, over: Partial<ValRow> = {}): ValRow {
  return {
    kind: "val",
    step,
    problems: 48,
    samples: 4,
    passAt1,
    ci95: [passAt1 - 0.1, passAt1 + 0.1],
    majAtK: passAt1 + 0.15,
    passAtK: passAt1 + 0.25,
    k: 4,
    peakKvTokens: 100,
    fullAttentionPeakKvTokens: 300,
    blocksPerResponse: 3,
    meanBlockTokens: 59,
    meanCompletionTokens: 250,
    ...over,
  };
}

function train(step: number, reward: number): TrainRow {
  return {
    kind: "train",
    step,
    reward,
    passRate: Math.min(1, reward + 0.3),
    trainedGroups: 5,
    kl: 1e-4 * (step + 1),
    clipFraction: 0.01 * step,
    absLogRatio: 0.02,
    gradNorm: 0.5,
    lr: 2e-4,
    blocksPerResponse: 3 + 0.1 * step,
    meanBlockTokens: 59 + step,
    peakKvTokens: 100 + 2 * step,
    completionTokens: 250,
    forcedBlockEnds: 0,
    rolloutSeconds: 1,
    trainSeconds: 2,
  };
}

const EVIL = `runs/<script>alert("x")</script>&"'`;
const REWARDS = [0.25, 0.5, 0.25, 0.75, 0.5, 1, 0.75, 0.5];

function report(over: Partial<RlReport> = {}): RlReport {
  return {
    startDir: EVIL,
    options: {
      startDir: EVIL,
      prompts: 8,
      group: 8,
      lr: 2e-4,
      temperature: 1,
      valTemperature: 0.6,
      valEvery: 4,
      masking: { maxBlockTokens: 96 },
      cispo: { epsLow: 0.2, epsHigh: 0.2, beta: 0.001 },
    },
    steps: 8,
    seconds: 123,
    train: REWARDS.map((r, i) => train(i, r)),
    val: [
      val(0, 0.5),
      val(4, 0.625),
      val(8, 0.75, { peakKvTokens: 110, blocksPerResponse: 3.5, meanBlockTokens: 61.25, majAtK: 0.875 }),
    ],
    ...over,
  };
}

const COMPARE: RlCompare = {
  problems: 100,
  samples: 8,
  temperature: 0.6,
  start: {
    passAt1: 0.4,
    ci95: [0.35, 0.45],
    majAt8: 0.7,
    passAt8: 0.9,
    meanCompletionTokens: 300,
    peakKvTokens: 120,
    blocksPerResponse: 3,
    meanBlockTokens: 58,
  },
  rl: {
    passAt1: 0.66,
    ci95: [0.61, 0.71],
    majAt8: 0.74,
    passAt8: 0.92,
    meanCompletionTokens: 310,
    peakKvTokens: 125,
    blocksPerResponse: 3.1,
    meanBlockTokens: 60,
  },
  fullAttentionPeakKvTokens: 375,
};

/** The text of every cell of the table with class `cls`, row by row. */
function tableRows(html: string, cls: string): string[][] {
  const table = html.match(new RegExp(`<table class="${cls}">([\\s\\S]*?)</table>`))?.[1] ?? "";
  const body = table.match(/<tbody>([\s\S]*)<\/tbody>/)?.[1] ?? "";
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) =>
    [...m[1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => c[1]),
  );
}

/** `data-points` of every series path named `name`. */
function seriesPoints(html: string, name: string): number[] {
  const re = new RegExp(`data-series="${name.replace(/[()@%]/g, "\\$&")}" data-points="(\\d+)"`, "g");
  return [...html.matchAll(re)].map((m) => Number(m[1]));
}

describe("movingAverage (clause 3: trailing, partial windows at the start)", () => {
  it("averages the last w values, fewer at the start, with no look-ahead", () => {
    expect(movingAverage([1, 2, 3, 4, 5], 3)).toEqual([1, 1.5, 2, 3, 4]);
    expect(movingAverage([4, 0, 8], 2)).toEqual([4, 2, 4]);
  });

  it("is the identity at window 1 and the running mean when the window exceeds the series", () => {
    expect(movingAverage([3, 1, 2], 1)).toEqual([3, 1, 2]);
    expect(movingAverage([3, 1, 2], 10)).toEqual([3, 2, 2]);
    expect(movingAverage([], 5)).toEqual([]);
  });

  it("refuses a window that is not a positive whole number, as a user error", () => {
    for (const w of [0, -1, 2.5, Number.NaN]) {
      let caught: unknown;
      try {
        movingAverage([1, 2], w);
      } catch (e) {
        caught = e;
      }
      expect(isUserError(caught)).toBe(true);
    }
  });
});

describe("the RL report page", () => {
  const html = renderRlReportHtml(report());

  it("is self-contained: no script, no stylesheet link, no external src or href (clause 1)", () => {
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link/i);
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/url\(|@import/i);
  });

  it("escapes the start directory and the options (clause 1)", () => {
    expect(html).not.toContain("<script>alert");
    expect(html).toContain("runs/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;&#39;");
  });

  it("draws the seven charts: reward, validation, blocks, block length, peak KV, KL, clip fraction", () => {
    expect(html.match(/<svg /g)?.length).toBe(7);
    for (const id of ["reward", "validation", "blocks", "block-length", "kv", "kl", "clip"]) {
      expect(html).toContain(`<figure id="${id}"><svg `);
    }
    expect(html).not.toContain("no data");
  });

  it("draws the reward per step and its moving average over every train step (clauses 2-3)", () => {
    expect(seriesPoints(html, "reward per step")).toEqual([REWARDS.length]);
    expect(seriesPoints(html, `${DEFAULT_MOVING_AVERAGE_STEPS}-step moving average`)).toEqual([REWARDS.length]);
    const custom = renderRlReportHtml(report(), undefined, { movingAverageSteps: 3 });
    expect(seriesPoints(custom, "3-step moving average")).toEqual([REWARDS.length]);
  });

  it("draws pass@1 with a bar per validation, and the full-attention reference per validation (clause 4)", () => {
    expect(seriesPoints(html, "pass@1 (bars: 95% interval)")).toEqual([4 * 3]);
    expect(seriesPoints(html, "maj@4")).toEqual([3]);
    expect(seriesPoints(html, "full attention (same val responses)")).toEqual([3]);
    // Value, low end, high end, value: the segment between two validations joins their values.
    expect(intervalBarPoints([{ x: 2, y: 50, lo: 40, hi: 60 }])).toEqual([
      [2, 50],
      [2, 40],
      [2, 60],
      [2, 50],
    ]);
  });

  it("tabulates the first and last validation and their change, formatted (clause 5)", () => {
    const rows = tableRows(html, "val-table");
    expect(rows).toEqual([
      ["first", "0", "50.0%", "40.0% – 60.0%", "65.0%", "100", "300", "3.00x", "3.00", "59.0"],
      ["last", "8", "75.0%", "65.0% – 85.0%", "87.5%", "110", "300", "2.73x", "3.50", "61.3"],
      ["change", "", "+25.0 pts", "", "+22.5 pts", "+10", "", "", "+0.50", "+2.3"],
    ]);
    expect(html).toContain("<th>maj@4</th>");
  });

  it("states the block cap from the run's masking, and no cap when it is 0", () => {
    expect(html).toContain("blocks capped at 96 tokens");
    const r = report();
    const uncapped = renderRlReportHtml({ ...r, options: { ...r.options, masking: { maxBlockTokens: 0 } } });
    expect(uncapped).toContain("no block cap");
  });

  it("adds the rl compare table only when a compare result is given", () => {
    expect(html).not.toContain('class="compare-table"');
    const withCompare = renderRlReportHtml(report(), COMPARE);
    expect(tableRows(withCompare, "compare-table")).toEqual([
      ["start", "40.0%", "35.0% – 45.0%", "70.0%", "120", "3.13x", "3.00", "58.0"],
      ["RL", "66.0%", "61.0% – 71.0%", "74.0%", "125", "3.00x", "3.10", "60.0"],
    ]);
    expect(withCompare).toContain("100 problems x 8 samples at temperature 0.6");
  });

  it("renders a run with no steps yet: empty charts say so, the table says there is no validation", () => {
    const empty = renderRlReportHtml(report({ train: [], val: [] }));
    expect(empty.match(/<svg /g)?.length).toBe(7);
    expect(empty).toContain("no data");
    expect(empty).toContain("No validation recorded yet.");
    expect(empty).not.toContain('class="val-table"');
  });
});

const tmp = mkdtempSync(join(tmpdir(), "memento-rl-report-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!hasChromium)("the RL report page in headless Chromium", () => {
  it("renders without errors or requests, every chart laid out, and a screenshot", async () => {
    const out = join(tmp, "rl-report.html");
    writeFileSync(out, renderRlReportHtml(report(), COMPARE));
    const p = await openPage(pathToFileURL(out).href);
    try {
      expect(await p.page.locator("figure svg").count()).toBe(7);
      for (const box of await p.page
        .locator("figure svg")
        .evaluateAll((els) => els.map((e) => e.getBoundingClientRect()))) {
        expect(box.width).toBeGreaterThan(200);
        expect(box.height).toBeGreaterThan(100);
      }
      expect(await seriesPointCounts(p.page, "#validation")).toEqual([12, 3]);
      expect(await p.page.locator("table.val-table tbody tr").count()).toBe(3);
      expect(await p.page.locator("table.compare-table tbody tr").count()).toBe(2);
      expect(await p.page.title()).toBe("memento RL run");
      await saveScreenshot(p.page, join(tmp, "rl-report.png"), "/tmp/memento-rl-report.png");
      expect(p.problems).toEqual([]);
    } finally {
      await p.close();
    }
  }, 60_000);
});

if (!hasChromium) {
  describe("the RL report page in headless Chromium", () => {
    it.skip(noChromiumReason, () => {});
  });
}
