/**
 * Dependency-free SVG chart builders for the evaluation report and the trace viewer.
 *
 * Every builder returns a self-contained `<svg>` string (inline styles only, no scripts, no external
 * references) and is deterministic: the same input gives the same bytes (fixed palette, fixed number
 * formatting, no ids drawn from counters or clocks). Text is XML-escaped.
 *
 * Data series are drawn as `<path class="series" data-series=NAME data-points=N>` so tests (and
 * curious users) can find them; points of scatter charts are `<circle class="point">`.
 */

export const PALETTE: readonly string[] = Object.freeze([
  "#2563eb", // blue
  "#dc2626", // red
  "#16a34a", // green
  "#9333ea", // purple
  "#ea580c", // orange
  "#0891b2", // cyan
  "#4b5563", // grey
  "#ca8a04", // amber
]);

export function colorAt(i: number): string {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

/** Escapes text for XML/HTML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) =>
    c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;",
  );
}
export const escapeHtml = escapeXml;

/** A coordinate for path data: one decimal, no "-0". */
function num(v: number): string {
  const r = Math.round(v * 10) / 10;
  return (Object.is(r, -0) ? 0 : r).toFixed(1).replace(/\.0$/, "");
}

/** Short human formatting for tick labels and values: 12000 -> "12k", 1.5e6 -> "1.5M", 0.25 -> "0.25". */
export function formatNumber(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  const trim = (s: string) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (a >= 1e9) return trim((v / 1e9).toPrecision(digits)) + "G";
  if (a >= 1e6) return trim((v / 1e6).toPrecision(digits)) + "M";
  if (a >= 1e4) return trim((v / 1e3).toPrecision(digits)) + "k";
  if (a === 0) return "0";
  if (a >= 1) return trim(v.toFixed(Math.max(0, digits - String(Math.floor(a)).length)));
  return trim(v.toPrecision(digits));
}

/** "Nice" tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0];
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const first = Math.ceil(min / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; v <= max + step * 1e-9; v += step) ticks.push(Math.round(v / step) * step);
  // Remove floating-point noise (0.30000000000000004).
  return ticks.map((t) => Number(t.toPrecision(12)));
}

/** Rounds a domain outwards to nice tick boundaries. */
function niceDomain(min: number, max: number, count: number): [number, number] {
  const t = niceTicks(min, max, count);
  const step = t.length > 1 ? t[1] - t[0] : 1;
  const lo = t[0] > min ? t[0] - step : t[0];
  const hi = t[t.length - 1] < max ? t[t.length - 1] + step : t[t.length - 1];
  return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
}

/**
 * Reduces a series to at most `maxPoints` values keeping each bucket's maximum (a KV sawtooth keeps its
 * peaks). Shorter input is returned unchanged (copied).
 */
export function downsampleMax(values: readonly number[], maxPoints: number): number[] {
  const n = values.length;
  if (n <= maxPoints || maxPoints < 1) return [...values];
  const out: number[] = [];
  for (let b = 0; b < maxPoints; b++) {
    const from = Math.floor((b * n) / maxPoints);
    const to = Math.max(from + 1, Math.floor(((b + 1) * n) / maxPoints));
    let m = -Infinity;
    for (let i = from; i < to; i++) if (values[i] > m) m = values[i];
    out.push(m);
  }
  return out;
}

/**
 * Reduces a series to at most `maxPoints` (x, y) points keeping each bucket's minimum and maximum in the
 * order they occur, so both the peaks and the troughs of a sawtooth survive. x is the index (0-based) of the
 * kept value, scaled by `xScale`.
 */
export function downsampleEnvelope(values: readonly number[], maxPoints: number, xScale = 1): [number, number][] {
  const n = values.length;
  if (n <= maxPoints) return values.map((v, i) => [i * xScale, v]);
  const buckets = Math.max(1, Math.floor(maxPoints / 2));
  const out: [number, number][] = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * n) / buckets);
    const to = Math.max(from + 1, Math.floor(((b + 1) * n) / buckets));
    let lo = from;
    let hi = from;
    for (let i = from; i < to; i++) {
      if (values[i] < values[lo]) lo = i;
      if (values[i] > values[hi]) hi = i;
    }
    const a = Math.min(lo, hi);
    const c = Math.max(lo, hi);
    out.push([a * xScale, values[a]]);
    if (c !== a) out.push([c * xScale, values[c]]);
  }
  return out;
}

