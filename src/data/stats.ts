/**
 * Dataset statistics of a pipeline output, per domain, like the paper's Figure 3 (OpenMementos: ~9 blocks per
 * math/code trace, 7 for science; median block 2.3K-3.8K chars; memento 509-603 chars; compression 0.16 math,
 * 0.18 code, 0.23 science).
 *
 * Per row: the top-level blocks and their mementos are read from `response` (parseResponse); when the response
 * has no blocks but the row has `sentences`/`blocks`/`block_summaries` (full schema), those are used. Lengths are
 * in characters (UTF-16 code units) of the trimmed texts.
 *   blocksPerSample  blocks per row
 *   blockChars       per block
 *   mementoChars     per memento (a block without a memento counts 0)
 *   compression      per block: memento chars / block chars (blocks of 0 chars are left out), as in Figure 3(d)
 *   judge            from `meta` (object or JSON text) when present: per memento, `judgeScores[k]` or
 *                    `mementoHistory[k].rounds[*].judgment.score`; pass rate = fraction of mementos whose final
 *                    score is >= 8 (JUDGE_PASS_SCORE), first-round pass rate = fraction whose first score is >= 8.
 * Quantiles interpolate linearly between order statistics.
 *
 * Input: a file (JSONL or Parquet), or a directory: its Parquet files when it has any, else its JSONL files, in
 * both cases without `failed.jsonl`, a build's `journal.jsonl` and hidden (temporary) files. Rows without a string `response` or with
 * `status: "failed"` are skipped and counted.
 *
 * The HTML report (`renderStatsHtml`) is one self-contained file: inline CSS and SVG, no scripts, fonts or
 * network requests.
 */
import { readdirSync, type Stats, statSync } from "node:fs";
import { extname, join } from "node:path";
import { UserError } from "../errors.js";
import { rowBlockTexts } from "../format/openmementos.js";
import { decomposeResponse, parseResponse } from "../format/response.js";
import { readRecords, type ReadOptions } from "./readers.js";
import { FAILED_FILE, parseMeta } from "./writers.js";

export const JUDGE_PASS_SCORE = 8;
const DOMAIN_ORDER = ["math", "code", "science"];

export interface Dist {
  n: number;
  mean: number;
  median: number;
  p10: number;
  p90: number;
  min: number;
  max: number;
}

export interface JudgeStats {
  /** Mementos with at least one judge score. */
  judged: number;
  passRate: number;
  firstRoundPassRate: number;
  /** Mean number of judge rounds per judged memento. */
  meanRounds: number;
}

export interface DomainStats {
  domain: string;
  count: number;
  /** Fraction of all rows. */
  share: number;
  blocksPerSample: Dist;
  blockChars: Dist;
  mementoChars: Dist;
  compression: Dist;
  judge: JudgeStats | null;
}

/** Raw per-domain values (for histograms). */
export interface DomainValues {
  blocksPerSample: number[];
  blockChars: number[];
  mementoChars: number[];
  compression: number[];
  firstScores: number[];
  finalScores: number[];
  rounds: number[];
}

export interface DatasetStats {
  files: string[];
  rows: number;
  /** Rows skipped (no response, or failed). */
  skipped: number;
  /** Per domain: math, code, science first, then the others alphabetically. */
  domains: DomainStats[];
  all: DomainStats;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function distribution(values: readonly number[]): Dist {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  return {
    n,
    mean: n ? s.reduce((a, b) => a + b, 0) / n : NaN,
    median: quantile(s, 0.5),
    p10: quantile(s, 0.1),
    p90: quantile(s, 0.9),
    min: n ? s[0] : NaN,
    max: n ? s[n - 1] : NaN,
  };
}

function emptyValues(): DomainValues {
  return {
    blocksPerSample: [],
    blockChars: [],
    mementoChars: [],
    compression: [],
    firstScores: [],
    finalScores: [],
    rounds: [],
  };
}

function judgeScoresOf(meta: Record<string, unknown> | null): number[][] | null {
  if (!meta) return null;
  if (Array.isArray(meta.judgeScores))
    return (meta.judgeScores as unknown[]).map((s) =>
      Array.isArray(s) ? s.filter((x): x is number => typeof x === "number") : [],
    );
  if (Array.isArray(meta.mementoHistory)) {
    return (meta.mementoHistory as unknown[]).map((h) => {
      const rounds = (h as { rounds?: unknown })?.rounds;
      if (!Array.isArray(rounds)) return [];
      return rounds
        .map((r) => (r as { judgment?: { score?: unknown } })?.judgment?.score)
        .filter((x): x is number => typeof x === "number");
    });
  }
  return null;
}

/** Accumulates rows; `result()` summarises. */
export class StatsAccumulator {
  readonly values = new Map<string, DomainValues>();
  rows = 0;
  skipped = 0;

