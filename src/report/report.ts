/**
 * `memento eval report RUN_DIR [RUN_DIR2 ...]`: reads evaluation run directories (see types.ts) and writes one
 * self-contained HTML file (inline CSS and SVG, no scripts, no fonts, nothing fetched) with
 *
 * - a Table-1-like comparison: pass@1 ± standard error over problems, maj@n, pass@n, peak KV (tokens, GB),
 *   KV AUC, with deltas against the first run (accuracy in points, KV as ratios);
 * - Memento vs full attention on the same responses (simulated), per run;
 * - KV sawtooth per problem (small multiples; the rest behind a `<details>`), memento vs full attention;
 * - compression-ratio CDF (memento tokens / block tokens, per block);
 * - maj@k curves (k = 1..n) and accuracy vs peak KV (one point per run, plus its simulated full-attention twin).
 *
 * Policy:
 * 1. Failed generations are not answers: each problem is scored over its completed generations, a problem with
 *    none is left out of pass@k, and a run with failures is marked in the tables and warned about.
 * 2. Comparisons say when they are shaky: runs over other problems or other sample counts are warned about
 *    (`comparisonWarnings`), and Δ pass@1 is paired over the problems both runs scored.
 * 3. KV sizes are shown in the unit that fits the column (B, kB, MB, GB; src/eval/kv-units.ts).
 * 4. No column, point or label repeats another: with n = 1 there is no maj@n or pass@n column, a run with one
 *    sample gets no maj@k curve, and chart names live in the legend inside the chart.
 *
 * KV of a run: the runner stores, per generation, the simulator's numbers with block masking
 * (keepLastNBlocks 0, `kv.memento`) and under full attention (`kv.vanilla`) for the same tokens. A run whose
 * server did not evict (masking off) held the full-attention KV, so for it the report uses `kv.vanilla`. Such
 * runs are named with `fullAttention`, or detected from the manifest: an `extraBody` field like
 * `keepLastNBlocks: -1` or `block_masking: false`, or a label like "no-mask", "masking-off", "full-attention".
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { UserError } from "../errors.js";
import type { Generation, GenerationKv, RunManifest, RunSummary } from "../eval/types.js";
import {
  cdfChart,
  colorAt,
  escapeHtml,
  formatNumber,
  htmlTable,
  lineChart,
  type Cell,
  type Series,
} from "../util/charts.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import type { KvArchitecture } from "../kv/architecture.js";
import { answerKey } from "../eval/normalize.js";
import { majAtKProblem, mean, passAtK, standardError } from "../eval/metrics.js";
import { median } from "../util/stats.js";
import { formatInKvUnit, pickKvUnit } from "../eval/kv-units.js";
// The KV of one response (to fill in generations stored without `kv`), as the runner computes it.
import { computeGenerationKv } from "../eval/kv.js";
export { computeGenerationKv };

// ---------------------------------------------------------------------------------------------------------
// Loading and validation

const kvNumbers = z.object({
  peakTokens: z.number(),
  aucTokens: z.number(),
  peakGB: z.number(),
  aucGBxKtok: z.number(),
});

const generationKvSchema = z.object({
  promptTokens: z.number(),
  outputTokens: z.number(),
  blocks: z.number(),
  compression: z.number(),
  blockTokens: z.array(z.number()),
  mementoTokens: z.array(z.number()),
  memento: kvNumbers,
  vanilla: kvNumbers,
  trajectory: z.array(z.number()).optional(),
  vanillaTrajectory: z.array(z.number()).optional(),
});

const generationSchema = z.object({
  problemId: z.union([z.string(), z.number()]).transform(String),
  sample: z.number().int().min(0),
  status: z.enum(["ok", "error"]),
  response: z.string().optional(),
  finishReason: z.string().optional(),
  error: z.string().optional(),
  usage: z.object({ promptTokens: z.number(), completionTokens: z.number() }).optional(),
  latencyMs: z.number().optional(),
  extracted: z.string().optional(),
  voteKey: z.string().optional(),
  correct: z.boolean().optional(),
  method: z.string().optional(),
  kv: generationKvSchema.optional(),
});

const manifestSchema = z.object({
  label: z.string(),
  endpoint: z.string(),
  model: z.string(),
  benchmark: z.string(),
  problems: z.number().int().min(0),
  n: z.number().int().min(1),
  sampling: z.object({
    temperature: z.number(),
    top_p: z.number(),
    top_k: z.number(),
    min_p: z.number().optional(),
    max_tokens: z.number(),
    seed: z.number().optional(),
  }),
  extraBody: z.record(z.string(), z.unknown()).optional(),
  architecture: z.string(),
  server: z.string().optional(),
  serverMasking: z.record(z.string(), z.unknown()).optional(),
  startedAt: z.string(),
});

const summarySchema = z.object({ label: z.string(), pass1: z.number(), generations: z.number() }).passthrough();

export interface LoadedRun {
  dir: string;
  manifest: RunManifest;
  /** One generation per (problemId, sample), in file order of first appearance; a later line replaces an earlier one. */
  generations: Generation[];
  /** results.json when present and readable. */
  results?: RunSummary;
  /** Non-fatal problems met while loading (a torn last line, duplicates, filled-in KV). */
  warnings: string[];
}

