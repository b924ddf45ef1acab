/**
 * Answer equivalence: equal after normalisation (normalize.ts) OR symbolically equal (LaTeX parsed by
 * @cortex-js/compute-engine).
 *
 * Order of tests for two answers:
 *   1. normalised strings identical -> equal ("normalized");
 *   2. structures (normalize.ts parseStructure) compared: tuples/intervals item by item with identical
 *      brackets, sets/solution lists as multisets (a bipartite matching); a collection never equals a scalar;
 *   3. scalar items: identical strings or identical exact rationals (`0.5` = `\frac{1}{2}` = `1/2`), else
 *      symbolic comparison of the two LaTeX strings:
 *        - constants (no free variables): two integers are compared exactly (`2^{64}` vs its value); otherwise
 *          both are evaluated with N(), equal when real and imaginary parts agree within 1e-9 relative
 *          (1e-12 absolute near zero); non-finite values only when structurally equal;
 *        - with variables: `simplify(a - b)` is 0, else both are evaluated at 6 fixed points (same values for
 *          the same variable names): equal when at least 2 points are finite and all finite points agree,
 *          different when one point disagrees;
 *        - equations `l = r` compare side by side (or swapped); anything unparsable is "unknown" = not equal.
 *
 * Time bound. The compute engine is synchronous and some inputs are slow (`100000!` takes ~2.3 s, big
 * power towers allocate huge bignums). Two modes:
 *   - "worker" (default): the symbolic part runs in ONE persistent worker thread (spawned lazily, ~0.2 s
 *     once, including loading the engine); each check's batch of comparisons gets `timeoutMs` (default
 *     5000 ms, the paper's 5 s). On timeout the worker is terminated (and respawned lazily for the next
 *     check) and the pair counts as not equal. Checks are queued and run one at a time in the worker, and
 *     the clock starts when a batch is sent, not when it is queued. Measured overhead: ~0.6 ms per
 *     round trip, comparable to the comparison itself, so the worker is the default. The worker is
 *     unref'd while idle (it never keeps the process alive); `closeEquivalenceWorker()` ends it.
 *   - "inline": runs in the calling thread after a static complexity guard (input length <= maxLength,
 *     no factorial of a number >= 1000, no integer exponent >= 10^5, no power towers `a^{b^{c}}`, at most
 *     maxNodes parsed nodes). Inputs failing the guard are "unknown" (not equal). No hard time bound.
 *   - "off": no symbolic comparison at all (normalisation and exact rationals only).
 */

import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { normalizeAnswer, parseStructure, rationalValue, type AnswerStructure } from "./normalize.js";

export type EquivalenceMode = "worker" | "inline" | "off";

export interface EquivalenceOptions {
  /** Default "worker". */
  mode?: EquivalenceMode;
  /** Time budget of one check's symbolic comparisons in worker mode. Default 5000 ms. */
  timeoutMs?: number;
  /** Relative tolerance for numeric agreement. Default 1e-9. */
  relTol?: number;
  /** LaTeX longer than this (per side) is not compared symbolically. Default 1000 characters. */
  maxLength?: number;
}

export type EquivalenceMethod = "normalized" | "rational" | "structure" | "symbolic" | "numeric" | "none";

export interface EquivalenceResult {
  equal: boolean;
  method: EquivalenceMethod;
  /** Human-readable reason (which test decided, timeouts, parse failures). */
  detail: string;
  /** True when the symbolic budget ran out (the answer was then judged by the other tests only). */
  timedOut?: boolean;
}

/** Verdict of one symbolic comparison. */
export interface SymbolicVerdict {
  verdict: "equal" | "different" | "unknown";
  method: "structural" | "symbolic" | "numeric" | "points" | "none";
  detail?: string;
}

/**
 * The part of @cortex-js/compute-engine's API that this module uses. The package's own declarations do not
 * resolve under NodeNext (extensionless relative imports) and it is loaded by file URL, so it is described here.
 */
