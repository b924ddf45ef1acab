/**
 * The self-contained HTML page of `memento analyze probe`: the three panels of the paper's Figure 13 as inline
 * SVG (src/util/charts.ts), each with a table of the accuracies, their 95% intervals and chance beside them.
 * Owns only rendering; every number comes from the ProbeReport.
 *
 * 1. Percentages everywhere; chance is drawn as a dashed line in every panel and printed in every table row.
 * 2. No script, no external resource: the page opens from disk.
 */
import { escapeHtml, htmlTable, lineChart, type Cell } from "../util/charts.js";
import type { Accuracy, ProbeReport } from "./probe.js";

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f9fafb;margin:0;padding:24px 32px 48px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #e5e7eb}
.note{color:#4b5563;font-size:12.5px;margin:4px 0 10px}
table{border-collapse:collapse;background:#fff;margin:8px 0 16px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #e5e7eb;padding:5px 9px;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600;font-size:12.5px}
td:first-child,th:first-child{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:6px}
figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#4b5563;padding:2px 4px 0}
`;

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const ci = (a: Pick<Accuracy, "ci95">) => `${pct(a.ci95[0])} – ${pct(a.ci95[1])}`;

function figure(svg: string, caption: string): string {
  return `<figure>${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

function chanceSeries(chance: number, xs: readonly number[]) {
  return { name: "chance", points: xs.map((x) => [x, 100 * chance] as const), dashed: true, color: "#9ca3af" };
}

function layerPanel(r: ProbeReport): string {
  const layers = r.direct.byLayer.map((a) => a.layer);
  const series = (["direct", "masked", "causal"] as const).map((name) => ({
    name: name === "causal" ? "causal ctrl" : name,
    points: r[name].byLayer.map((a) => [a.layer, 100 * a.accuracy] as const),
    markers: true,
  }));
  const svg = lineChart([...series, chanceSeries(r.chance, layers)], {
    title: "Probe accuracy by layer",
    width: 460,
    height: 300,
    x: { label: "layer", min: 1, max: layers.length, format: (v) => (Number.isInteger(v) ? String(v) : "") },
    y: { label: "probe accuracy (%)", min: 0, max: 100 },
    legend: true,
  });
  const rows: Cell[][] = [];
  for (const name of ["direct", "masked", "causal"] as const) {
    for (const a of r[name].byLayer) {
      rows.push([name, a.layer, pct(a.accuracy), ci(a), pct(r.chance), `${a.correct}/${a.total}`]);
    }
  }
  const table = htmlTable(["condition", "layer", "accuracy", "95% CI", "chance", "digits right"], rows);
  return (
    figure(svg, `memento of block ${r.direct.block} (direct), ${r.masked.block} (masked), ${r.causal.block} (causal)`) +
    table
  );
}

function distancePanel(r: ProbeReport): string {
  const xs = r.maskedByDistance.map((a) => a.distance);
  const svg = lineChart(
    [
      {
        name: "last layer",
        points: r.maskedByDistance.map((a) => [a.distance, 100 * a.accuracy] as const),
        markers: true,
      },
      chanceSeries(r.chance, xs),
    ],
    {
      title: "Masked accuracy by distance",
      width: 460,
      height: 300,
      x: { label: "distance from the target block (blocks)", format: (v) => (Number.isInteger(v) ? String(v) : "") },
      y: { label: "masked probe accuracy (%)", min: 0 },
      legend: true,
    },
  );
  const rows: Cell[][] = r.maskedByDistance.map((a) => [
    `+${a.distance}`,
    a.block,
    pct(a.accuracy),
    ci(a),
    pct(r.chance),
    (a.accuracy / r.chance).toFixed(2),
  ]);
  const table = htmlTable(["distance", "memento of block", "accuracy", "95% CI", "chance", "x chance"], rows);
  return figure(svg, "memento T+d probed at the last layer") + table;
}

function checkpointPanel(r: ProbeReport): string {
  const steps = r.maskedByCheckpoint.map((a) => a.step);
  const svg = lineChart(
    [
      {
        name: "masked probe",
        points: r.maskedByCheckpoint.map((a) => [a.step, 100 * a.accuracy] as const),
        markers: true,
      },
      {
        name: "task accuracy",
        points: r.maskedByCheckpoint.map((a) => [a.step, 100 * a.taskAccuracy] as const),
        markers: true,
      },
      chanceSeries(r.chance, steps),
    ],
    {
      title: "Masked accuracy across training",
      width: 460,
      height: 300,
      x: { label: "training step" },
      y: { label: "accuracy (%)", min: 0, max: 100 },
      legend: true,
    },
  );
  const rows: Cell[][] = r.maskedByCheckpoint.map((a) => [
    a.step,
    pct(a.accuracy),
    ci(a),
    pct(r.chance),
    pct(a.taskAccuracy),
    `${pct(a.taskCi95[0])} – ${pct(a.taskCi95[1])}`,
  ]);
  const table = htmlTable(["step", "masked", "95% CI", "chance", "task accuracy", "task 95% CI"], rows);
  return figure(svg, "masked memento, last layer, per kept checkpoint; task = running sums right") + table;
}

/** The page for a report (clauses 1-2). */
export function renderProbePage(r: ProbeReport): string {
  const m = r.model;
  const head =
    `<h1>KV probing of the probe-task model (Figure 13 at toy scale)</h1>` +
    `<p class="note">Model: ${m.layers} layers, d=${m.hidden}, step ${m.steps} (${escapeHtml(m.dir)}). ` +
    `Passcode injected as block ${r.targetBlock}'s five digits; probes (MLP ${escapeHtml(r.probe.hidden.join("x") || "linear")}) ` +
    `on ${escapeHtml(r.probe.features)}; ${r.masked.trainSamples} training and ${r.masked.samples} test sequences, ` +
    `label-unique split; accuracy over the 5 digits, chance ${pct(r.chance)}, 95% Wilson intervals.</p>`;
  const body =
    `<h2>By layer</h2><div class="charts">${layerPanel(r)}</div>` +
    `<h2>By distance</h2><div class="charts">${distancePanel(r)}</div>` +
    `<h2>Across training</h2><div class="charts">${checkpointPanel(r)}</div>`;
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>memento analyze probe</title><style>${CSS}</style></head><body>\n${head}\n${body}\n</body></html>\n`;
}
