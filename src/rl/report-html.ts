/**
 * The self-contained HTML page of an RL run (`report.json` of `memento train rl`), laid out like the paper's
 * Figure 7: train reward per step with its moving average, validation pass@1 with its 95% interval, then what
 * the responses cost (blocks per response, block length, peak KV against full attention), the optimizer's KL
 * and clip fraction, a table of the first and last validation and, when given, the `rl compare` result.
 * Owns presentation only; every number comes from the `RlReport` (and `RlCompare`).
 *
 * 1. No script and no external resource: inline CSS and inline SVG (src/util/charts.ts); every string from the
 *    report is escaped, the start directory and the options included.
 * 2. The x axis of every chart over steps is the number of updates applied before the step's rollouts (train
 *    step k and validation at step k see the same weights), 0 to `report.steps`, the same in every panel.
 * 3. The moving average is trailing: point i averages steps max(0, i - w + 1)..i, so the first w - 1 points
 *    average fewer steps (no padding, no look-ahead). The paper draws a 25-step average over 400 steps; our
 *    default window is `DEFAULT_MOVING_AVERAGE_STEPS`.
 * 4. The 95% interval is drawn as a vertical bar at each validation step. The full-attention reference of the
 *    peak KV panel is the validation responses' own (prompt + completion - 1 cells, rl/evaluate.ts clause 3);
 *    train steps record no such number, so none is drawn for them.
 * 5. Percentages with one decimal, KV and block length in tokens, blocks per response with two decimals.
 */
import type { RlCompare, SideSummary as RlCompareSide } from "./compare.js";
import { UserError } from "../errors.js";
import { escapeHtml, formatNumber, htmlTable, lineChart, type Cell, type Series } from "../util/charts.js";
import type { RlReport } from "./train-rl.js";

/**
 * Steps in the train-reward moving average (clause 3). The paper: 25 of 400 steps; our default run has 40 steps
 * of 8 prompts, where 5 steps smooth the per-step noise and still show the trend.
 */
export const DEFAULT_MOVING_AVERAGE_STEPS = 5;

/** `memento rl compare --json`'s types, defined once in compare.ts. */
export type { RlCompare, SideSummary as RlCompareSide } from "./compare.js";

export interface RlReportHtmlOptions {
  /** Train-reward moving-average window in steps (default `DEFAULT_MOVING_AVERAGE_STEPS`). */
  movingAverageSteps?: number;
}

type ValRow = RlReport["val"][number];
type TrainRow = RlReport["train"][number];
type Point = readonly [number, number];

const COLOR = Object.freeze({
  train: "#93c5fd",
  trainMean: "#1d4ed8",
  val: "#dc2626",
  maj: "#9333ea",
  full: "#6b7280",
  kl: "#0891b2",
  clip: "#ea580c",
});

/** Trailing moving average of `xs` over `window` values (clause 3); the output has the length of `xs`. */
export function movingAverage(xs: readonly number[], window: number): number[] {
  if (!Number.isInteger(window) || window < 1) {
    throw new UserError(`moving-average window must be a positive whole number of steps, got ${window}`);
  }
  return xs.map((_, i) => {
    const from = Math.max(0, i - window + 1);
    let sum = 0;
    for (let j = from; j <= i; j++) sum += xs[j];
    return sum / (i - from + 1);
  });
}

/**
 * One path through every validation point with its interval as a vertical bar (clause 4): at each step it
 * arrives at the value, goes down to the low end, up to the high end and back to the value, then on to the
 * next value, so the connecting segments are the pass@1 line itself and one legend entry covers line and bars.
 */
