/**
 * `memento bench soak`: a bounded soak test of an OpenAI-compatible server on loopback. Concurrent clients send
 * a seeded mix of good requests (chat and completions, streaming or not), requests they abort halfway, and
 * requests that must be refused (malformed JSON, bad parameters, oversized prompts and bodies); a sampler reads
 * the server's KV in use and RSS from /metrics; at the end the server must be idle with no KV held.
 *
 * This module owns the load, the checks and the report; it never builds a server (bench sits below server in
 * the layers): the caller starts one and hands over a SoakTarget.
 *
 * Policy:
 *   1. Loopback only: a target whose host is not 127.0.0.1, ::1 or localhost is refused (UserError).
 *   2. Bounded: clients stop starting requests at `durationS` or after `maxRequests`, whichever comes first;
 *      each request has DEFAULT_SOAK_REQUEST_TIMEOUT_MS, after which it counts as an unexpected `timeout`. A
 *      client answered 429 waits the Retry-After it was given, as a polite client does.
 *   3. Expected answers: a good request gets 200 with a well-formed body (a stream ends in `data: [DONE]` with
 *      no error event) or 429 queue_full; a request that must be refused gets a 4xx carrying an OpenAI-shaped
 *      error `{error: {message, type, param, code}}`; an abort is the client's own. One exception: an oversized
 *      body may end `closed-early`, a broken pipe or reset, because fastify answers 413 with `Connection: close`
 *      without reading the rest, and a client still writing can fail its write before it reads the answer
 *      (HTTP allows that early answer). Anything else (a 5xx, a refused good request, an accepted bad one, a
 *      wrong shape, any other connection error) is unexpected.
 *   4. Leaks: after the last request the server has `drainMs` to reach 0 running, 0 waiting and 0 KV cells in
 *      use (/health); cells still held then are leaked.
 *   5. Memory: RSS (the server's process_resident_memory_bytes) is judged after a warm-up of `rssWarmupS`
 *      (JIT, heap sizing: the toy server climbs ~30 MB in its first minute, then stays level) and only when at
 *      least `minJudgedS` of load follow it. Its growth is (median of the last quarter of the judged samples -
 *      median of the first quarter) over the time between the quarters' midpoints, in MB/min; above
 *      `rssSlopeLimitMbPerMin` it is "growing". Medians, because RSS can swing ~30 MB between major
 *      collections under CPU contention (measured): a single sample would judge the collector, not a leak.
 *   6. Crash: the target reports its process gone, or the server stops answering /metrics twice in a row.
 *   7. Pass iff nothing unexpected, no leaked cell or request, no crash and RSS not growing.
 */
import { performance } from "node:perf_hooks";
import { UserError } from "../errors.js";
import { Rng } from "../model/ops.js";
import { median } from "../util/stats.js";

export const DEFAULT_SOAK_DURATION_S = 300;
/** Clients sending at once: above the default soak server's max running, so requests queue and contend. */
export const DEFAULT_SOAK_CONCURRENCY = 8;
export const DEFAULT_SOAK_SEED = 1;
/** `--quick`: a few seconds of the same mix (tests, smoke checks); RSS is then reported, not judged. */
export const QUICK_SOAK_DURATION_S = 5;
export const QUICK_SOAK_CONCURRENCY = 4;
export const QUICK_SOAK_SAMPLE_MS = 250;
/** How often the sampler reads /metrics. */
export const DEFAULT_SOAK_SAMPLE_MS = 1000;
/** How long the server has, after the last request, to free every cell and finish every request. */
export const DEFAULT_SOAK_DRAIN_MS = 10_000;
export const DEFAULT_SOAK_REQUEST_TIMEOUT_MS = 120_000;
/**
 * RSS growth above this (first to last judged quarter, medians) is "growing": 16 MB over the 4 judged minutes
 * of the default soak, at the ~4 requests/s the toy server serves here a leak of ~15 KB per request. Our choice:
 * leak-free soaks measured between -0.9 and +1.35 MB/min, but a ~30 MB collector swing that falls exactly
 * between the two quarters could fake up to ~8 MB/min, so a "growing" verdict on a busy machine deserves a rerun.
 */