function zodMessage(e: z.ZodError): string {
  const i = e.issues[0];
  return `${i.path.length ? i.path.join(".") + ": " : ""}${i.message}`;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UserError(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message.replace(/\s+/g, " ")})`);
  }
}

/** Reads and validates one run directory. Throws a one-line UserError when it is missing or malformed. */
export function loadRun(dir: string): LoadedRun {
  const root = resolve(dir);
  if (!existsSync(root)) throw new UserError(`${dir}: no such run directory`);
  if (!statSync(root).isDirectory())
    throw new UserError(`${dir}: not a directory (expected a run directory written by \`memento eval run\`)`);
  const manifestPath = join(root, "run.json");
  if (!existsSync(manifestPath))
    throw new UserError(`${dir}: no run.json (not a run directory written by \`memento eval run\`)`);
  const m = manifestSchema.safeParse(readJson(manifestPath, "run manifest"));
  if (!m.success) throw new UserError(`${manifestPath}: invalid run manifest: ${zodMessage(m.error)}`);

  const warnings: string[] = [];
  const genPath = join(root, "generations.jsonl");
  if (!existsSync(genPath)) throw new UserError(`${dir}: no generations.jsonl`);
  const lines = readFileSync(genPath, "utf8").split("\n");
  const byKey = new Map<string, Generation>();
  const lastNonBlank = lines.reduce((acc, l, i) => (/\S/.test(l) ? i : acc), -1);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!/\S/.test(line)) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (i === lastNonBlank) {
        // A run killed mid-write leaves a torn last line; the runner redoes that generation on resume.
        warnings.push(`${genPath}:${i + 1}: torn last line ignored`);
        continue;
      }
      throw new UserError(`${genPath}:${i + 1}: invalid JSON (${(e as Error).message.replace(/\s+/g, " ")})`);
    }
    const g = generationSchema.safeParse(value);
    if (!g.success) throw new UserError(`${genPath}:${i + 1}: invalid generation: ${zodMessage(g.error)}`);
    const gen = g.data as Generation;
    const key = `${gen.problemId}#${gen.sample}`;
    const prev = byKey.get(key);
    // A failed generation retried on resume appears again; keep the successful / latest one.
    if (prev && prev.status === "ok" && gen.status !== "ok") continue;
    if (prev) byKey.delete(key);
    byKey.set(key, gen);
  }
  const generations = [...byKey.values()];
  if (generations.length === 0) throw new UserError(`${genPath}: no generations`);

  let results: RunSummary | undefined;
  const resultsPath = join(root, "results.json");
  if (existsSync(resultsPath)) {
    try {
      const r = summarySchema.safeParse(JSON.parse(readFileSync(resultsPath, "utf8")));
      if (r.success) results = r.data as unknown as RunSummary;
      else warnings.push(`${resultsPath}: ignored (${zodMessage(r.error)})`);
    } catch {
      warnings.push(`${resultsPath}: ignored (invalid JSON)`);
    }
  }
  return { dir: root, manifest: m.data as RunManifest, generations, results, warnings };
}

// ---------------------------------------------------------------------------------------------------------
// Metrics

const identity = (a: string) => a;

export interface KvMeans {
  peakTokens: number;
  aucTokens: number;
  peakGB: number;
  aucGBxKtok: number;
}

export interface ProblemStats {
  id: string;
  /** Generations of this problem, failed ones included. */
  samples: number;
  /** Generations that completed (status "ok"): the problem is scored over these. */
  completed: number;
  correct: number;
  /** Fraction correct over the completed generations (failed ones are not answers); NaN when none completed. */
  pass: number;
  /** Mean effective peak KV tokens over its measured samples. */
  peakTokens: number;
}

export interface RunStats {
  label: string;
  dir: string;
  manifest: RunManifest;
  /** "memento": the server evicted blocks (KV = kv.memento); "full": it did not (KV = kv.vanilla). */
  kvMode: "memento" | "full";
  problems: number;
  /** Largest number of samples of any problem. */
  n: number;
  generations: number;
  /** Generations that failed (HTTP error, timeout, malformed response): not scored. */
  errors: number;
  /** Problems with at least one completed generation: pass@1 is over these. */
  scoredProblems: number;
  pass1: number;
  pass1StdErr: number;
  /** majAtK[k-1] = maj@k, k = 1..n. */
  majAtK: number[];
  /** passAtK[k-1] = unbiased pass@k. */
  passAtK: number[];
  /** The run's KV (per kvMode), means over generations with KV numbers. */
  kv: KvMeans;
  /** With block masking (simulated) and under full attention, on the same responses. */
  mementoKv: KvMeans;
  vanillaKv: KvMeans;
  /** Memento tokens / block tokens of every completed block. */
  compression: number[];
  blockTokens: number[];
  mementoTokens: number[];
  meanBlocks: number;
  meanOutputTokens: number;
  /** Generations with KV numbers. */
  measured: number;
  perProblem: ProblemStats[];
}