  add(row: Record<string, unknown>): boolean {
    if (typeof row.response !== "string" || row.status === "failed") {
      this.skipped++;
      return false;
    }
    const domain = typeof row.domain === "string" && row.domain.trim() !== "" ? row.domain.trim() : "unknown";
    let v = this.values.get(domain);
    if (!v) {
      v = emptyValues();
      this.values.set(domain, v);
    }
    this.rows++;

    const parts = decomposeResponse(parseResponse(row.response));
    let blocks: readonly string[] = parts.blocks;
    let mementos: readonly string[] = parts.mementos;
    if (
      blocks.length === 0 &&
      Array.isArray(row.sentences) &&
      Array.isArray(row.blocks) &&
      Array.isArray(row.block_summaries)
    ) {
      blocks = rowBlockTexts({ sentences: row.sentences as string[], blocks: row.blocks as [number, number][] });
      mementos = row.block_summaries as string[];
    }
    v.blocksPerSample.push(blocks.length);
    for (let k = 0; k < blocks.length; k++) {
      const b = blocks[k].trim().length;
      const m = (mementos[k] ?? "").trim().length;
      v.blockChars.push(b);
      v.mementoChars.push(m);
      if (b > 0) v.compression.push(m / b);
    }
    const scores = judgeScoresOf(parseMeta(row.meta) as Record<string, unknown> | null);
    if (scores) {
      for (const s of scores) {
        if (s.length === 0) continue;
        v.firstScores.push(s[0]);
        v.finalScores.push(s[s.length - 1]);
        v.rounds.push(s.length);
      }
    }
    return true;
  }