export const DEFAULT_SOAK_RSS_SLOPE_LIMIT_MB_PER_MIN = 4;
/** RSS samples of the first seconds of load are warm-up, not judged (policy 5). */
export const DEFAULT_SOAK_RSS_WARMUP_S = 60;
/** Seconds of load after the warm-up below which RSS is reported, not judged. */
export const DEFAULT_SOAK_MIN_JUDGED_S = 60;
/** The soak server's KV budget: small enough that concurrent requests contend and preemption runs. */
export const DEFAULT_SOAK_KV_BUDGET_TOKENS = 320;
/** The soak server's max running and max waiting: below the clients' concurrency, so 429 happens too. */
export const DEFAULT_SOAK_MAX_RUNNING = 4;
export const DEFAULT_SOAK_MAX_WAITING = 4;
/** Most completion tokens of a good request (up to ~3 toy blocks, so blocks are evicted). */
export const DEFAULT_SOAK_MAX_COMPLETION_TOKENS = 256;
/** Longest wait a 429's Retry-After can impose on a client. */
const MAX_RETRY_AFTER_MS = 5000;
/** Size of the oversized body: above fastify's and the server's default body limit of 8 MiB. */
export const OVERSIZED_BODY_BYTES = 9 * 1024 * 1024;

export type RequestKind =
  | "chat"
  | "chat-stream"
  | "completion"
  | "completion-stream"
  | "abort-stream"
  | "abort-wait"
  | "malformed-json"
  | "bad-params"
  | "oversized-prompt"
  | "oversized-body";

/** Relative weights of the mix; the kinds that must be refused are the last four. */
export const SOAK_MIX: ReadonlyArray<readonly [RequestKind, number]> = [
  ["chat", 18],
  ["chat-stream", 18],
  ["completion", 9],
  ["completion-stream", 9],
  ["abort-stream", 12],
  ["abort-wait", 8],
  ["malformed-json", 10],
  ["bad-params", 12],
  ["oversized-prompt", 3],
  ["oversized-body", 1],
];

const KIND_ORDER: readonly RequestKind[] = SOAK_MIX.map(([kind]) => kind);
const MUST_REFUSE: ReadonlySet<RequestKind> = new Set([
  "malformed-json",
  "bad-params",
  "oversized-prompt",
  "oversized-body",
]);

const EXPECTED = ["served", "aborted", "refused", "queue-full", "closed-early"] as const;
const UNEXPECTED = [
  "server-error",
  "refused-good-request",
  "accepted-bad-request",
  "bad-error-shape",
  "broken-response",
  "stream-error",
  "network-error",
  "timeout",
] as const;
export type Outcome = (typeof EXPECTED)[number] | (typeof UNEXPECTED)[number];
const UNEXPECTED_SET: ReadonlySet<Outcome> = new Set(UNEXPECTED);

/** The server under test, started by the caller (in this process or as a child). */
export interface SoakTarget {
  /** Server root on loopback, e.g. http://127.0.0.1:41234 (the API is under /v1). */
  url: string;
  /** The model id requests name. */
  model: string;
  /** Why the server's process is gone, once it is (a child that exited); undefined while it runs. */
  exitReason?(): string | undefined;
}

export interface SoakOptions {
  durationS?: number;
  maxRequests?: number;
  concurrency?: number;
  seed?: number;
  sampleMs?: number;
  drainMs?: number;
  requestTimeoutMs?: number;
  rssSlopeLimitMbPerMin?: number;
  minJudgedS?: number;
  rssWarmupS?: number;
  maxCompletionTokens?: number;
  /** One line every ~10 s while it runs. */
  onProgress?: (line: string) => void;
}

export interface LatencySummary {
  n: number;
  p50Ms: number;
  p99Ms: number;
}

/** What policy 5 judges with: the limit, the warm-up and the least load after it, in seconds. */
export interface RssRule {
  limitMbPerMin: number;
  warmupS: number;
  minJudgedS: number;
}

export interface RssVerdict extends RssRule {
  samples: number;
  /** Median sample of the first and last quarter of the load (policy 5). */
  firstQuarterMedianMb: number;
  lastQuarterMedianMb: number;
  /** Lowest and highest sample of the whole load, for scale. */
  minMb: number;
  maxMb: number;
  slopeMbPerMin: number;
  verdict: "flat" | "growing" | "not-judged";
}