function kvMeans(kvs: readonly GenerationKv[], which: "memento" | "vanilla"): KvMeans {
  return {
    peakTokens: mean(kvs.map((k) => k[which].peakTokens)),
    aucTokens: mean(kvs.map((k) => k[which].aucTokens)),
    peakGB: mean(kvs.map((k) => k[which].peakGB)),
    aucGBxKtok: mean(kvs.map((k) => k[which].aucGBxKtok)),
  };
}

function findKey(value: unknown, test: (key: string, v: unknown) => boolean, depth = 0): boolean {
  if (depth > 4 || typeof value !== "object" || value === null) return false;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (test(k, v)) return true;
    if (findKey(v, test, depth + 1)) return true;
  }
  return false;
}

/** Whether a run's server kept every block (masking off): see the module comment. */
export function detectFullAttention(manifest: RunManifest): boolean {
  const norm = (k: string) => k.toLowerCase().replace(/[^a-z]/g, "");
  const fromBody = findKey(manifest.extraBody, (k, v) => {
    const n = norm(k);
    if (n === "keeplastnblocks" && v === -1) return true;
    if ((n.includes("mask") || n.includes("memento") || n.includes("evict") || n.includes("compact")) && v === false)
      return true;
    return false;
  });
  if (fromBody) return true;
  // `eval run --server vllm-memento -k -1`: the server was launched without eviction.
  if (manifest.serverMasking?.keepLastNBlocks === -1) return true;
  return /(^|[^a-z])(no[-_ ]?mask(ing)?|mask(ing)?[-_ ]?off|unmasked|full[-_ ]?attention|full[-_ ]?kv)([^a-z]|$)/i.test(
    manifest.label,
  );
}

/** Per-run accuracy, majority vote and KV statistics computed from the generations. */
export function summariseRun(run: LoadedRun, opts: { fullAttention?: boolean } = {}): RunStats {
  const kvMode = (opts.fullAttention ?? detectFullAttention(run.manifest)) ? "full" : "memento";
  const byProblem = new Map<string, Generation[]>();
  for (const g of run.generations) {
    const list = byProblem.get(g.problemId) ?? [];
    list.push(g);
    byProblem.set(g.problemId, list);
  }
  const n = Math.max(1, ...[...byProblem.values()].map((l) => l.length));
  const perProblem: ProblemStats[] = [];
  const majAtK = new Array<number>(n).fill(0);
  const passK = new Array<number>(n).fill(0);
  for (const [id, list] of byProblem) {
    list.sort((a, b) => a.sample - b.sample);
    // Failed generations are not answers: the problem is scored over its completed ones.
    const done = list.filter((g) => g.status === "ok");
    const m = done.length;
    const correctFlags = done.map((g) => g.correct === true);
    const correct = correctFlags.filter(Boolean).length;
    // The runner's voteKey is already normalised; a bare extracted answer is normalised here.
    const answers = done.map((g) => g.voteKey ?? (g.extracted !== undefined ? answerKey(g.extracted) : null));
    if (m > 0) {
      for (let k = 1; k <= n; k++) {
        const kk = Math.min(k, m);
        majAtK[k - 1] += majAtKProblem({ answers, correct: correctFlags }, kk, { key: identity, seed: 1 });
        passK[k - 1] += passAtK(m, correct, kk);
      }
    }
    const peaks = list.filter((g) => g.kv).map((g) => (kvMode === "full" ? g.kv!.vanilla : g.kv!.memento).peakTokens);
    perProblem.push({
      id,
      samples: list.length,
      completed: m,
      correct,
      pass: m > 0 ? correct / m : NaN,
      peakTokens: mean(peaks),
    });
  }
  const P = perProblem.length;
  const scored = perProblem.filter((p) => p.completed > 0);
  const kvs = run.generations.filter((g) => g.status === "ok" && g.kv).map((g) => g.kv!);
  const mementoKv = kvMeans(kvs, "memento");
  const vanillaKv = kvMeans(kvs, "vanilla");
  const compression: number[] = [];
  const blockTokens: number[] = [];
  const mementoTokens: number[] = [];
  for (const k of kvs) {
    k.blockTokens.forEach((b, i) => {
      blockTokens.push(b);
      mementoTokens.push(k.mementoTokens[i] ?? 0);
      if (b > 0) compression.push((k.mementoTokens[i] ?? 0) / b);
    });
  }
  const passes = scored.map((p) => p.pass);
  return {
    label: run.manifest.label,
    dir: run.dir,
    manifest: run.manifest,
    kvMode,
    problems: P,
    n,
    generations: run.generations.length,
    errors: run.generations.filter((g) => g.status === "error").length,
    scoredProblems: scored.length,
    pass1: mean(passes),
    pass1StdErr: standardError(passes),
    majAtK: majAtK.map((v) => v / Math.max(1, scored.length)),
    passAtK: passK.map((v) => v / Math.max(1, scored.length)),
    kv: kvMode === "full" ? vanillaKv : mementoKv,
    mementoKv,
    vanillaKv,
    compression,
    blockTokens,
    mementoTokens,
    meanBlocks: mean(kvs.map((k) => k.blocks)),
    meanOutputTokens: mean(kvs.map((k) => k.outputTokens)),
    measured: kvs.length,
    perProblem,
  };
}