  result(files: string[] = []): DatasetStats {
    const names = [...this.values.keys()].sort((a, b) => {
      const ia = DOMAIN_ORDER.indexOf(a);
      const ib = DOMAIN_ORDER.indexOf(b);
      if (ia !== -1 || ib !== -1) return (ia === -1 ? 99 : ia) - (ib === -1 ? 99 : ib);
      return a < b ? -1 : a > b ? 1 : 0;
    });
    const all = emptyValues();
    for (const v of this.values.values())
      for (const k of Object.keys(all) as (keyof DomainValues)[]) for (const x of v[k]) all[k].push(x);
    return {
      files,
      rows: this.rows,
      skipped: this.skipped,
      domains: names.map((d) => summarise(d, this.values.get(d)!, this.rows)),
      all: summarise("all", all, this.rows),
    };
  }
}

function summarise(domain: string, v: DomainValues, total: number): DomainStats {
  const judged = v.finalScores.length;
  return {
    domain,
    count: v.blocksPerSample.length,
    share: total ? v.blocksPerSample.length / total : 0,
    blocksPerSample: distribution(v.blocksPerSample),
    blockChars: distribution(v.blockChars),
    mementoChars: distribution(v.mementoChars),
    compression: distribution(v.compression),
    judge: judged
      ? {
          judged,
          passRate: v.finalScores.filter((s) => s >= JUDGE_PASS_SCORE).length / judged,
          firstRoundPassRate: v.firstScores.filter((s) => s >= JUDGE_PASS_SCORE).length / judged,
          meanRounds: v.rounds.reduce((a, b) => a + b, 0) / judged,
        }
      : null,
  };
}

/** Statistics of in-memory rows. */
export function computeStats(rows: Iterable<Record<string, unknown>>): {
  stats: DatasetStats;
  values: Map<string, DomainValues>;
} {
  const acc = new StatsAccumulator();
  for (const r of rows) acc.add(r);
  return { stats: acc.result(), values: acc.values };
}

/** The output files `collectStats` reads for a path (see the module comment). */
export function statsInputFiles(path: string): string[] {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: cannot read${code ? ` (${code})` : ""}`);
  }
  if (!st.isDirectory()) return [path];
  const names = readdirSync(path)
    // The build's journal holds the same records as its outputs (and failures): never count it.
    .filter((n) => !n.startsWith(".") && n !== FAILED_FILE && n !== "journal.jsonl")
    .filter((n) => statSync(join(path, n)).isFile())
    .sort();
  const parquet = names.filter((n) => extname(n).toLowerCase() === ".parquet");
  const chosen = parquet.length > 0 ? parquet : names.filter((n) => extname(n).toLowerCase() === ".jsonl");
  if (chosen.length === 0) throw new UserError(`${path}: no .parquet or .jsonl output files`);
  return chosen.map((n) => join(path, n));
}

/** Reads the output at `path` (file or directory) and computes its statistics. */
export async function collectStats(
  path: string,
  opts: ReadOptions = {},
): Promise<{ stats: DatasetStats; values: Map<string, DomainValues> }> {
  const files = statsInputFiles(path);
  const acc = new StatsAccumulator();
  for (const f of files) for await (const { record } of readRecords(f, opts)) acc.add(record);
  return { stats: acc.result(files), values: acc.values };
}

// ---------------------------------------------------------------------------------------------------------------
// Text report
// ---------------------------------------------------------------------------------------------------------------

const fmtInt = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "-");
const fmtNum = (x: number, digits = 1): string =>
  Number.isFinite(x) ? (Number.isInteger(x) ? String(x) : x.toFixed(digits)) : "-";
const fmtPct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "-");

function distCell(d: Dist, f: (x: number) => string): string {
  return d.n ? `${f(d.median)} [${f(d.p10)}, ${f(d.p90)}]` : "-";
}

/** A fixed-width table, one line per domain and a total line: medians with [p10, p90]. */
export function formatStatsTable(stats: DatasetStats): string[] {
  const header = [
    "domain",
    "samples",
    "share",
    "blocks/sample",
    "block chars",
    "memento chars",
    "compression",
    "judge pass",
    "1st-round pass",
  ];
  const row = (d: DomainStats): string[] => [
    d.domain,
    fmtInt(d.count),
    fmtPct(d.share),
    distCell(d.blocksPerSample, (x) => fmtNum(x)),
    distCell(d.blockChars, fmtInt),
    distCell(d.mementoChars, fmtInt),
    distCell(d.compression, (x) => x.toFixed(3)),
    d.judge ? fmtPct(d.judge.passRate) : "-",
    d.judge ? fmtPct(d.judge.firstRoundPassRate) : "-",
  ];
  const table = [header, ...stats.domains.map(row), row(stats.all)];
  const widths = header.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const lines = table.map((r) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ")
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  const notes = [
    `${fmtInt(stats.rows)} rows from ${stats.files.length} file(s); medians with [p10, p90]; compression = memento chars / block chars per block`,
  ];
  if (stats.skipped) notes.push(`${fmtInt(stats.skipped)} rows skipped (no response, or failed)`);
  return [...lines, ...notes];
}

// ---------------------------------------------------------------------------------------------------------------
// HTML with inline SVG (Figure 3 style)
// ---------------------------------------------------------------------------------------------------------------

const PALETTE: Record<string, string> = { math: "#1f77b4", code: "#ff7f0e", science: "#2ca02c" };
const EXTRA_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"];

function colorOf(domain: string, i: number): string {
  return PALETTE[domain] ?? EXTRA_COLORS[i % EXTRA_COLORS.length];
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function niceCeil(x: number): number {
  if (!(x > 0)) return 1;
  const step = niceStep(x, 5);
  return Math.ceil(x / step) * step;
}

interface Panel {
  id: string;
  title: string;
  xLabel: string;
  key: keyof DomainValues;
  integer?: boolean;
  format: (x: number) => string;
}

const PANELS: Panel[] = [
  {
    id: "a",
    title: "(a) Blocks per sample",
    xLabel: "Blocks per sample",
    key: "blocksPerSample",
    integer: true,
    format: (x) => String(Math.round(x)),
  },
  { id: "b", title: "(b) Block size", xLabel: "Block size (chars)", key: "blockChars", format: (x) => fmtInt(x) },
  { id: "c", title: "(c) Memento size", xLabel: "Memento size (chars)", key: "mementoChars", format: (x) => fmtInt(x) },
  {
    id: "d",
    title: "(d) Compression ratio",
    xLabel: "Compression ratio (memento / block)",
    key: "compression",
    format: (x) => fmtNum(x, 2),
  },
];

const W = 460;
const H = 290;
const M = { left: 52, right: 14, top: 30, bottom: 46 };

function histogramSvg(panel: Panel, domains: { name: string; color: string; values: number[] }[]): string {
  const all = domains.flatMap((d) => d.values);
  const sorted = [...all].sort((a, b) => a - b);
  const out: string[] = [];
  out.push(
    `<svg class="panel" id="panel-${panel.id}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(panel.title)}">`,
  );
  out.push(`<text x="${W / 2}" y="18" text-anchor="middle" class="title">${escapeHtml(panel.title)}</text>`);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  if (sorted.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="empty">no data</text></svg>`);
    return out.join("");
  }
  // Range: 0 .. a nice ceiling of the 99th percentile; larger values are counted in the last bin.
  let lo = 0;
  let hi: number;
  let bins: number;
  if (panel.integer) {
    lo = Math.max(0, Math.floor(sorted[0]) - 0.5);
    hi = Math.ceil(quantile(sorted, 0.99)) + 0.5;
    if (hi - lo < 2) hi = lo + 2;
    const w = Math.max(1, Math.ceil((hi - lo) / 60));
    bins = Math.ceil((hi - lo) / w);
    hi = lo + bins * w;
  } else {
    hi = niceCeil(quantile(sorted, 0.99));
    bins = 30;
  }
  const width = (hi - lo) / bins;
  const hists = domains.map((d) => {
    const h = new Array<number>(bins).fill(0);
    for (const x of d.values) h[Math.min(bins - 1, Math.max(0, Math.floor((x - lo) / width)))]++;
    return h.map((c) => (d.values.length ? c / d.values.length : 0));
  });
  const ymax = Math.max(...hists.flat(), 1e-9);
  const yTop = niceCeil(ymax);
  const sx = (x: number): number => M.left + ((x - lo) / (hi - lo)) * pw;
  const sy = (y: number): number => M.top + ph - (y / yTop) * ph;
  const r = (x: number): string => x.toFixed(1);

  // Axes and ticks.
  out.push(
    `<g class="axis"><line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}"/><line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}"/>`,
  );
  const xStep = panel.integer
    ? ([1, 2, 5, 10, 20, 50, 100, 200, 500].find((st) => st >= (hi - lo) / 6) ?? 1000)
    : niceStep(hi - lo, 5);
  for (let t = Math.ceil(lo / xStep) * xStep; t <= hi + 1e-9; t += xStep) {
    out.push(
      `<line x1="${r(sx(t))}" y1="${M.top + ph}" x2="${r(sx(t))}" y2="${M.top + ph + 4}"/><text x="${r(sx(t))}" y="${M.top + ph + 16}" text-anchor="middle">${escapeHtml(panel.format(t))}</text>`,
    );
  }
  const yStep = niceStep(yTop, 4);
  for (let t = 0; t <= yTop + 1e-12; t += yStep) {
    out.push(
      `<line x1="${M.left - 4}" y1="${r(sy(t))}" x2="${M.left}" y2="${r(sy(t))}"/><text x="${M.left - 6}" y="${r(sy(t) + 4)}" text-anchor="end">${fmtNum(t, yStep < 0.01 ? 3 : 2)}</text>`,
    );
  }
  out.push(`</g>`);
  out.push(
    `<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle" class="label">${escapeHtml(panel.xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(13 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" class="label">fraction</text>`,
  );

  // Bars (semi-transparent, overlaid), step outlines and median lines per domain.
  domains.forEach((d, i) => {
    const h = hists[i];
    out.push(`<g class="domain" data-domain="${escapeHtml(d.name)}">`);
    for (let b = 0; b < bins; b++) {
      if (h[b] === 0) continue;
      const x0 = sx(lo + b * width);
      const x1 = sx(lo + (b + 1) * width);
      out.push(
        `<rect x="${r(x0)}" y="${r(sy(h[b]))}" width="${r(Math.max(0.5, x1 - x0))}" height="${r(sy(0) - sy(h[b]))}" fill="${d.color}" fill-opacity="0.3"/>`,
      );
    }
    let path = `M${r(sx(lo))} ${r(sy(0))}`;
    for (let b = 0; b < bins; b++)
      path += ` L${r(sx(lo + b * width))} ${r(sy(h[b]))} L${r(sx(lo + (b + 1) * width))} ${r(sy(h[b]))}`;
    path += ` L${r(sx(hi))} ${r(sy(0))}`;
    out.push(`<path d="${path}" fill="none" stroke="${d.color}" stroke-width="1.5"/>`);
    if (d.values.length) {
      const med = quantile(
        [...d.values].sort((a, b) => a - b),
        0.5,
      );
      const mx = sx(Math.min(hi, Math.max(lo, med)));
      out.push(
        `<line class="median" x1="${r(mx)}" y1="${M.top}" x2="${r(mx)}" y2="${M.top + ph}" stroke="${d.color}" stroke-dasharray="4 3"/>`,
      );
    }
    out.push(`</g>`);
  });

  // Legend: domain (samples) and median.
  domains.forEach((d, i) => {
    const y = M.top + 8 + i * 15;
    const med = d.values.length
      ? panel.format(
          quantile(
            [...d.values].sort((a, b) => a - b),
            0.5,
          ),
        )
      : "-";
    out.push(
      `<rect x="${M.left + pw - 180}" y="${y - 8}" width="10" height="10" fill="${d.color}" fill-opacity="0.6"/><text x="${M.left + pw - 165}" y="${y + 1}" class="legend">${escapeHtml(d.name)}: median ${escapeHtml(med)}</text>`,
    );
  });
  out.push(`</svg>`);
  return out.join("");
}