export interface SoakReport {
  url: string;
  model: string;
  seed: number;
  concurrency: number;
  /** Seconds of load (first request to last answer), drain excluded. */
  loadS: number;
  requests: number;
  served: number;
  requestsPerS: number;
  /** Outcome counts per request kind. */
  byKind: Record<string, Record<string, number>>;
  /** Every outcome but `served`, summed over kinds ("errors by kind"). */
  errors: Record<string, number>;
  unexpected: number;
  /** The first few unexpected answers, one line each. */
  unexpectedExamples: string[];
  /** Requests that must be refused, and how many got a 4xx with an OpenAI-shaped error. */
  mustRefuse: { sent: number; refusedWithShape: number; closedEarly: number };
  latency: { served: LatencySummary; refused: LatencySummary };
  kv: {
    peakUsedTokens: number;
    finalUsedTokens: number;
    finalRunning: number;
    finalWaiting: number;
    drainMs: number;
    evictions: number;
    preemptions: number;
  };
  rss: RssVerdict;
  crash?: string;
  failures: string[];
  pass: boolean;
}

interface Answer {
  kind: RequestKind;
  outcome: Outcome;
  latencyMs: number;
  detail?: string;
  /** A 429's Retry-After, in ms: the client waits that long before its next request, as a polite client does. */
  retryAfterMs?: number;
}

/** One /metrics reading, `tMs` after the soak started. */
export interface Sample {
  tMs: number;
  kvUsedTokens: number;
  rssBytes?: number;
  evictions: number;
  preemptions: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

/** Nearest-rank percentile (p in [0, 100]) of unsorted values; 0 for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function summarize(xs: readonly number[]): LatencySummary {
  return { n: xs.length, p50Ms: percentile(xs, 50), p99Ms: percentile(xs, 99) };
}

/** Refuses anything but loopback (policy 1). */
export function requireLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!["127.0.0.1", "[::1]", "::1", "localhost"].includes(host))
    throw new UserError(`soak: ${url} is not on loopback (127.0.0.1, ::1 or localhost)`);
}

/** True when `body` is `{error: {message: string, type: string, param: string|null, code: string|null}}`. */
export function isOpenAiError(body: unknown): boolean {
  const e = (body as { error?: Record<string, unknown> } | null)?.error;
  if (typeof e !== "object" || e === null) return false;
  const nullableString = (v: unknown) => v === null || typeof v === "string";
  return (
    typeof e.message === "string" && typeof e.type === "string" && nullableString(e.param) && nullableString(e.code)
  );
}