export interface SymbolicExpression {
  readonly json: unknown;
  readonly isValid: boolean;
  readonly operator: string;
  readonly ops: ReadonlyArray<SymbolicExpression> | null;
  readonly unknowns: ReadonlyArray<string>;
  readonly isInteger: boolean | undefined;
  readonly isNumberLiteral: boolean;
  readonly re: number;
  readonly im: number;
  is(rhs: unknown): boolean;
  isSame(rhs: SymbolicExpression): boolean;
  subs(sub: Record<string, number>): SymbolicExpression;
  simplify(): SymbolicExpression;
  evaluate(): SymbolicExpression;
  N(): SymbolicExpression;
}

/** A ComputeEngine instance, as far as this module uses it. */
export interface SymbolicEngine {
  parse(latex: string): SymbolicExpression;
  box(expr: unknown): SymbolicExpression;
}

export interface CoreOptions {
  relTol: number;
  absTol: number;
  maxLength: number;
  /** Apply the static complexity guard (inline mode). */
  guard: boolean;
  maxNodes: number;
}

/**
 * The symbolic comparison itself. SELF-CONTAINED ON PURPOSE: it is also shipped to the worker thread as
 * source text (`Function.prototype.toString`), so it must not reference anything outside its body
 * (no imports, no module-level helpers); `ce` is a ComputeEngine instance.
 */