// ---------------------------------------------------------------------------------------------------------
// HTML

export interface ReportOptions {
  /** Labels (or run directories) of runs whose KV is counted under full attention; default: detected. */
  fullAttention?: readonly string[];
  /** Sample index drawn in the sawtooth charts (default: the lowest successful one per problem). */
  sample?: number;
  /** Most problems drawn in the sawtooth section (default 60); the first 12 are shown open. */
  maxSawtoothProblems?: number;
  /** Report title. */
  title?: string;
  /**
   * Fills in `kv` for generations stored without it (needs the tokenizer; the problem prompt is unknown here,
   * so the prompt counts 0 tokens). Default: leave them out of the KV statistics.
   */
  fillKv?: { tokenizer: MementoTokenizer; architecture: (name: string) => KvArchitecture };
}

const pct = (v: number, d = 1) => `${(v * 100).toFixed(d)}`;
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "–");

const CSS = `
:root{color-scheme:light}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f9fafb;margin:0;padding:24px 32px 48px;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid #e5e7eb}
h3{font-size:14px;margin:16px 0 6px}
p.note,.note{color:#4b5563;font-size:12.5px;margin:4px 0 10px}
table{border-collapse:collapse;background:#fff;margin:8px 0 16px;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:4px 0;color:#374151}
th,td{border:1px solid #e5e7eb;padding:5px 9px;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600;font-size:12.5px}
td:first-child,th:first-child{text-align:left}
td.left{text-align:left;white-space:normal}
td.good{color:#15803d}
td.bad{color:#b91c1c}
td.base{color:#6b7280}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:6px}
figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#4b5563;padding:2px 4px 0}
.charts{display:flex;flex-wrap:wrap;gap:16px}
details{margin:8px 0}
details>summary{cursor:pointer;color:#1d4ed8;font-weight:500}
.warn{background:#fffbeb;border:1px solid #fcd34d;padding:6px 10px;border-radius:6px;color:#92400e;font-size:12.5px}
code{font-size:12.5px;background:#f3f4f6;padding:0 3px;border-radius:3px}
.failed{color:#b91c1c;font-size:12px;margin-left:6px}
`;

function runDot(i: number): string {
  return `<span class="swatch" style="background:${colorAt(i)}"></span>`;
}

/** The effective trajectory of a generation (absolute resident tokens, prompt included), as chart points. */
function trajectoryPoints(kv: GenerationKv, which: "memento" | "vanilla"): [number, number][] {
  const raw =
    which === "memento"
      ? kv.trajectory
      : (kv.vanillaTrajectory ?? kv.trajectory?.map((_, i, a) => ((i + 1) * kv.outputTokens) / a.length));
  if (!raw || raw.length === 0) return [];
  const L = raw.length;
  const T = Math.max(kv.outputTokens, L);
  return raw.map((v, i) => [Math.round(((i + 1) * T) / L), v + kv.promptTokens]);
}

function chosenSample(list: readonly Generation[] | undefined, sample: number | undefined): Generation | undefined {
  if (!list) return undefined;
  const ok = list
    .filter((g) => g.status === "ok" && g.kv && g.kv.trajectory && g.kv.trajectory.length > 0)
    .sort((a, b) => a.sample - b.sample);
  return (sample !== undefined ? ok.find((g) => g.sample === sample) : undefined) ?? ok[0];
}