/** Values of the unlabelled series of a Prometheus text body (labelled ones are summed per name). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) out.set(m[1], (out.get(m[1]) ?? 0) + v);
  }
  return out;
}

/** RSS verdict of policy 5 over the samples of the load phase (`tMs` from its start). */
export function rssVerdict(samples: readonly Sample[], loadS: number, rule: RssRule): RssVerdict {
  const mb = (b: number) => b / (1024 * 1024);
  const all = samples.filter((s) => s.rssBytes !== undefined).map((s) => mb(s.rssBytes as number));
  const rss = samples.filter((s) => s.rssBytes !== undefined && s.tMs >= rule.warmupS * 1000);
  const none = { firstQuarterMedianMb: 0, lastQuarterMedianMb: 0, slopeMbPerMin: 0 };
  const base = {
    samples: all.length,
    ...rule,
    minMb: all.length > 0 ? Math.min(...all) : 0,
    maxMb: all.length > 0 ? Math.max(...all) : 0,
    ...none,
  };
  if (rss.length < 4) return { ...base, verdict: "not-judged" };
  const t0 = rss[0].tMs;
  const span = rss[rss.length - 1].tMs - t0;
  const quarter = (from: number, to: number) => {
    const qs = rss.filter((s) => s.tMs - t0 >= from * span && s.tMs - t0 <= to * span);
    return { medianMb: median(qs.map((s) => mb(s.rssBytes as number))), midMs: median(qs.map((s) => s.tMs)) };
  };
  const first = quarter(0, 0.25);
  const last = quarter(0.75, 1);
  const minutes = (last.midMs - first.midMs) / 60_000;
  const slope = minutes > 0 ? (last.medianMb - first.medianMb) / minutes : 0;
  const judged = loadS - rule.warmupS >= rule.minJudgedS;
  const verdict = !judged ? "not-judged" : slope > rule.limitMbPerMin ? "growing" : "flat";
  return {
    ...base,
    firstQuarterMedianMb: first.medianMb,
    lastQuarterMedianMb: last.medianMb,
    slopeMbPerMin: slope,
    verdict,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

/** A toy-task prompt (`s=3714 k=5`); any model can read it as text. */
function toyPrompt(rng: Rng): string {
  const digits = Array.from({ length: 4 }, () => rng.int(10)).join("");
  return `s=${digits} k=${1 + rng.int(9)}`;
}

/** Bodies the server must refuse with a 4xx: each breaks one rule of the API. */
function badParamBodies(model: string, prompt: string): object[] {
  const messages = [{ role: "user", content: prompt }];
  return [
    { model, messages, temperature: 5 },
    { model, messages, max_tokens: 0 },
    { model, messages, n: 2 },
    { model, messages, top_p: 0 },
    { model, messages, logprobs: true, top_logprobs: 21 },
    { model, messages, stop: Array.from({ length: 17 }, (_, i) => `s${i}`) },
    { model, messages, block_masking: { keepLastNBlocks: "all" } },
    { model, messages: "not an array" },
    { model, messages: [{ role: "wizard", content: prompt }] },
    { messages },
    { model: `${model}-no-such-model`, messages },
    { model, prompt: { text: prompt } },
    [],
  ];
}

const MALFORMED_JSON = ['{"model": ', "{model: toy}", "not json at all", '{"a": 1}}', '{"messages": [}', ""];

let oversizedBody: { model: string; body: string } | undefined;
/** 9 MiB of JSON, built once per model name. */
function oversized(model: string): string {
  if (oversizedBody?.model !== model)
    oversizedBody = {
      model,
      body: `{"model":${JSON.stringify(model)},"prompt":"${"7".repeat(OVERSIZED_BODY_BYTES)}"}`,
    };
  return oversizedBody.body;
}

interface Planned {
  kind: RequestKind;
  path: string;
  body: string;
  stream: boolean;
  /** Abort after this many SSE events (abort-stream) or milliseconds (abort-wait). */
  abortAfter?: number;
}

function pickKind(rng: Rng): RequestKind {
  const total = SOAK_MIX.reduce((a, [, w]) => a + w, 0);
  let r = rng.next() * total;
  for (const [kind, w] of SOAK_MIX) {
    r -= w;
    if (r < 0) return kind;
  }
  return SOAK_MIX[SOAK_MIX.length - 1][0];
}

/** The next request of one client. `maxModelLen` sizes the oversized prompt. */
function plan(rng: Rng, model: string, maxModelLen: number, maxCompletionTokens: number): Planned {
  const kind = pickKind(rng);
  const prompt = toyPrompt(rng);
  const sampling = {
    max_tokens: 8 + rng.int(Math.max(1, maxCompletionTokens - 7)),
    temperature: rng.next() < 0.5 ? 0 : 0.6,
    seed: rng.int(1 << 30),
  };
  const chat = (stream: boolean) =>
    JSON.stringify({ model, messages: [{ role: "user", content: prompt }], stream, ...sampling });
  const completion = (stream: boolean) => JSON.stringify({ model, prompt, stream, ...sampling });
  const chatPath = "/v1/chat/completions";
  switch (kind) {
    case "chat":
    case "chat-stream":
      return { kind, path: chatPath, body: chat(kind === "chat-stream"), stream: kind === "chat-stream" };
    case "completion":
    case "completion-stream":
      return {
        kind,
        path: "/v1/completions",
        body: completion(kind === "completion-stream"),
        stream: kind !== "completion",
      };
    case "abort-stream":
      return { kind, path: chatPath, body: chat(true), stream: true, abortAfter: 1 + rng.int(8) };
    case "abort-wait":
      return { kind, path: chatPath, body: chat(false), stream: false, abortAfter: 5 + rng.int(300) };
    case "malformed-json":
      return { kind, path: chatPath, body: MALFORMED_JSON[rng.int(MALFORMED_JSON.length)], stream: false };
    case "bad-params": {
      const bodies = badParamBodies(model, prompt);
      return { kind, path: chatPath, body: JSON.stringify(bodies[rng.int(bodies.length)]), stream: false };
    }
    case "oversized-prompt": {
      // " 7" is at least one token in any tokenizer we serve (two in the toy's): past the context for sure.
      const long = `${prompt}${" 7".repeat(maxModelLen + 16)}`;
      return {
        kind,
        path: "/v1/completions",
        body: JSON.stringify({ model, prompt: long, max_tokens: 8 }),
        stream: false,
      };
    }
    case "oversized-body":
      return { kind, path: "/v1/completions", body: oversized(model), stream: false };
  }
}

/** Reads an SSE body; aborts after `abortAfter` events when given. Returns the events' data fields. */
async function readEvents(res: Response, abortAfter: number | undefined, abort: () => void): Promise<string[]> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: string[] = [];
  let buffered = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return events;
    buffered += decoder.decode(value, { stream: true });
    let cut = buffered.indexOf("\n\n");
    while (cut >= 0) {
      const event = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 2);
      if (event.startsWith("data: ")) events.push(event.slice(6));
      cut = buffered.indexOf("\n\n");
    }
    if (abortAfter !== undefined && events.length >= abortAfter) {
      abort();
      await reader.cancel().catch(() => undefined);
      return events;
    }
  }
}