export function symbolicCompare(ce: SymbolicEngine, a: string, b: string, opt: CoreOptions): SymbolicVerdict {
  const unknown = (detail: string): SymbolicVerdict => ({ verdict: "unknown", method: "none", detail });
  if (a.length > opt.maxLength || b.length > opt.maxLength) return unknown("too long for symbolic comparison");
  if (opt.guard) {
    for (const s of [a, b]) {
      if (/(\d{4,}|\{\d{4,}\})\s*!/.test(s)) return unknown("guard: large factorial");
      if (/\^\s*\{?\s*\d{6,}/.test(s)) return unknown("guard: huge exponent");
      if (/\^\s*\{[^{}]*\^/.test(s) || /\^\s*\d+\s*\^/.test(s)) return unknown("guard: power tower");
    }
  }
  const countNodes = (j: unknown): number =>
    Array.isArray(j) ? j.reduce((n: number, x: unknown) => n + countNodes(x), 1) : 1;
  let A: SymbolicExpression;
  let B: SymbolicExpression;
  try {
    A = ce.parse(a);
    B = ce.parse(b);
  } catch (e) {
    return unknown(`parse error: ${String(e)}`);
  }
  if (!A.isValid || !B.isValid) return unknown("not valid LaTeX for the engine");
  if (opt.guard && countNodes(A.json) + countNodes(B.json) > opt.maxNodes)
    return unknown("guard: expression too large");
  const close = (x: number, y: number): boolean => {
    if (x === y) return true;
    const scale = Math.max(Math.abs(x), Math.abs(y));
    return Math.abs(x - y) <= Math.max(opt.relTol * scale, opt.absTol);
  };
  const COLLECTIONS = ["Tuple", "List", "Set", "Interval", "Sequence", "Delimiter", "Pair", "Triple", "Single"];
  const RELATIONS = ["Less", "LessEqual", "Greater", "GreaterEqual", "NotEqual", "Element", "And", "Or", "Not"];

  const compare = (X: SymbolicExpression, Y: SymbolicExpression, depth: number): SymbolicVerdict => {
    const hx = X.operator;
    const hy = Y.operator;
    if (hx === "Equal" || hy === "Equal") {
      if (hx !== hy || depth > 0) return unknown("equation against non-equation");
      const [xl, xr] = X.ops!;
      const [yl, yr] = Y.ops!;
      const direct = [compare(xl, yl, 1), compare(xr, yr, 1)];
      if (direct.every((v) => v.verdict === "equal"))
        return { verdict: "equal", method: "symbolic", detail: "equation sides" };
      const swapped = [compare(xl, yr, 1), compare(xr, yl, 1)];
      if (swapped.every((v) => v.verdict === "equal"))
        return { verdict: "equal", method: "symbolic", detail: "equation sides swapped" };
      return unknown("equations differ or undecided");
    }
    if (COLLECTIONS.includes(hx) || COLLECTIONS.includes(hy)) return unknown("collection (handled by structure)");
    if (RELATIONS.includes(hx) || RELATIONS.includes(hy)) {
      return X.isSame(Y) ? { verdict: "equal", method: "structural" } : unknown("relation");
    }
    if (typeof X.json === "string" && /^'/.test(X.json)) return unknown("text");
    if (typeof Y.json === "string" && /^'/.test(Y.json)) return unknown("text");
    if (X.isSame(Y)) return { verdict: "equal", method: "structural" };
    const vars: string[] = [...new Set<string>([...(X.unknowns ?? []), ...(Y.unknowns ?? [])])].sort();
    if (vars.length === 0) {
      if (X.isInteger === true && Y.isInteger === true) {
        // Exact integer arithmetic: 2^{64} and 18446744073709551615 differ although within 1e-9.
        try {
          const d = ce.box(["Subtract", X, Y]).evaluate();
          if (d.is(0)) return { verdict: "equal", method: "symbolic", detail: "exact integers" };
          if (d.isNumberLiteral) return { verdict: "different", method: "symbolic", detail: "exact integers differ" };
        } catch {
          // fall through to the numeric comparison
        }
      }
      const nx = X.N();
      const ny = Y.N();
      const xr = nx.re;
      const xi = nx.im;
      const yr = ny.re;
      const yi = ny.im;
      if ([xr, xi, yr, yi].some((v) => typeof v !== "number" || Number.isNaN(v))) {
        return nx.isSame(ny) ? { verdict: "equal", method: "structural" } : unknown("not a number");
      }
      if (![xr, xi, yr, yi].every(Number.isFinite)) {
        if (nx.isSame(ny) || JSON.stringify(nx.json) === JSON.stringify(ny.json))
          return { verdict: "equal", method: "structural" };
        const inf = (v: number) => v === Infinity || v === -Infinity;
        const xIsInf =
          hx === "PositiveInfinity" ||
          hx === "NegativeInfinity" ||
          X.json === "PositiveInfinity" ||
          X.json === "NegativeInfinity";
        const yIsInf = Y.json === "PositiveInfinity" || Y.json === "NegativeInfinity";
        if (xIsInf && yIsInf) return { verdict: X.json === Y.json ? "equal" : "different", method: "structural" };
        if (inf(xr) !== inf(yr) && (xIsInf || yIsInf)) return { verdict: "different", method: "numeric" };
        return unknown("values beyond double range");
      }
      return close(xr, yr) && close(xi, yi)
        ? { verdict: "equal", method: "numeric", detail: `${xr}${xi ? `+${xi}i` : ""}` }
        : {
            verdict: "different",
            method: "numeric",
            detail: `${xr}${xi ? `+${xi}i` : ""} vs ${yr}${yi ? `+${yi}i` : ""}`,
          };
    }
    if (vars.length > 8) return unknown("too many variables");
    try {
      const d = ce.box(["Subtract", X, Y]).simplify();
      if (d.json === 0 || d.is?.(0) === true)
        return { verdict: "equal", method: "symbolic", detail: "difference simplifies to 0" };
    } catch {
      // fall through to numeric points
    }
    const POINTS = [0.5377, 1.8339, -2.2588, 0.8622, 0.3188, -1.3077, 2.7694, -0.4336, 3.5784, 2.7694, -1.3499, 0.7254];
    let agree = 0;
    for (let p = 0; p < 6; p++) {
      const sub: Record<string, number> = {};
      vars.forEach((v, i) => {
        sub[v] = POINTS[(p * 3 + i * 5) % POINTS.length] + i * 0.1 + p * 0.01;
      });
      let vx: SymbolicExpression;
      let vy: SymbolicExpression;
      try {
        vx = X.subs(sub).N();
        vy = Y.subs(sub).N();
      } catch {
        continue;
      }
      const r = [vx.re, vx.im, vy.re, vy.im];
      if (!r.every((v) => typeof v === "number" && Number.isFinite(v))) continue;
      if (!(close(r[0], r[2]) && close(r[1], r[3]))) {
        return { verdict: "different", method: "points", detail: `differ at ${JSON.stringify(sub)}` };
      }
      agree++;
    }
    if (agree >= 2) return { verdict: "equal", method: "points", detail: `agree at ${agree} points` };
    return unknown("too few finite sample points");
  };
  try {
    return compare(A, B, 0);
  } catch (e) {
    return unknown(`engine error: ${String(e)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Compute engine loading (lazy) and the worker.

const DEFAULT_TIMEOUT_MS = 5000;
const WORKER_START_TIMEOUT_MS = 30_000;

function enginePath(): string {
  // The package's CJS bundle exports nothing (0.27.0), so the ESM bundle is imported by its file URL.
  const req = createRequire(import.meta.url);
  const main = req.resolve("@cortex-js/compute-engine");
  return path.join(path.dirname(main), "compute-engine.min.esm.js");
}

let inlineEngine: Promise<SymbolicEngine> | null = null;

/** The in-thread ComputeEngine (loaded on first use). */
export function loadComputeEngine(): Promise<SymbolicEngine> {
  inlineEngine ??= import(pathToFileURL(enginePath()).href).then(
    (m: { ComputeEngine: new () => SymbolicEngine }) => new m.ComputeEngine(),
  );
  return inlineEngine;
}

interface Job {
  pairs: [string, string][];
  opt: CoreOptions;
  timeoutMs: number;
  resolve: (r: { results: SymbolicVerdict[] | null; timedOut: boolean; error?: string }) => void;
}

const WORKER_SOURCE = (coreSource: string) => `
const { parentPort, workerData } = require("node:worker_threads");
const __name = (f) => f; // esbuild keepNames helper, should the core have been transpiled with it
const core = (${coreSource});
import(workerData.engineUrl).then((m) => {
  const ce = new m.ComputeEngine();
  try { ce.parse("1+1").N(); } catch {}
  parentPort.on("message", (msg) => {
    const results = msg.pairs.map(([a, b]) => {
      try { return core(ce, a, b, msg.opt); }
      catch (e) { return { verdict: "unknown", method: "none", detail: "engine error: " + String(e) }; }
    });
    parentPort.postMessage({ id: msg.id, results });
  });
  parentPort.postMessage({ ready: true });
}, (e) => parentPort.postMessage({ fatal: String(e) }));
`;

/** A message posted by the worker (WORKER_SOURCE): `ready`, `fatal`, or the `results` of batch `id`. */
interface WorkerMessage {
  ready?: boolean;
  fatal?: string;
  id?: number;
  results?: SymbolicVerdict[];
}

class SymbolicWorker {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private queue: Job[] = [];
  private busy = false;
  private nextId = 1;
  /** Number of (re)spawns, for tests and diagnostics. */
  spawns = 0;

  private spawn(): Promise<void> {
    const w = new Worker(WORKER_SOURCE(symbolicCompare.toString()), {
      eval: true,
      workerData: { engineUrl: pathToFileURL(enginePath()).href },
    });
    this.spawns++;
    this.worker = w;
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("symbolic worker did not start")), WORKER_START_TIMEOUT_MS);
      const onMsg = (m: WorkerMessage | null | undefined) => {
        if (m?.ready) {
          clearTimeout(timer);
          w.off("message", onMsg);
          resolve();
        } else if (m?.fatal) {
          clearTimeout(timer);
          reject(new Error(m.fatal));
        }
      };
      w.on("message", onMsg);
      w.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    w.on("error", () => {
      // Reported to the running job through "exit"; a listener must exist or the error would crash us.
    });
    w.on("exit", () => {
      if (this.worker === w) {
        this.worker = null;
        this.ready = null;
      }
    });
    return this.ready;
  }

  run(
    pairs: [string, string][],
    opt: CoreOptions,
    timeoutMs: number,
  ): Promise<{ results: SymbolicVerdict[] | null; timedOut: boolean; error?: string }> {
    return new Promise((resolve) => {
      this.queue.push({ pairs, opt, timeoutMs, resolve });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    const job = this.queue.shift();
    if (!job) {
      this.worker?.unref();
      return;
    }
    this.busy = true;
    try {
      if (!this.worker || !this.ready) this.spawn();
      const w = this.worker!;
      w.ref();
      try {
        await this.ready;
      } catch (e) {
        await this.kill();
        job.resolve({ results: null, timedOut: false, error: `symbolic worker failed to start: ${String(e)}` });
        return;
      }
      const id = this.nextId++;
      const outcome = await new Promise<{ results: SymbolicVerdict[] | null; timedOut: boolean; error?: string }>(
        (resolve) => {
          const timer = setTimeout(() => {
            cleanup();
            resolve({ results: null, timedOut: true });
          }, job.timeoutMs);
          const onMsg = (m: WorkerMessage | null | undefined) => {
            if (m?.id !== id) return;
            cleanup();
            resolve({ results: m.results as SymbolicVerdict[], timedOut: false });
          };
          const onExit = () => {
            cleanup();
            resolve({ results: null, timedOut: false, error: "symbolic worker exited" });
          };
          const cleanup = () => {
            clearTimeout(timer);
            w.off("message", onMsg);
            w.off("exit", onExit);
          };
          w.on("message", onMsg);
          w.on("exit", onExit);
          w.postMessage({ id, pairs: job.pairs, opt: job.opt });
        },
      );
      if (outcome.timedOut || outcome.error) await this.kill();
      job.resolve(outcome);
    } finally {
      this.busy = false;
      void this.pump();
    }
  }

  async kill(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.ready = null;
    if (w) await w.terminate();
  }

  async close(): Promise<void> {
    await this.kill();
  }
}

let sharedWorker: SymbolicWorker | null = null;

function worker(): SymbolicWorker {
  sharedWorker ??= new SymbolicWorker();
  return sharedWorker;
}

/** Terminate the shared symbolic worker (a later check starts a new one). */
export async function closeEquivalenceWorker(): Promise<void> {
  await sharedWorker?.close();
}

/** How many times the shared worker has been started (diagnostics; grows after each timeout). */
export function equivalenceWorkerSpawns(): number {
  return sharedWorker?.spawns ?? 0;
}

// ---------------------------------------------------------------------------------------------------
// Structure comparison.

function coreOptions(o: EquivalenceOptions, guard: boolean): CoreOptions {
  return { relTol: o.relTol ?? 1e-9, absTol: 1e-12, maxLength: o.maxLength ?? 1000, guard, maxNodes: 400 };
}

function scalarQuick(a: string, b: string): boolean | null {
  if (a === b) return true;
  const ra = rationalValue(a);
  const rb = rationalValue(b);
  if (ra && rb) return ra.num === rb.num && ra.den === rb.den;
  return null;
}

type PairLookup = (a: string, b: string) => boolean;

/** Compare two structures; scalars that need the engine are looked up with `sym`. */
function compareStructures(x: AnswerStructure, y: AnswerStructure, sym: PairLookup): boolean {
  if (x.kind === "scalar" && y.kind === "scalar") return scalarQuick(x.value, y.value) ?? sym(x.value, y.value);
  if (x.kind === "ordered" && y.kind === "ordered") {
    if (x.open !== y.open || x.close !== y.close || x.items.length !== y.items.length) return false;
    return x.items.every((it, i) => compareStructures(it, y.items[i], sym));
  }
  if (x.kind === "unordered" && y.kind === "unordered") {
    if (x.items.length !== y.items.length) return false;
    // Bipartite matching (augmenting paths); item counts are small.
    const n = x.items.length;
    const adj = x.items.map((xi) => y.items.map((yj) => compareStructures(xi, yj, sym)));
    const matchY = new Array<number>(n).fill(-1);
    const tryAssign = (i: number, seen: boolean[]): boolean => {
      for (let j = 0; j < n; j++) {
        if (!adj[i][j] || seen[j]) continue;
        seen[j] = true;
        if (matchY[j] < 0 || tryAssign(matchY[j], seen)) {
          matchY[j] = i;
          return true;
        }
      }
      return false;
    };
    for (let i = 0; i < n; i++) if (!tryAssign(i, new Array<boolean>(n).fill(false))) return false;
    return true;
  }
  return false;
}

/** All scalar pairs a structure comparison might ask the engine about. */
function collectPairs(x: AnswerStructure, y: AnswerStructure, out: Map<string, [string, string]>): void {
  if (x.kind === "scalar" && y.kind === "scalar") {
    if (scalarQuick(x.value, y.value) === null) out.set(JSON.stringify([x.value, y.value]), [x.value, y.value]);
    return;
  }
  if (x.kind === "ordered" && y.kind === "ordered") {
    if (x.open !== y.open || x.close !== y.close || x.items.length !== y.items.length) return;
    x.items.forEach((it, i) => {
      collectPairs(it, y.items[i], out);
    });
    return;
  }
  if (x.kind === "unordered" && y.kind === "unordered") {
    if (x.items.length !== y.items.length) return;
    for (const xi of x.items) for (const yj of y.items) collectPairs(xi, yj, out);
  }
}

/** Equal after normalisation and exact rationals only (no engine); synchronous. */
export function equalByNormalization(a: string, b: string): boolean {
  const na = normalizeAnswer(a);
  const nb = normalizeAnswer(b);
  if (na === "" || nb === "") return false;
  if (na === nb) return true;
  return compareStructures(parseStructure(na), parseStructure(nb), () => false);
}

/**
 * Are two math answers equivalent? Equal after normalisation OR symbolically equal; see the module
 * comment for the order of tests, the tolerance and the time bound.
 */
export async function isEquivalent(a: string, b: string, options: EquivalenceOptions = {}): Promise<EquivalenceResult> {
  const mode = options.mode ?? "worker";
  const na = normalizeAnswer(a);
  const nb = normalizeAnswer(b);
  if (na === "" || nb === "") return { equal: false, method: "none", detail: "empty answer" };
  if (na === nb) return { equal: true, method: "normalized", detail: `both normalise to ${na}` };
  const sa = parseStructure(na);
  const sb = parseStructure(nb);
  const quick = compareStructures(sa, sb, () => false);
  if (quick) {
    const method: EquivalenceMethod =
      sa.kind !== "scalar" || sb.kind !== "scalar" ? "structure" : sa.value === sb.value ? "normalized" : "rational";
    return { equal: true, method, detail: `${na} ~ ${nb}` };
  }
  const pairs = new Map<string, [string, string]>();
  collectPairs(sa, sb, pairs);
  if (pairs.size === 0 || mode === "off") {
    return {
      equal: false,
      method: "none",
      detail: sa.kind !== sb.kind ? `structures differ (${sa.kind} vs ${sb.kind})` : `${na} vs ${nb}`,
    };
  }
  const list = [...pairs.values()];
  let verdicts: SymbolicVerdict[];
  let timedOut = false;
  let error: string | undefined;
  if (mode === "inline") {
    const ce = await loadComputeEngine();
    const opt = coreOptions(options, true);
    verdicts = list.map(([x, y]) => symbolicCompare(ce, x, y, opt));
  } else {
    const r = await worker().run(list, coreOptions(options, false), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    timedOut = r.timedOut;
    error = r.error;
    verdicts = r.results ?? list.map(() => ({ verdict: "unknown", method: "none" }) as SymbolicVerdict);
  }
  const table = new Map<string, SymbolicVerdict>();
  list.forEach(([x, y], i) => {
    table.set(JSON.stringify([x, y]), verdicts[i]);
  });
  const equal = compareStructures(sa, sb, (x, y) => table.get(JSON.stringify([x, y]))?.verdict === "equal");
  if (timedOut)
    return {
      equal,
      method: "none",
      detail: `symbolic comparison timed out after ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`,
      timedOut,
    };
  if (error) return { equal, method: "none", detail: error };
  if (sa.kind === "scalar" && sb.kind === "scalar") {
    const v = verdicts[0];
    const method: EquivalenceMethod = v.method === "numeric" || v.method === "points" ? "numeric" : "symbolic";
    return {
      equal,
      method: equal ? method : "none",
      detail: `${na} vs ${nb}: ${v.verdict} (${v.method}${v.detail ? `: ${v.detail}` : ""})`,
    };
  }
  return { equal, method: equal ? "structure" : "none", detail: `${na} vs ${nb} item by item` };
}