function sawtoothSection(runs: readonly LoadedRun[], stats: readonly RunStats[], opts: ReportOptions): string {
  const perRun = runs.map((r) => {
    const m = new Map<string, Generation[]>();
    for (const g of r.generations) {
      const l = m.get(g.problemId) ?? [];
      l.push(g);
      m.set(g.problemId, l);
    }
    return m;
  });
  const ids: string[] = [];
  const seen = new Set<string>();
  for (const m of perRun) {
    for (const id of m.keys()) {
      if (!seen.has(id)) {
        seen.add(id);
        ids.push(id);
      }
    }
  }
  const max = opts.maxSawtoothProblems ?? 60;
  const figures: string[] = [];
  for (const id of ids) {
    if (figures.length >= max) break;
    const series: Series[] = [];
    const caption: string[] = [];
    const chosen = runs.map((_, ri) => chosenSample(perRun[ri].get(id), opts.sample));
    // The dashed full-attention line: from the first run that evicted blocks on this problem (else the first run).
    let vanillaFrom = chosen.findIndex((g, ri) => g?.kv && stats[ri].kvMode === "memento" && g.kv.blocks > 0);
    if (vanillaFrom < 0) vanillaFrom = chosen.findIndex((g, ri) => g?.kv && stats[ri].kvMode === "memento");
    runs.forEach((_, ri) => {
      const g = chosen[ri];
      if (!g?.kv) return;
      const s = stats[ri];
      const mode = s.kvMode;
      series.push({
        name: `${s.label}${mode === "full" ? " (full attention)" : ""}`,
        points: trajectoryPoints(g.kv, mode === "full" ? "vanilla" : "memento"),
        color: colorAt(ri),
        fill: ri === 0,
      });
      caption.push(
        `${escapeHtml(s.label)} #${g.sample}${g.correct === true ? " ✓" : g.correct === false ? " ✗" : ""}: ${g.kv.blocks} blocks, peak ${formatNumber(
          (mode === "full" ? g.kv.vanilla : g.kv.memento).peakTokens,
        )} tok`,
      );
      if (ri === vanillaFrom) {
        series.push({
          name: `full attention (simulated, ${s.label})`,
          points: trajectoryPoints(g.kv, "vanilla"),
          color: "#6b7280",
          dashed: true,
          strokeWidth: 1.4,
        });
      }
    });
    if (series.length === 0) continue;
    const svg = lineChart(series, {
      title: `problem ${id}`,
      width: 440,
      height: 230,
      x: { label: "output tokens" },
      y: { label: "resident KV (tokens)" },
      legend: true,
    });
    figures.push(
      `<figure class="sawtooth" data-problem="${escapeHtml(id)}">${svg}<figcaption>${caption.join(" · ")}</figcaption></figure>`,
    );
  }
  if (figures.length === 0) return `<p class="note">No generation carries a KV trajectory.</p>`;
  const open = figures.slice(0, 12);
  const rest = figures.slice(12);
  let html = `<div class="grid">${open.join("")}</div>`;
  if (rest.length)
    html += `<details><summary>${rest.length} more problem${rest.length > 1 ? "s" : ""}</summary><div class="grid">${rest.join("")}</div></details>`;
  if (ids.length > figures.length) html += `<p class="note">Showing ${figures.length} of ${ids.length} problems.</p>`;
  return html;
}

/** The run's name cell: its colour, label and, when some generations failed, a mark saying how many. */
function runCell(s: RunStats, i: number): Cell {
  const failed =
    s.errors > 0
      ? ` <span class="failed" title="failed generations are not scored">⚠ ${s.errors} of ${s.generations} failed</span>`
      : "";
  return { html: `${runDot(i)}${escapeHtml(s.label)}${failed}` };
}

/**
 * The difference of pass@1 against the baseline, paired over the problems both runs scored (so runs over other
 * problem sets compare like with like), and its standard error.
 */
function pairedDelta(s: RunStats, base: RunStats): { points: number; sePoints: number; common: number } {
  const basePass = new Map(base.perProblem.filter((p) => p.completed > 0).map((p) => [p.id, p.pass]));
  const diffs = s.perProblem
    .filter((p) => p.completed > 0 && basePass.has(p.id))
    .map((p) => p.pass - basePass.get(p.id)!);
  return { points: mean(diffs) * 100, sePoints: standardError(diffs) * 100, common: diffs.length };
}

function deltaCell(d: { points: number; sePoints: number; common: number }): Cell {
  if (d.common === 0) return { text: "no common problem", className: "bad" };
  return {
    text: `${d.points >= 0 ? "+" : ""}${d.points.toFixed(1)} ± ${d.sePoints.toFixed(1)}`,
    className: d.points >= 0 ? "good" : "bad",
    title: `paired over the ${d.common} problems both runs scored`,
  };
}