export interface AxisOptions {
  label?: string;
  /** Fixed domain ends; otherwise taken from the data (and rounded to nice ticks). */
  min?: number;
  max?: number;
  /** Tick label formatter (default `formatNumber`). */
  format?: (v: number) => string;
  /** Approximate number of ticks (default 5). */
  ticks?: number;
}

export interface ChartOptions {
  title?: string;
  width?: number;
  height?: number;
  x?: AxisOptions;
  y?: AxisOptions;
  /** Draw a legend (default: when there is more than one named series). */
  legend?: boolean;
  /** Accessible description (defaults to the title). */
  description?: string;
  /** Extra class on the `<svg>`. */
  className?: string;
}

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
  dashed?: boolean;
  /** Draw as a step function (horizontal then vertical), e.g. an empirical CDF. */
  step?: boolean;
  /** Draw a small circle at each point. */
  markers?: boolean;
  strokeWidth?: number;
  /** Shade the area under the line (light, same colour). */
  fill?: boolean;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  sx: (v: number) => number;
  sy: (v: number) => number;
}

const FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif";

function makeFrame(
  opts: ChartOptions,
  xs: number[],
  ys: number[],
  legendRows: number,
  defaults: { xZero?: boolean; yZero?: boolean } = {},
): Frame {
  const width = opts.width ?? 640;
  const height = opts.height ?? 320;
  const top = (opts.title ? 30 : 12) + legendRows * 18;
  const left = 62;
  const right = 18;
  const bottom = opts.x?.label ? 46 : 30;
  const dom = (vals: number[], a: AxisOptions | undefined, zero: boolean | undefined): [number, number] => {
    const finite = vals.filter(Number.isFinite);
    let lo = a?.min ?? (finite.length ? Math.min(...finite) : 0);
    const hi = a?.max ?? (finite.length ? Math.max(...finite) : 1);
    if (zero && a?.min === undefined) lo = Math.min(0, lo);
    if (a?.min !== undefined && a?.max !== undefined) return lo === hi ? [lo, lo + 1] : [lo, hi];
    const [nlo, nhi] = niceDomain(lo, hi, a?.ticks ?? 5);
    return [a?.min ?? nlo, a?.max ?? nhi];
  };
  const [xMin, xMax] = dom(xs, opts.x, defaults.xZero);
  const [yMin, yMax] = dom(ys, opts.y, defaults.yZero);
  const pw = width - left - right;
  const ph = height - top - bottom;
  return {
    width,
    height,
    left,
    right,
    top,
    bottom,
    xMin,
    xMax,
    yMin,
    yMax,
    sx: (v) => left + ((v - xMin) / (xMax - xMin || 1)) * pw,
    sy: (v) => top + ph - ((v - yMin) / (yMax - yMin || 1)) * ph,
  };
}

function svgOpen(f: Frame, opts: ChartOptions, kind: string): string {
  const desc = opts.description ?? opts.title ?? kind;
  const cls = `chart chart-${kind}${opts.className ? " " + opts.className : ""}`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="${escapeXml(cls)}" viewBox="0 0 ${f.width} ${f.height}" ` +
    `width="${f.width}" height="${f.height}" role="img" aria-label="${escapeXml(desc)}" style="${FONT};font-size:11px;background:#fff">` +
    `<title>${escapeXml(desc)}</title>`
  );
}

function axes(f: Frame, opts: ChartOptions): string {
  const parts: string[] = [];
  const xf = opts.x?.format ?? ((v: number) => formatNumber(v));
  const yf = opts.y?.format ?? ((v: number) => formatNumber(v));
  const plotBottom = f.height - f.bottom;
  const plotRight = f.width - f.right;
  parts.push(`<g class="grid" stroke="#e5e7eb" stroke-width="1">`);
  const yt = niceTicks(f.yMin, f.yMax, opts.y?.ticks ?? 5).filter((t) => t >= f.yMin - 1e-9 && t <= f.yMax + 1e-9);
  const xt = niceTicks(f.xMin, f.xMax, opts.x?.ticks ?? 6).filter((t) => t >= f.xMin - 1e-9 && t <= f.xMax + 1e-9);
  for (const t of yt) parts.push(`<line x1="${f.left}" x2="${plotRight}" y1="${num(f.sy(t))}" y2="${num(f.sy(t))}"/>`);
  parts.push(`</g>`);
  parts.push(`<g class="axis" stroke="#374151" stroke-width="1">`);
  parts.push(`<line x1="${f.left}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}"/>`);
  parts.push(`<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${plotBottom}"/>`);
  for (const t of xt)
    parts.push(`<line x1="${num(f.sx(t))}" x2="${num(f.sx(t))}" y1="${plotBottom}" y2="${plotBottom + 4}"/>`);
  for (const t of yt) parts.push(`<line x1="${f.left - 4}" x2="${f.left}" y1="${num(f.sy(t))}" y2="${num(f.sy(t))}"/>`);
  parts.push(`</g>`);
  parts.push(`<g class="ticks" fill="#374151">`);
  for (const t of xt)
    parts.push(`<text x="${num(f.sx(t))}" y="${plotBottom + 15}" text-anchor="middle">${escapeXml(xf(t))}</text>`);
  for (const t of yt)
    parts.push(`<text x="${f.left - 7}" y="${num(f.sy(t) + 3.5)}" text-anchor="end">${escapeXml(yf(t))}</text>`);
  parts.push(`</g>`);
  if (opts.x?.label) {
    parts.push(
      `<text class="axis-label" x="${num((f.left + plotRight) / 2)}" y="${f.height - 8}" text-anchor="middle" fill="#111827">${escapeXml(opts.x.label)}</text>`,
    );
  }
  if (opts.y?.label) {
    const cy = num((f.top + plotBottom) / 2);
    parts.push(
      `<text class="axis-label" x="14" y="${cy}" transform="rotate(-90 14 ${cy})" text-anchor="middle" fill="#111827">${escapeXml(opts.y.label)}</text>`,
    );
  }
  if (opts.title) {
    parts.push(
      `<text class="chart-title" x="${f.left}" y="18" font-size="13" font-weight="600" fill="#111827">${escapeXml(opts.title)}</text>`,
    );
  }
  return parts.join("");
}