export interface HtmlOptions {
  title?: string;
}

/** A self-contained HTML report: the summary table and four Figure-3-style histogram panels. */
export function renderStatsHtml(
  stats: DatasetStats,
  values: Map<string, DomainValues>,
  options: HtmlOptions = {},
): string {
  const title = options.title ?? "OpenMementos-style dataset statistics";
  const domains = stats.domains.map((d, i) => ({
    name: d.domain,
    count: d.count,
    color: colorOf(d.domain, i),
    v: values.get(d.domain) ?? emptyValues(),
  }));
  const panels = PANELS.map((p) =>
    histogramSvg(
      p,
      domains.map((d) => ({ name: `${d.name} (${fmtInt(d.count)})`, color: d.color, values: d.v[p.key] })),
    ),
  );
  const cell = (d: Dist, f: (x: number) => string): string =>
    d.n ? `${f(d.median)} <span class="q">[${f(d.p10)}, ${f(d.p90)}]</span>` : "-";
  const tr = (d: DomainStats): string =>
    `<tr><td>${escapeHtml(d.domain)}</td><td>${fmtInt(d.count)}</td><td>${fmtPct(d.share)}</td><td>${cell(d.blocksPerSample, (x) => fmtNum(x))}</td>` +
    `<td>${cell(d.blockChars, fmtInt)}</td><td>${cell(d.mementoChars, fmtInt)}</td><td>${cell(d.compression, (x) => x.toFixed(3))}</td>` +
    `<td>${d.judge ? fmtPct(d.judge.passRate) : "-"}</td><td>${d.judge ? fmtPct(d.judge.firstRoundPassRate) : "-"}</td></tr>`;
  const files = stats.files.map((f) => `<li><code>${escapeHtml(f)}</code></li>`).join("");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: 600; border-top: 2px solid #999; }
.q { color: #777; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(2, ${W}px); gap: 16px; }
svg.panel { background: #fff; border: 1px solid #eee; }
svg .title { font-size: 14px; font-weight: 600; }
svg .label { font-size: 12px; }
svg .legend { font-size: 11px; }
svg .axis line { stroke: #444; stroke-width: 1; }
svg .axis text { font-size: 10px; fill: #444; }
svg .empty { font-size: 13px; fill: #999; }
p.note { color: #555; font-size: 13px; max-width: 960px; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="note">${fmtInt(stats.rows)} samples${stats.skipped ? `, ${fmtInt(stats.skipped)} rows skipped (no response or failed)` : ""}. Medians with [p10, p90]. Lengths in characters; compression = memento chars / block chars, per block. Judge pass = final judge score &ge; ${JUDGE_PASS_SCORE}/10.</p>
<table>
<thead><tr><th>domain</th><th>samples</th><th>share</th><th>blocks/sample</th><th>block chars</th><th>memento chars</th><th>compression</th><th>judge pass</th><th>1st-round pass</th></tr></thead>
<tbody>
${stats.domains.map(tr).join("\n")}
${tr(stats.all).replace("<tr>", '<tr class="total">')}
</tbody>
</table>
<div class="grid">
${panels.join("\n")}
</div>
<p class="note">Histograms are normalised per domain (each domain's bars sum to 1); dashed lines mark medians. The x range ends at a round value above the 99th percentile; larger values are counted in the last bin.</p>
<h2>Input</h2>
<ul>${files}</ul>
</body>
</html>
`;
}