function tableOne(stats: readonly RunStats[]): string {
  const base = stats[0];
  const n = Math.max(...stats.map((s) => s.n));
  // With one sample per problem maj@1 and pass@1 are pass@1 again: no second and third copy of that column.
  const atN = n > 1;
  const peakUnit = pickKvUnit(Math.max(...stats.map((s) => s.kv.peakGB)));
  const aucUnit = pickKvUnit(Math.max(...stats.map((s) => s.kv.aucGBxKtok)));
  const head: Cell[] = [
    "run",
    "model",
    "problems × n",
    "pass@1 (%) ± SE",
    ...(atN ? [`maj@${n} (%)`, `pass@${n} (%)`] : []),
    "Δ pass@1 (pts) ± SE",
    "peak KV (tok)",
    `peak KV (${peakUnit})`,
    `KV AUC (${aucUnit}·ktok)`,
    "peak KV ×",
    "KV AUC ×",
    "KV counted",
  ];
  const rows: Cell[][] = stats.map((s, i) => {
    const isBase = i === 0;
    const scored = s.scoredProblems > 0;
    return [
      runCell(s, i),
      { text: s.manifest.model, className: "left" },
      `${s.problems} × ${s.n}`,
      scored ? `${pct(s.pass1)} ± ${pct(s.pass1StdErr)}` : "–",
      ...(atN ? [pct(s.majAtK[Math.min(s.n, n) - 1] ?? 0), pct(s.passAtK[Math.min(s.n, n) - 1] ?? 0)] : []),
      isBase ? { text: "baseline", className: "base" } : deltaCell(pairedDelta(s, base)),
      formatNumber(s.kv.peakTokens, 4),
      formatInKvUnit(s.kv.peakGB, peakUnit),
      formatInKvUnit(s.kv.aucGBxKtok, aucUnit),
      isBase
        ? { text: "1.00×", className: "base" }
        : {
            text: ratio(s.kv.peakTokens, base.kv.peakTokens),
            className: s.kv.peakTokens <= base.kv.peakTokens ? "good" : "bad",
            title: `${s.label} / ${base.label}`,
          },
      isBase
        ? { text: "1.00×", className: "base" }
        : {
            text: ratio(s.kv.aucTokens, base.kv.aucTokens),
            className: s.kv.aucTokens <= base.kv.aucTokens ? "good" : "bad",
            title: `${s.label} / ${base.label}`,
          },
      s.kvMode === "full" ? "full attention" : "block masking",
    ];
  });
  return htmlTable(head, rows, {
    className: "table1",
    caption: `Accuracy and KV cost; deltas and ratios against ${base.label}`,
  });
}

function tableTwo(stats: readonly RunStats[]): string {
  const aucUnit = pickKvUnit(Math.max(...stats.flatMap((s) => [s.mementoKv.aucGBxKtok, s.vanillaKv.aucGBxKtok])));
  const head: Cell[] = [
    "run",
    "blocks / response",
    "median block (tok)",
    "median memento (tok)",
    "compression",
    "output (tok)",
    "peak memento",
    "peak full",
    "peak reduction",
    `AUC memento (${aucUnit}·ktok)`,
    `AUC full (${aucUnit}·ktok)`,
    "AUC reduction",
  ];
  const rows: Cell[][] = stats.map((s, i) => [
    runCell(s, i),
    s.meanBlocks.toFixed(1),
    formatNumber(median(s.blockTokens), 4),
    formatNumber(median(s.mementoTokens), 4),
    s.compression.length ? median(s.compression).toFixed(3) : "–",
    formatNumber(s.meanOutputTokens, 4),
    formatNumber(s.mementoKv.peakTokens, 4),
    formatNumber(s.vanillaKv.peakTokens, 4),
    ratio(s.vanillaKv.peakTokens, s.mementoKv.peakTokens),
    formatInKvUnit(s.mementoKv.aucGBxKtok, aucUnit),
    formatInKvUnit(s.vanillaKv.aucGBxKtok, aucUnit),
    ratio(s.vanillaKv.aucTokens, s.mementoKv.aucTokens),
  ]);
  return htmlTable(head, rows, {
    className: "table2",
    caption:
      "Block masking vs full attention on the same responses (simulated, keepLastNBlocks 0; means over responses)",
  });
}

function problemsTable(stats: readonly RunStats[]): string {
  const ids: string[] = [];
  const seen = new Set<string>();
  for (const s of stats) {
    for (const p of s.perProblem) {
      if (!seen.has(p.id)) {
        seen.add(p.id);
        ids.push(p.id);
      }
    }
  }
  const maps = stats.map((s) => new Map(s.perProblem.map((p) => [p.id, p])));
  const head: Cell[] = ["problem", ...stats.flatMap((s) => [`${s.label}: correct`, `${s.label}: peak KV`])];
  const rows: Cell[][] = ids.map((id) => [
    { text: id, className: "left" },
    ...maps.flatMap((m) => {
      const p = m.get(id);
      if (!p) return ["–", "–"];
      const failed = p.samples - p.completed;
      return [`${p.correct}/${p.completed}${failed ? ` (${failed} failed)` : ""}`, formatNumber(p.peakTokens, 4)];
    }),
  ]);
  return htmlTable(head, rows, { className: "problems" });
}

function runsTable(stats: readonly RunStats[], runs: readonly LoadedRun[]): string {
  const head: Cell[] = [
    "run",
    "directory",
    "endpoint",
    "benchmark",
    "sampling",
    "extra body",
    "architecture",
    "started",
    "generations",
    "errors",
  ];
  const rows: Cell[][] = stats.map((s, i) => {
    const m = s.manifest;
    const sp = m.sampling;
    return [
      { html: `${runDot(i)}${escapeHtml(s.label)}` },
      { text: runs[i].dir, className: "left" },
      { text: m.endpoint, className: "left" },
      { text: m.benchmark, className: "left" },
      {
        text: `T=${sp.temperature} top-p=${sp.top_p} top-k=${sp.top_k} max=${sp.max_tokens}${sp.seed !== undefined ? ` seed=${sp.seed}` : ""}`,
        className: "left",
      },
      { text: m.extraBody ? JSON.stringify(m.extraBody) : "–", className: "left" },
      m.architecture,
      m.startedAt,
      String(s.generations),
      String(s.errors),
    ];
  });
  return htmlTable(head, rows, { className: "runs" });
}