/** Outcome of a 200 to a good request: its body must be well formed (policy 3). */
async function judgeSuccess(p: Planned, res: Response, abort: () => void): Promise<Outcome> {
  if (p.stream) {
    const events = await readEvents(res, p.abortAfter, abort);
    if (p.abortAfter !== undefined && events.length >= p.abortAfter) return "aborted";
    if (events.some((e) => e.startsWith('{"error"'))) return "stream-error";
    return events[events.length - 1] === "[DONE]" ? "served" : "broken-response";
  }
  const body = (await res.json()) as { choices?: Array<{ message?: { content?: unknown }; text?: unknown }> };
  const choice = body.choices?.[0];
  const text = p.path.endsWith("/chat/completions") ? choice?.message?.content : choice?.text;
  return typeof text === "string" ? "served" : "broken-response";
}

/** Sends one planned request and classifies its answer. */
async function send(url: string, p: Planned, timeoutMs: number): Promise<Answer> {
  const controller = new AbortController();
  let ours: "abort" | "timeout" | undefined;
  const abort = () => {
    ours ??= "abort";
    controller.abort();
  };
  const timer = setTimeout(() => {
    ours ??= "timeout";
    controller.abort();
  }, timeoutMs);
  const waitTimer = p.kind === "abort-wait" ? setTimeout(abort, p.abortAfter) : undefined;
  const t0 = performance.now();
  const done = (outcome: Outcome, detail?: string): Answer => ({
    kind: p.kind,
    outcome,
    latencyMs: performance.now() - t0,
    ...(detail !== undefined ? { detail } : {}),
  });
  try {
    const res = await fetch(`${url}${p.path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: p.body,
      signal: controller.signal,
    });
    if (res.status === 200) {
      if (MUST_REFUSE.has(p.kind)) {
        await res.body?.cancel();
        return done("accepted-bad-request", `${p.kind}: 200 to ${p.body.slice(0, 80)}`);
      }
      const outcome = await judgeSuccess(p, res, abort);
      return done(outcome, outcome === "served" || outcome === "aborted" ? undefined : `${p.kind}: ${outcome}`);
    }
    const body: unknown = await res.json().catch(() => undefined);
    const line = `${p.kind}: ${res.status} ${JSON.stringify(body)?.slice(0, 160)}`;
    if (res.status >= 500) return done("server-error", line);
    if (!isOpenAiError(body)) return done("bad-error-shape", line);
    if (res.status === 429) return { ...done("queue-full"), retryAfterMs: retryAfterMs(res) };
    return MUST_REFUSE.has(p.kind) ? done("refused") : done("refused-good-request", line);
  } catch (e) {
    if (ours === "abort") return done("aborted");
    if (ours === "timeout") return done("timeout", `${p.kind}: no answer in ${timeoutMs} ms`);
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    if (p.kind === "oversized-body" && CLOSED_EARLY_CODES.has(cause)) return done("closed-early");
    return done("network-error", `${p.kind}: ${cause}`);
  } finally {
    clearTimeout(timer);
    clearTimeout(waitTimer);
  }
}

/** How a connection the server closed while the client was still sending looks to undici's fetch (policy 3). */
const CLOSED_EARLY_CODES: ReadonlySet<string> = new Set(["EPIPE", "ECONNRESET", "UND_ERR_SOCKET"]);

/** A 429's Retry-After in ms (1 s when absent or unreadable, at most MAX_RETRY_AFTER_MS). */
function retryAfterMs(res: Response): number {
  const s = Number(res.headers.get("retry-after") ?? "1");
  return Number.isFinite(s) && s >= 0 ? Math.min(s * 1000, MAX_RETRY_AFTER_MS) : 1000;
}

// ---------------------------------------------------------------------------------------------------------------
// The soak

async function scrape(url: string, t0: number): Promise<Sample> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const m = parseMetrics(await res.text());
  return {
    tMs: performance.now() - t0,
    kvUsedTokens: m.get("memento_kv_used_tokens") ?? 0,
    rssBytes: m.get("memento_process_resident_memory_bytes"),
    evictions: m.get("memento_evictions_total") ?? 0,
    preemptions: m.get("memento_num_preemptions_total") ?? 0,
  };
}

interface Health {
  running: number;
  waiting: number;
  kv_used_tokens: number;
}

/** Polls /health until the server is idle with no KV held, or `drainMs` passes (policy 4). */
async function drain(url: string, drainMs: number): Promise<{ health: Health; waitedMs: number }> {
  const t0 = performance.now();
  for (;;) {
    const health = (await (await fetch(`${url}/health`)).json()) as Health;
    const waitedMs = performance.now() - t0;
    const idle = health.running === 0 && health.waiting === 0 && health.kv_used_tokens === 0;
    if (idle || waitedMs >= drainMs) return { health, waitedMs };
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Context assumed when the model card does not say (an oversized prompt is then built past it). */
const UNKNOWN_MAX_MODEL_LEN = 32_768;

async function maxModelLenOf(target: SoakTarget): Promise<number> {
  const res = await fetch(`${target.url}/v1/models/${encodeURIComponent(target.model)}`);
  const card = (await res.json()) as { max_model_len?: number };
  return card.max_model_len ?? UNKNOWN_MAX_MODEL_LEN;
}

/** Runs the soak against `target` and returns its report (the caller stops the server). */
export async function runSoak(target: SoakTarget, opts: SoakOptions = {}): Promise<SoakReport> {
  requireLoopback(target.url);
  const durationMs = (opts.durationS ?? DEFAULT_SOAK_DURATION_S) * 1000;
  const concurrency = opts.concurrency ?? DEFAULT_SOAK_CONCURRENCY;
  const seed = opts.seed ?? DEFAULT_SOAK_SEED;
  const maxRequests = opts.maxRequests ?? Infinity;
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_SOAK_REQUEST_TIMEOUT_MS;
  const maxModelLen = await maxModelLenOf(target);

  const answers: Answer[] = [];
  const samples: Sample[] = [];
  let crash: string | undefined;
  let misses = 0;
  const t0 = performance.now();
  let started = 0;
  let loadOver = false;

  const sampler = (async () => {
    let nextProgressMs = 10_000;
    while (!loadOver && crash === undefined) {
      crash ??= target.exitReason?.();
      try {
        samples.push(await scrape(target.url, t0));
        misses = 0;
      } catch (e) {
        if (++misses >= 2) crash ??= `the server stopped answering /metrics (${(e as Error).message})`;
      }
      const s = samples[samples.length - 1];
      if (s && s.tMs >= nextProgressMs) {
        nextProgressMs += 10_000;
        const rss = s.rssBytes === undefined ? "" : `, RSS ${(s.rssBytes / 2 ** 20).toFixed(0)} MB`;
        opts.onProgress?.(
          `soak ${(s.tMs / 1000).toFixed(0)} s: ${answers.length} answered, KV ${s.kvUsedTokens}${rss}`,
        );
      }
      await new Promise((r) => setTimeout(r, opts.sampleMs ?? DEFAULT_SOAK_SAMPLE_MS));
    }
  })();

  const client = async (i: number) => {
    const rng = new Rng(seed * 1_000_003 + i);
    const maxCompletion = opts.maxCompletionTokens ?? DEFAULT_SOAK_MAX_COMPLETION_TOKENS;
    while (performance.now() - t0 < durationMs && started < maxRequests && crash === undefined) {
      started++;
      const answer = await send(target.url, plan(rng, target.model, maxModelLen, maxCompletion), timeoutMs);
      answers.push(answer);
      if (answer.retryAfterMs !== undefined) await new Promise((r) => setTimeout(r, answer.retryAfterMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => client(i)));
  const loadS = (performance.now() - t0) / 1000;
  loadOver = true;
  await sampler;

  let finalHealth: Health = { running: -1, waiting: -1, kv_used_tokens: -1 };
  let drainMs = 0;
  crash ??= target.exitReason?.();
  if (crash === undefined) {
    try {
      const d = await drain(target.url, opts.drainMs ?? DEFAULT_SOAK_DRAIN_MS);
      finalHealth = d.health;
      drainMs = d.waitedMs;
      samples.push(await scrape(target.url, t0));
    } catch (e) {
      crash = target.exitReason?.() ?? `the server stopped answering after the load (${(e as Error).message})`;
    }
  }
  return buildReport(target, { seed, concurrency, loadS, answers, samples, finalHealth, drainMs, crash }, opts);
}

interface SoakRun {
  seed: number;
  concurrency: number;
  loadS: number;
  answers: Answer[];
  samples: Sample[];
  finalHealth: Health;
  drainMs: number;
  crash?: string;
}

function buildReport(target: SoakTarget, run: SoakRun, opts: SoakOptions): SoakReport {
  const { answers, samples, finalHealth } = run;
  const byKind: Record<string, Record<string, number>> = {};
  const errors: Record<string, number> = {};
  const inMixOrder = [...answers].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  for (const a of inMixOrder) {
    byKind[a.kind] ??= {};
    byKind[a.kind][a.outcome] = (byKind[a.kind][a.outcome] ?? 0) + 1;
    if (a.outcome !== "served") errors[a.outcome] = (errors[a.outcome] ?? 0) + 1;
  }
  const unexpected = answers.filter((a) => UNEXPECTED_SET.has(a.outcome));
  const mustRefuse = answers.filter((a) => MUST_REFUSE.has(a.kind));
  const served = answers.filter((a) => a.outcome === "served");
  const last = samples[samples.length - 1];
  const rss = rssVerdict(
    samples.filter((s) => s.tMs <= run.loadS * 1000),
    run.loadS,
    {
      limitMbPerMin: opts.rssSlopeLimitMbPerMin ?? DEFAULT_SOAK_RSS_SLOPE_LIMIT_MB_PER_MIN,
      warmupS: opts.rssWarmupS ?? DEFAULT_SOAK_RSS_WARMUP_S,
      minJudgedS: opts.minJudgedS ?? DEFAULT_SOAK_MIN_JUDGED_S,
    },
  );
  const failures: string[] = [];
  if (run.crash !== undefined) failures.push(`crash: ${run.crash}`);
  if (unexpected.length > 0) failures.push(`${unexpected.length} unexpected answers`);
  if (run.crash === undefined && finalHealth.kv_used_tokens !== 0)
    failures.push(`${finalHealth.kv_used_tokens} KV cells still in use ${run.drainMs.toFixed(0)} ms after the load`);
  if (run.crash === undefined && (finalHealth.running !== 0 || finalHealth.waiting !== 0))
    failures.push(`requests left: ${finalHealth.running} running, ${finalHealth.waiting} waiting`);
  if (rss.verdict === "growing")
    failures.push(`RSS grows ${rss.slopeMbPerMin.toFixed(2)} MB/min (limit ${rss.limitMbPerMin} MB/min)`);
  return {
    url: target.url,
    model: target.model,
    seed: run.seed,
    concurrency: run.concurrency,
    loadS: run.loadS,
    requests: answers.length,
    served: served.length,
    requestsPerS: answers.length / run.loadS,
    byKind,
    errors,
    unexpected: unexpected.length,
    unexpectedExamples: unexpected.slice(0, 10).map((a) => a.detail ?? a.outcome),
    mustRefuse: {
      sent: mustRefuse.length,
      refusedWithShape: mustRefuse.filter((a) => a.outcome === "refused").length,
      closedEarly: mustRefuse.filter((a) => a.outcome === "closed-early").length,
    },
    latency: {
      served: summarize(served.map((a) => a.latencyMs)),
      refused: summarize(answers.filter((a) => a.outcome === "refused").map((a) => a.latencyMs)),
    },
    kv: {
      peakUsedTokens: Math.max(0, ...samples.map((s) => s.kvUsedTokens)),
      finalUsedTokens: finalHealth.kv_used_tokens,
      finalRunning: finalHealth.running,
      finalWaiting: finalHealth.waiting,
      drainMs: run.drainMs,
      evictions: last?.evictions ?? 0,
      preemptions: last?.preemptions ?? 0,
    },
    rss,
    ...(run.crash !== undefined ? { crash: run.crash } : {}),
    failures,
    pass: failures.length === 0,
  };
}

const mbText = (mb: number) => `${mb.toFixed(1)} MB`;

function rssLine(v: RssVerdict): string {
  const range = `range ${mbText(v.minMb)} to ${mbText(v.maxMb)} over ${v.samples} samples`;
  const rule = `judged after a ${v.warmupS} s warm-up on >= ${v.minJudgedS} s of load`;
  if (v.verdict === "not-judged") return `RSS not judged (${rule}); ${range}`;
  return (
    `RSS after the warm-up: ${mbText(v.firstQuarterMedianMb)} (first quarter, median) -> ` +
    `${mbText(v.lastQuarterMedianMb)} (last quarter), ${v.slopeMbPerMin.toFixed(2)} MB/min: ${v.verdict} ` +
    `(limit ${v.limitMbPerMin} MB/min, ${rule}); ${range}`
  );
}

/** The report as text (the CLI's default output). */
export function formatSoakReport(r: SoakReport): string {
  const ms = (l: LatencySummary) => `p50 ${l.p50Ms.toFixed(0)} ms, p99 ${l.p99Ms.toFixed(0)} ms (n ${l.n})`;
  const counts = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ") || "none";
  const lines = [
    `soak of ${r.model} at ${r.url}: ${r.loadS.toFixed(1)} s, ${r.concurrency} clients, seed ${r.seed}`,
    `requests ${r.requests} (${r.requestsPerS.toFixed(1)}/s), served ${r.served}; latency of served ${ms(r.latency.served)}; of refusals ${ms(r.latency.refused)}`,
    `not served, by outcome: ${counts(r.errors)}`,
    ...Object.entries(r.byKind).map(([kind, o]) => `  ${kind}: ${counts(o)}`),
    `must be refused: ${r.mustRefuse.refusedWithShape} of ${r.mustRefuse.sent} got a 4xx with an OpenAI-shaped error` +
      (r.mustRefuse.closedEarly > 0
        ? `, ${r.mustRefuse.closedEarly} oversized bodies cut off by the server's 413`
        : ""),
    `KV: peak ${r.kv.peakUsedTokens} cells in use, ${r.kv.finalUsedTokens} after the load (drained in ${r.kv.drainMs.toFixed(0)} ms; ${r.kv.finalRunning} running, ${r.kv.finalWaiting} waiting); ${r.kv.evictions} blocks evicted, ${r.kv.preemptions} preemptions`,
    rssLine(r.rss),
    ...r.unexpectedExamples.map((e) => `  unexpected: ${e}`),
    r.pass ? "PASS" : `FAIL: ${r.failures.join("; ")}`,
    "(timings on a shared CPU are upper bounds)",
    "",
  ];
  return lines.join("\n");
}