/** Legend entries laid out left to right, wrapping; returns the markup and the number of rows used. */
function legendLayout(
  entries: { name: string; color: string; dashed?: boolean; marker?: "line" | "dot" | "ring" }[],
  width: number,
  top: number,
): { svg: string; rows: number } {
  if (entries.length === 0) return { svg: "", rows: 0 };
  const parts: string[] = [`<g class="legend">`];
  let x = 62;
  let row = 0;
  for (const e of entries) {
    const w = 28 + Math.min(40, e.name.length) * 6.2;
    if (x + w > width - 10 && x > 62) {
      row++;
      x = 62;
    }
    const y = top + row * 18;
    if (e.marker === "dot" || e.marker === "ring") {
      parts.push(
        `<circle cx="${num(x + 9)}" cy="${num(y - 4)}" r="4" fill="${e.marker === "ring" ? "#fff" : e.color}" stroke="${e.color}" stroke-width="2"/>`,
      );
    } else {
      parts.push(
        `<line x1="${num(x)}" x2="${num(x + 18)}" y1="${num(y - 4)}" y2="${num(y - 4)}" stroke="${e.color}" stroke-width="2.5"${e.dashed ? ' stroke-dasharray="5 3"' : ""}/>`,
      );
    }
    parts.push(
      `<text x="${num(x + 23)}" y="${num(y)}" fill="#111827">${escapeXml(e.name.length > 40 ? e.name.slice(0, 39) + "…" : e.name)}</text>`,
    );
    x += w;
  }
  parts.push(`</g>`);
  return { svg: parts.join(""), rows: row + 1 };
}

function noData(opts: ChartOptions, kind: string): string {
  const f = makeFrame(opts, [0, 1], [0, 1], 0);
  return (
    svgOpen(f, opts, kind) +
    axes(f, { ...opts, x: { ...opts.x, format: () => "" }, y: { ...opts.y, format: () => "" } }) +
    `<text class="no-data" x="${num(f.width / 2)}" y="${num(f.height / 2)}" text-anchor="middle" fill="#6b7280">no data</text></svg>`
  );
}

function pathData(points: readonly (readonly [number, number])[], f: Frame, step: boolean): string {
  let d = "";
  let prevY = 0;
  points.forEach(([x, y], i) => {
    if (i === 0) d += `M${num(f.sx(x))} ${num(f.sy(y))}`;
    else if (step) d += `L${num(f.sx(x))} ${num(f.sy(prevY))}L${num(f.sx(x))} ${num(f.sy(y))}`;
    else d += `L${num(f.sx(x))} ${num(f.sy(y))}`;
    prevY = y;
  });
  return d;
}