/** true when the options name this run as full attention; undefined lets the manifest decide. */
function forcedFull(r: LoadedRun, opts: ReportOptions): true | undefined {
  const names = opts.fullAttention ?? [];
  return names.includes(r.manifest.label) || names.some((d) => resolve(d) === r.dir) ? true : undefined;
}

/**
 * maj@k for k = 1..n, one line per run with more than one sample per problem; a run with one sample has only
 * maj@1 = pass@1, which a lone dot would only repeat, so it is named in a note instead of drawn.
 */
function majorityVoteChart(stats: readonly RunStats[]): string {
  const drawn = stats.map((s, i) => ({ s, i })).filter(({ s }) => s.n > 1 && s.scoredProblems > 0);
  const single = stats.filter((s) => s.n <= 1).map((s) => s.label);
  const note = single.length
    ? `<p class="note">maj@k needs more than one sample per problem: ${escapeHtml(single.join(", "))} ` +
      `${single.length > 1 ? "have" : "has"} one (maj@1 = pass@1, in the table).</p>`
    : "";
  if (drawn.length === 0) return note;
  const chart = lineChart(
    drawn.map(({ s, i }) => ({
      name: s.label,
      points: s.majAtK.map((v, k) => [k + 1, v * 100] as [number, number]),
      color: colorAt(i),
      markers: true,
    })),
    {
      title: "Majority vote accuracy",
      width: 560,
      height: 300,
      x: {
        label: "k (samples voting)",
        min: 1,
        max: Math.max(...drawn.map(({ s }) => s.n)),
        format: (v) => (Number.isInteger(v) ? String(v) : ""),
      },
      y: { label: "maj@k (%)", min: 0, max: 100 },
      legend: true,
    },
  );
  return chart + note;
}

/**
 * Accuracy vs mean peak KV: one dot per run and, for a run that evicted blocks, a dashed segment to the same
 * accuracy at its simulated full-attention peak. Names go in the legend at the top of the chart, never beside a
 * dot (a label beside a dot near the right edge ran off the chart).
 */
function accuracyVsKvChart(stats: readonly RunStats[]): string {
  const series: Series[] = [];
  stats.forEach((s, i) => {
    if (s.scoredProblems === 0) return;
    const y = s.pass1 * 100;
    series.push({ name: s.label, points: [[s.kv.peakTokens, y]], color: colorAt(i), markers: true });
    if (s.kvMode === "memento" && s.vanillaKv.peakTokens > s.mementoKv.peakTokens) {
      series.push({
        name: `${s.label}, full attention (sim.)`,
        points: [
          [s.kv.peakTokens, y],
          [s.vanillaKv.peakTokens, y],
        ],
        color: colorAt(i),
        dashed: true,
        markers: true,
      });
    }
  });
  const maxX = Math.max(0, ...series.flatMap((x) => x.points.map((p) => p[0])));
  return lineChart(series, {
    title: "Accuracy vs peak KV",
    width: 560,
    height: 300,
    // Headroom past the largest peak, so its marker sits inside the plot.
    x: { label: "mean peak KV (tokens)", min: 0, max: maxX > 0 ? maxX * 1.1 : 1 },
    y: { label: "pass@1 (%)", min: 0, max: 100 },
    legend: true,
  });
}

/**
 * What makes a comparison of these runs shaky, one sentence each: failed generations (not scored), runs over
 * other problems (Δ pass@1 is paired over the common ones), other sample counts (maj@n and pass@n differ in n).
 */
export function comparisonWarnings(stats: readonly RunStats[]): string[] {
  const out: string[] = [];
  for (const s of stats) {
    if (s.errors > 0)
      out.push(
        `${s.label}: ${s.errors} of ${s.generations} generations failed and are not scored; ` +
          `rerun \`memento eval run\` into ${s.dir} to retry them`,
      );
  }
  if (stats.length < 2) return out;
  const base = stats[0];
  const baseIds = new Set(base.perProblem.map((p) => p.id));
  for (const s of stats.slice(1)) {
    const common = s.perProblem.filter((p) => baseIds.has(p.id)).length;
    if (common !== s.problems || common !== base.problems)
      out.push(
        `${s.label} covers ${s.problems} problems and ${base.label} ${base.problems}, ${common} in common: ` +
          `Δ pass@1 is over the common problems, the other columns are not comparable`,
      );
  }
  const ns = new Set(stats.map((s) => s.n));
  if (ns.size > 1)
    out.push(
      `samples per problem differ (${stats.map((s) => `${s.label} ${s.n}`).join(", ")}): ` +
        `maj@k and pass@k of different k are not comparable`,
    );
  return out;
}