export function intervalBarPoints(rows: readonly { x: number; y: number; lo: number; hi: number }[]): Point[] {
  const out: Point[] = [];
  for (const r of rows) out.push([r.x, r.y], [r.x, r.lo], [r.x, r.hi], [r.x, r.y]);
  return out;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const signed = (x: number, digits: number) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;
const signedPoints = (x: number) => `${signed(100 * x, 1)} pts`;
const tokens = (x: number) => x.toFixed(0);
const kvRatio = (peak: number, full: number) => (peak > 0 ? `${(full / peak).toFixed(2)}x` : "–");
const optionalPct = (x: number | null) => (x === null ? "–" : pct(x));

function figure(svg: string, caption: string, id: string): string {
  return `<figure id="${id}">${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

/** The x axis shared by every chart over steps (clause 2). */
function stepAxis(r: RlReport) {
  const last = Math.max(r.steps, ...r.train.map((t) => t.step + 1), ...r.val.map((v) => v.step));
  // Steps are whole numbers: a short run's half-step ticks stay unlabelled.
  return {
    label: "RL step",
    min: 0,
    max: Math.max(1, last),
    format: (v: number) => (Number.isInteger(v) ? String(v) : ""),
  };
}

// Three panels fit side by side in the page's 1400-pixel column.
const CHART = { width: 420, height: 280 } as const;
const BLOCK_LENGTH_CAPTION = "mean tokens per block, over the responses that have blocks";

function rewardPanel(r: RlReport, window: number): string {
  const steps = r.train.map((t) => t.step);
  const avg = movingAverage(
    r.train.map((t) => t.reward),
    window,
  );
  const series: Series[] = [
    { name: "reward per step", points: r.train.map((t) => [t.step, t.reward]), color: COLOR.train, strokeWidth: 1.2 },
    { name: `${window}-step moving average`, points: avg.map((a, i) => [steps[i], a]), color: COLOR.trainMean },
  ];
  const svg = lineChart(series, {
    ...CHART,
    title: "Train reward",
    x: stepAxis(r),
    y: { label: "mean reward", min: 0 },
    legend: true,
  });
  return figure(svg, `mean reward of each step's rollouts (temperature ${optionText(r, "temperature")})`, "reward");
}

function validationPanel(r: RlReport): string {
  const k = r.val[0]?.k;
  const series: Series[] = [
    {
      name: "pass@1 (bars: 95% interval)",
      points: intervalBarPoints(
        r.val.map((v) => ({ x: v.step, y: 100 * v.passAt1, lo: 100 * v.ci95[0], hi: 100 * v.ci95[1] })),
      ),
      color: COLOR.val,
      // Dots at the value and at both ends of its bar.
      markers: true,
    },
    {
      name: `maj@${k ?? "k"}`,
      points: r.val.filter((v) => v.majAtK !== null).map((v) => [v.step, 100 * (v.majAtK ?? 0)]),
      color: COLOR.maj,
      dashed: true,
      markers: true,
    },
  ];
  const svg = lineChart(series, {
    ...CHART,
    title: "Validation accuracy",
    x: stepAxis(r),
    y: { label: "held-out accuracy (%)", min: 0, max: 100 },
    legend: true,
  });
  const v = r.val[0];
  const what = v
    ? `${v.problems} held-out problems x ${v.samples} samples at temperature ${optionText(r, "valTemperature")}`
    : "no validation recorded";
  return figure(svg, `${what}; every ${optionText(r, "valEvery")} steps and at the end`, "validation");
}

/** Train per step (thin line) and validation (markers) of one quantity, with optional extra series. */
function stepPanel(
  r: RlReport,
  id: string,
  title: string,
  yLabel: string,
  caption: string,
  pick: (m: TrainRow | ValRow) => number,
  extra: Series[] = [],
): string {
  const series: Series[] = [
    { name: "train rollouts", points: r.train.map((t) => [t.step, pick(t)]), color: COLOR.train, strokeWidth: 1.4 },
    { name: "validation", points: r.val.map((v) => [v.step, pick(v)]), color: COLOR.val, markers: true },
    ...extra,
  ];
  const svg = lineChart(series, { ...CHART, title, x: stepAxis(r), y: { label: yLabel, min: 0 }, legend: true });
  return figure(svg, caption, id);
}

function kvPanel(r: RlReport): string {
  const full: Series = {
    name: "full attention (same val responses)",
    points: r.val.map((v) => [v.step, v.fullAttentionPeakKvTokens]),
    color: COLOR.full,
    dashed: true,
  };
  const caption = "most KV cells held at once with blocks evicted, mean per response; dashed: without eviction";
  return stepPanel(r, "kv", "Peak KV", "peak KV (tokens)", caption, (m) => m.peakKvTokens, [full]);
}

/** KL is tiny near the reference (1e-4 and below): exponents there, plain numbers from 0.01 up. */
function klTick(v: number): string {
  if (v === 0) return "0";
  return Math.abs(v) >= 0.01 ? formatNumber(v) : v.toExponential(1);
}

function optimizerPanels(r: RlReport): string {
  const small = { width: 420, height: 220 } as const;
  const kl = lineChart([{ name: "KL", points: r.train.map((t) => [t.step, t.kl]), color: COLOR.kl }], {
    ...small,
    title: "KL to the start policy (k3, per token)",
    x: stepAxis(r),
    y: { label: "KL", min: 0, format: klTick },
    legend: false,
  });
  const clip = lineChart(
    [{ name: "clip fraction", points: r.train.map((t) => [t.step, 100 * t.clipFraction]), color: COLOR.clip }],
    {
      ...small,
      title: "Clipped importance ratios",
      x: stepAxis(r),
      y: { label: "tokens clipped (%)", min: 0 },
      legend: false,
    },
  );
  return (
    figure(kl, "mean over the step's trained tokens", "kl") +
    figure(clip, "fraction of trained tokens whose ratio hit the CISPO clip", "clip")
  );
}

function validationRow(label: string, v: ValRow): Cell[] {
  return [
    label,
    v.step,
    pct(v.passAt1),
    `${pct(v.ci95[0])} – ${pct(v.ci95[1])}`,
    optionalPct(v.majAtK),
    tokens(v.peakKvTokens),
    tokens(v.fullAttentionPeakKvTokens),
    kvRatio(v.peakKvTokens, v.fullAttentionPeakKvTokens),
    v.blocksPerResponse.toFixed(2),
    v.meanBlockTokens.toFixed(1),
  ];
}

function validationTable(r: RlReport): string {
  if (r.val.length === 0) return `<p class="note">No validation recorded yet.</p>`;
  const first = r.val[0];
  const last = r.val[r.val.length - 1];
  const head: Cell[] = [
    "",
    "step",
    "pass@1",
    "95% interval",
    `maj@${first.k}`,
    "peak KV",
    "full attention",
    "KV saving",
    "blocks / response",
    "block length",
  ];
  const rows: Cell[][] = [validationRow("first", first)];
  if (r.val.length > 1) {
    rows.push(validationRow("last", last));
    const majDelta = first.majAtK !== null && last.majAtK !== null ? signedPoints(last.majAtK - first.majAtK) : "–";
    rows.push([
      { text: "change", className: "delta" },
      "",
      signedPoints(last.passAt1 - first.passAt1),
      "",
      majDelta,
      signed(last.peakKvTokens - first.peakKvTokens, 0),
      "",
      "",
      signed(last.blocksPerResponse - first.blocksPerResponse, 2),
      signed(last.meanBlockTokens - first.meanBlockTokens, 1),
    ]);
  }
  return htmlTable(head, rows, {
    className: "val-table",
    caption: "First and last validation (KV and block length in tokens; saving = full attention / peak)",
  });
}

function compareRow(label: string, s: RlCompareSide, full: number): Cell[] {
  return [
    label,
    pct(s.passAt1),
    `${pct(s.ci95[0])} – ${pct(s.ci95[1])}`,
    optionalPct(s.majAt8),
    tokens(s.peakKvTokens),
    kvRatio(s.peakKvTokens, full),
    s.blocksPerResponse.toFixed(2),
    s.meanBlockTokens.toFixed(1),
  ];
}

function compareTable(c: RlCompare): string {
  const head: Cell[] = [
    "policy",
    "pass@1",
    "95% interval",
    "maj@8",
    "peak KV",
    "KV saving",
    "blocks / response",
    "block length",
  ];
  const rows = [
    compareRow("start", c.start, c.fullAttentionPeakKvTokens),
    compareRow("RL", c.rl, c.fullAttentionPeakKvTokens),
  ];
  return htmlTable(head, rows, {
    className: "compare-table",
    caption:
      `rl compare: ${c.problems} problems x ${c.samples} samples at temperature ${c.temperature}, same seeds; ` +
      `full attention peak KV ${tokens(c.fullAttentionPeakKvTokens)} tokens`,
  });
}

/** An option's value as text (the report's options are untyped JSON). */
function optionText(r: RlReport, key: string): string {
  const v = r.options[key];
  if (v === undefined) return "?";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function optionsTable(r: RlReport): string {
  const rows: Cell[][] = Object.keys(r.options)
    .sort()
    .map((key) => [key, optionText(r, key)]);
  const table = htmlTable(["option", "value"], rows, { className: "options" });
  return `<details><summary>Run options</summary>${table}</details>`;
}

function header(r: RlReport): string {
  const trained = r.train.length === 0 ? 0 : Math.max(...r.train.map((t) => t.step)) + 1;
  const took = r.seconds < 120 ? `${r.seconds.toFixed(0)} s` : `${(r.seconds / 60).toFixed(1)} min`;
  // The run's masking over Stage 2's (train-rl.ts); maxBlockTokens 0 or absent: the model ends its blocks.
  const capTokens = (r.options.masking as { maxBlockTokens?: number } | undefined)?.maxBlockTokens ?? 0;
  const cap = capTokens > 0 ? `blocks capped at ${capTokens} tokens` : "no block cap";
  return (
    `<h1>RL run: CISPO with block-masked rollouts (Figure 7 at toy scale)</h1>` +
    `<p class="note">Start checkpoint <code>${escapeHtml(r.startDir)}</code>; ${trained} of ${r.steps} steps in ` +
    `${took}; ${escapeHtml(optionText(r, "prompts"))} prompts x ${escapeHtml(optionText(r, "group"))} ` +
    `samples per step, lr ${escapeHtml(optionText(r, "lr"))}, ${escapeHtml(cap)}.</p>`
  );
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f9fafb;margin:0;padding:24px 32px 48px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #e5e7eb}
.note{color:#4b5563;font-size:12.5px;margin:4px 0 10px}
table{border-collapse:collapse;background:#fff;margin:8px 0 16px;font-variant-numeric:tabular-nums}
caption{text-align:left;font-size:12.5px;color:#4b5563;padding:2px 0 6px}
th,td{border:1px solid #e5e7eb;padding:5px 9px;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600;font-size:12.5px}
td:first-child,th:first-child{text-align:left}
td.delta{font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:6px}
figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#4b5563;padding:2px 4px 0;max-width:430px}
summary{cursor:pointer;color:#374151}
`;

/** The page (clauses 1-5). */
export function renderRlReportHtml(report: RlReport, compare?: RlCompare, opts: RlReportHtmlOptions = {}): string {
  const window = opts.movingAverageSteps ?? DEFAULT_MOVING_AVERAGE_STEPS;
  const r = report;
  const body = [
    header(r),
    `<h2>Accuracy</h2><div class="charts">${rewardPanel(r, window)}${validationPanel(r)}</div>`,
    validationTable(r),
    compare ? `<h2>Start vs RL (rl compare)</h2>${compareTable(compare)}` : "",
    `<h2>Cost of the responses</h2><div class="charts">` +
      stepPanel(r, "blocks", "Blocks per response", "blocks", "mean per response", (m) => m.blocksPerResponse) +
      stepPanel(r, "block-length", "Block length", "tokens per block", BLOCK_LENGTH_CAPTION, (m) => m.meanBlockTokens) +
      kvPanel(r) +
      `</div>`,
    `<h2>Optimizer</h2><div class="charts">${optimizerPanels(r)}</div>`,
    `<p class="note">Train: each step's rollouts at the rollout temperature, reward from the task's checker; the ` +
      `moving average is trailing (${window} steps). Validation: pass@1 is the mean over problems of the fraction ` +
      `of correct samples, its 95% interval 1.96 standard errors over problems; maj@k and the KV numbers come from ` +
      `the same samples. Peak KV is the mean per response of the most KV cells held at once with blocks evicted; ` +
      `full attention's is prompt + completion - 1 for the same validation responses.</p>`,
    optionsTable(r),
  ].join("\n");
  const head = `<head><meta charset="utf-8"><title>memento RL run</title><style>${CSS}</style></head>`;
  return `<!doctype html>\n<html lang="en">${head}<body>\n${body}\n</body></html>\n`;
}