/** A line chart with one or more series, axes, ticks, labels and a legend. */
export function lineChart(series: readonly Series[], opts: ChartOptions = {}): string {
  const drawn = series.filter((s) => s.points.length > 0);
  if (drawn.length === 0) return noData(opts, "line");
  const showLegend = opts.legend ?? series.length > 1;
  const legendEntries = showLegend
    ? series.map((s, i) => ({ name: s.name, color: s.color ?? colorAt(i), dashed: s.dashed, marker: "line" as const }))
    : [];
  const width = opts.width ?? 640;
  const probe = legendLayout(legendEntries, width, 0);
  const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
  const ys = drawn.flatMap((s) => s.points.map((p) => p[1]));
  const f = makeFrame(opts, xs, ys, probe.rows, { yZero: true });
  const parts = [
    svgOpen(f, opts, "line"),
    axes(f, opts),
    legendLayout(legendEntries, width, (opts.title ? 30 : 12) + 6).svg,
  ];
  parts.push(`<g class="plot" fill="none" stroke-linejoin="round" stroke-linecap="round">`);
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const color = s.color ?? colorAt(i);
    const d = pathData(s.points, f, s.step ?? false);
    if (s.fill) {
      const first = s.points[0];
      const last = s.points[s.points.length - 1];
      const base = num(f.sy(Math.max(f.yMin, 0)));
      parts.push(
        `<path class="area" d="${d}L${num(f.sx(last[0]))} ${base}L${num(f.sx(first[0]))} ${base}Z" fill="${color}" fill-opacity="0.12" stroke="none"/>`,
      );
    }
    parts.push(
      `<path class="series" data-series="${escapeXml(s.name)}" data-points="${s.points.length}" d="${d}" stroke="${color}" stroke-width="${s.strokeWidth ?? 1.8}"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    if (s.markers) {
      for (const [x, y] of s.points)
        parts.push(
          `<circle class="marker" cx="${num(f.sx(x))}" cy="${num(f.sy(y))}" r="3" fill="${color}" stroke="none"/>`,
        );
    }
  });
  parts.push(`</g></svg>`);
  return parts.join("");
}

/** Empirical CDF points of `values` (sorted; y from 1/n to 1), starting at (min, 0). */
export function cdfPoints(values: readonly number[]): [number, number][] {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return [];
  const out: [number, number][] = [[v[0], 0]];
  v.forEach((x, i) => {
    if (i + 1 < v.length && v[i + 1] === x) return; // one step per distinct value
    out.push([x, (i + 1) / v.length]);
  });
  return out;
}

/** Empirical CDFs of one or more samples, drawn as step functions; y is the fraction in [0, 1]. */
export function cdfChart(
  samples: readonly { name: string; values: readonly number[]; color?: string; dashed?: boolean }[],
  opts: ChartOptions = {},
): string {
  const series: Series[] = samples.map((s, i) => ({
    name: `${s.name} (n=${s.values.length})`,
    points: cdfPoints(s.values),
    color: s.color ?? colorAt(i),
    dashed: s.dashed,
    step: true,
  }));
  return lineChart(series, {
    ...opts,
    y: { min: 0, max: 1, format: (v) => `${Math.round(v * 100)}%`, ...opts.y },
    legend: opts.legend ?? true,
  });
}

export interface ScatterPoint {
  x: number;
  y: number;
  label?: string;
  color?: string;
  /** Draw an open circle (e.g. a simulated counterpart). */
  hollow?: boolean;
}

/** A scatter chart; each point may carry a label drawn next to it and in the legend. */
export function scatterChart(points: readonly ScatterPoint[], opts: ChartOptions = {}): string {
  const pts = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (pts.length === 0) return noData(opts, "scatter");
  const width = opts.width ?? 640;
  const showLegend = opts.legend ?? pts.some((p) => p.label);
  const entries = showLegend
    ? pts.map((p, i) => ({
        name: p.label ?? `point ${i + 1}`,
        color: p.color ?? colorAt(i),
        marker: p.hollow ? ("ring" as const) : ("dot" as const),
      }))
    : [];
  const probe = legendLayout(entries, width, 0);
  // Pad single points / tiny ranges so markers sit inside the plot.
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => p.y);
  const pad = (v: number[]) => {
    const lo = Math.min(...v);
    const hi = Math.max(...v);
    const d = hi - lo || Math.abs(hi) * 0.2 || 1;
    return [lo - d * 0.15, hi + d * 0.15];
  };
  const f = makeFrame(opts, pad(xs), pad(ys), probe.rows, { xZero: true, yZero: true });
  const parts = [
    svgOpen(f, opts, "scatter"),
    axes(f, opts),
    legendLayout(entries, width, (opts.title ? 30 : 12) + 6).svg,
  ];
  parts.push(`<g class="plot">`);
  pts.forEach((p, i) => {
    const color = p.color ?? colorAt(i);
    const cx = num(f.sx(p.x));
    const cy = num(f.sy(p.y));
    parts.push(
      `<circle class="point" data-label="${escapeXml(p.label ?? "")}" cx="${cx}" cy="${cy}" r="5.5" fill="${p.hollow ? "#fff" : color}" stroke="${color}" stroke-width="2"/>`,
    );
    if (p.label)
      parts.push(
        `<text x="${num(f.sx(p.x) + 8)}" y="${num(f.sy(p.y) - 7)}" fill="#111827">${escapeXml(p.label)}</text>`,
      );
  });
  parts.push(`</g></svg>`);
  return parts.join("");
}