/** Builds the report HTML from loaded runs. Deterministic for the same input. */
export function renderReport(runs: readonly LoadedRun[], opts: ReportOptions = {}): string {
  if (runs.length === 0) throw new UserError("no runs to report");
  const stats = runs.map((r) => summariseRun(r, { fullAttention: forcedFull(r, opts) }));
  const title = opts.title ?? `Memento evaluation: ${stats.map((s) => s.label).join(" vs ")}`;
  const warnings = [...runs.flatMap((r) => r.warnings), ...comparisonWarnings(stats)];
  const benchmarks = [...new Set(runs.map((r) => r.manifest.benchmark))];
  const archs = [...new Set(runs.map((r) => r.manifest.architecture))];

  const majChart = majorityVoteChart(stats);
  const cdf = cdfChart(
    stats.map((s, i) => ({ name: s.label, values: s.compression, color: colorAt(i) })),
    {
      title: "Compression ratio CDF (memento / block tokens, per block)",
      width: 560,
      height: 300,
      x: { label: "compression ratio", min: 0 },
      y: { label: "fraction of blocks" },
    },
  );
  const scatter = accuracyVsKvChart(stats);

  const body = [
    `<header><h1>${escapeHtml(title)}</h1>`,
    `<p class="note">Benchmark: ${escapeHtml(benchmarks.join(", "))} · KV bytes for ${escapeHtml(archs.join(", "))} · ${runs.length} run${runs.length > 1 ? "s" : ""}. ` +
      `pass@1 is the mean over each problem's completed generations (failed ones are not scored), averaged over problems (SE over problems); maj@k is the expected majority-vote accuracy over k-subsets of the samples (ties split evenly; src/eval/metrics.ts); ` +
      `KV numbers come from replaying each response through the block-masking simulator.</p></header>`,
    warnings.length ? `<div class="warn">${warnings.map((w) => escapeHtml(w)).join("<br>")}</div>` : "",
    `<section id="table"><h2>Accuracy and KV (Table 1)</h2>${tableOne(stats)}${tableTwo(stats)}</section>`,
    `<section id="sawtooth"><h2>KV cache per problem</h2><p class="note">Resident KV tokens (prompt included) after each output token for one sample per problem: the sawtooth falls each time a block is evicted after its memento; the dashed line is the same response under full attention.</p>${sawtoothSection(runs, stats, opts)}</section>`,
    `<section id="plots"><h2>Compression, majority vote, accuracy vs memory</h2><div class="charts">` +
      `<figure id="cdf">${cdf}</figure><figure id="majk">${majChart}</figure><figure id="scatter">${scatter}</figure></div></section>`,
    `<section id="problems"><h2>Per problem</h2><details><summary>${stats[0].problems} problems</summary>${problemsTable(stats)}</details></section>`,
    `<section id="runs"><h2>Runs</h2>${runsTable(stats, runs)}</section>`,
  ].join("\n");
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(
    title,
  )}</title><style>${CSS}</style></head><body>\n${body}\n</body></html>\n`;
}

/** Fills in missing `kv` of successful generations (see ReportOptions.fillKv). Returns how many were filled. */
export function fillMissingKv(run: LoadedRun, fill: NonNullable<ReportOptions["fillKv"]>): number {
  let filled = 0;
  let arch: KvArchitecture | undefined;
  for (const g of run.generations) {
    if (g.status !== "ok" || g.kv || g.response === undefined) continue;
    arch ??= fill.architecture(run.manifest.architecture);
    g.kv = computeGenerationKv(g.response, { tokenizer: fill.tokenizer, architecture: arch });
    filled++;
  }
  if (filled)
    run.warnings.push(
      `${run.dir}: KV computed here for ${filled} generation${filled > 1 ? "s" : ""} stored without it (prompt not counted)`,
    );
  return filled;
}

/** Loads the runs, renders the report and writes it to `out`. */
export function writeReport(
  dirs: readonly string[],
  out: string,
  opts: ReportOptions = {},
): { out: string; runs: RunStats[]; bytes: number; warnings: string[] } {
  if (dirs.length === 0) throw new UserError("give at least one run directory");
  const runs = dirs.map((d) => loadRun(d));
  if (opts.fillKv) for (const r of runs) fillMissingKv(r, opts.fillKv);
  const html = renderReport(runs, opts);
  try {
    writeFileSync(out, html);
  } catch (e) {
    throw new UserError(`${out}: cannot write report (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const stats = runs.map((r) => summariseRun(r, { fullAttention: forcedFull(r, opts) }));
  return {
    out,
    runs: stats,
    bytes: Buffer.byteLength(html),
    warnings: [...runs.flatMap((r) => r.warnings), ...comparisonWarnings(stats)],
  };
}