export interface Bar {
  label: string;
  value: number;
  color?: string;
}

/** A vertical bar chart with one bar per label (values >= 0 expected; negative bars grow downwards). */
export function barChart(bars: readonly Bar[], opts: ChartOptions = {}): string {
  if (bars.length === 0) return noData(opts, "bar");
  const values = bars.map((b) => b.value).filter(Number.isFinite);
  const f = makeFrame({ ...opts, x: { ...opts.x, min: 0, max: bars.length } }, [0, bars.length], [0, ...values], 0, {
    yZero: true,
  });
  const xLabels = (v: number) => {
    const i = Math.floor(v);
    return Math.abs(v - i - 0.5) < 1e-9 && bars[i] ? bars[i].label : "";
  };
  const parts = [svgOpen(f, opts, "bar"), axes(f, { ...opts, x: { ...opts.x, format: () => "" } })];
  parts.push(`<g class="plot">`);
  const slot = f.sx(1) - f.sx(0);
  bars.forEach((b, i) => {
    if (!Number.isFinite(b.value)) return;
    const x = f.sx(i) + slot * 0.15;
    const y0 = f.sy(0);
    const y1 = f.sy(b.value);
    parts.push(
      `<rect class="bar" data-label="${escapeXml(b.label)}" x="${num(x)}" y="${num(Math.min(y0, y1))}" width="${num(slot * 0.7)}" height="${num(Math.abs(y1 - y0))}" fill="${b.color ?? colorAt(i)}"/>`,
    );
    parts.push(
      `<text x="${num(f.sx(i + 0.5))}" y="${num(f.height - f.bottom + 15)}" text-anchor="middle" fill="#374151">${escapeXml(xLabels(i + 0.5))}</text>`,
    );
    parts.push(
      `<text x="${num(f.sx(i + 0.5))}" y="${num(Math.min(y0, y1) - 4)}" text-anchor="middle" fill="#111827">${escapeXml(formatNumber(b.value))}</text>`,
    );
  });
  parts.push(`</g></svg>`);
  return parts.join("");
}

/** A table cell: plain text (escaped) or pre-built HTML, with an optional class. */
export type Cell =
  | string
  | number
  | { html: string; className?: string; title?: string }
  | { text: string; className?: string; title?: string };

function cellHtml(c: Cell, tag: "td" | "th"): string {
  if (typeof c === "string" || typeof c === "number") return `<${tag}>${escapeHtml(String(c))}</${tag}>`;
  const cls = c.className ? ` class="${escapeHtml(c.className)}"` : "";
  const title = c.title ? ` title="${escapeHtml(c.title)}"` : "";
  const body = "html" in c ? c.html : escapeHtml(c.text);
  return `<${tag}${cls}${title}>${body}</${tag}>`;
}

/** An HTML table with a header row; cells are escaped unless given as `{html}`. */
export function htmlTable(
  head: readonly Cell[],
  rows: readonly (readonly Cell[])[],
  opts: { className?: string; caption?: string } = {},
): string {
  const cls = opts.className ? ` class="${escapeHtml(opts.className)}"` : "";
  const caption = opts.caption ? `<caption>${escapeHtml(opts.caption)}</caption>` : "";
  return (
    `<table${cls}>${caption}<thead><tr>${head.map((h) => cellHtml(h, "th")).join("")}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => cellHtml(c, "td")).join("")}</tr>`).join("")}</tbody></table>`
  );
}

/** Number of drawn vertices in an SVG path's data (M and L commands), for checks. */
export function pathPointCount(d: string): number {
  return (d.match(/[ML]/g) ?? []).length;
}
