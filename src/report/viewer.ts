/**
 * `memento view FILE|URL`: a local web page that shows a Memento response as collapsible blocks, each with its
 * memento and token counts, next to the KV trajectory (resident tokens with block masking vs full attention),
 * computed here with the project's tokenizer and KV simulator.
 *
 * The server (node:http, 127.0.0.1, random port by default) answers
 *   GET /              the page (viewer-page.ts; inline CSS/JS, nothing fetched from elsewhere)
 *   GET /api/info      {mode: "file"|"live", title, items: [{index, id, label}], architecture, setup?, live?}
 *                      (setup: which architecture and tokenizer, and why: a flag, the run's run.json or the
 *                      default; see viewer-run.ts)
 *   GET /api/trace?i=N the TraceView of item N (file mode)
 *   GET /api/live      live mode: Server-Sent Events: `text` {text} (everything so far, on connect), `delta` {text}
 *                      per upstream chunk, `trace` (a TraceView,
 *                      recomputed at most every `throttleMs`), then `done` {finishReason, error?}
 *
 * Live mode proxies one streaming chat completion (`stream: true`, SSE) from an OpenAI-compatible endpoint,
 * started when the first page connects; pages that connect later get the text so far, then the rest.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { UserError } from "../errors.js";
import { parseResponse } from "../format/response.js";
import { loadResponses } from "../format/load.js";
import { encodeChat } from "../format/chat.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { simulateKv } from "../kv/simulate.js";
import { ARCHITECTURE_PRESETS, type KvArchitecture } from "../kv/architecture.js";
import { resolveMasking, trackerIdsOf, type MaskingConfig } from "../masking/config.js";
import { downsampleEnvelope, lineChart } from "../util/charts.js";
import { viewerPage } from "./viewer-page.js";

// ---------------------------------------------------------------------------------------------------------
// The view of one response

export interface BlockView {
  index: number;
  /** Nesting depth (0 = top level). */
  depth: number;
  text: string;
  tokens: number;
  /** Whether `<|block_end|>` was seen. */
  closed: boolean;
  memento: { text: string; tokens: number; closed: boolean } | null;
  /** memento tokens / block tokens (null without a memento or with an empty block). */
  compression: number | null;
}

export interface KvNumbers {
  peakTokens: number;
  aucTokens: number;
  finalTokens: number;
  peakGB: number;
  aucGBxKtok: number;
}

export interface TraceView {
  id: string;
  /** Text before the thinking section (or the whole response when it has no Memento structure). */
  preamble: string;
  blocks: BlockView[];
  /** Mementos attached to no block. */
  orphanMementos: { text: string; tokens: number }[];
  /** Text after `</think>`, or null when there is none (yet). */
  answer: string | null;
  answerTokens: number;
  thinkClosed: boolean;
  promptTokens: number;
  outputTokens: number;
  chars: number;
  architecture: string;
  /** Output tokens the run recorded for this response (generations.jsonl), to check the tokenizer; else null. */
  recordedOutputTokens: number | null;
  kv: {
    memento: KvNumbers;
    vanilla: KvNumbers;
    evictions: number;
    /** vanilla / memento. */
    peakReduction: number;
    aucReduction: number;
  };
  /** Downsampled trajectories: x = output tokens so far, y = resident tokens (prompt included). */
  trajectory: { memento: [number, number][]; vanilla: [number, number][] };
  /** The KV chart as an SVG string. */
  chart: string;
}

export interface TraceViewOptions {
  tokenizer: MementoTokenizer;
  architecture?: KvArchitecture;
  /** Masking of the memento replay (default keepLastNBlocks 0). */
  masking?: Partial<MaskingConfig>;
  /** Most points per trajectory sent to the page (default 1200). */
  maxPoints?: number;
  /** Chart size. */
  chartWidth?: number;
  chartHeight?: number;
}

/** Parses, tokenises and replays one response: structure, token counts and KV trajectory. */
export function buildTraceView(
  input: { id: string; text: string; problem?: string; recordedOutputTokens?: number },
  opts: TraceViewOptions,
): TraceView {
  const tok = opts.tokenizer;
  const arch = opts.architecture ?? ARCHITECTURE_PRESETS["qwen3-8b"];
  const parsed = parseResponse(input.text);
  const blocks: BlockView[] = parsed.blocks.map((b) => {
    const m = b.mementoIndex === null ? undefined : parsed.mementos[b.mementoIndex];
    const tokens = tok.count(b.text);
    const mem = m ? { text: m.text, tokens: tok.count(m.text), closed: m.close !== null } : null;
    return {
      index: b.index,
      depth: b.depth,
      text: b.text,
      tokens,
      closed: b.close !== null,
      memento: mem,
      compression: mem && tokens > 0 ? mem.tokens / tokens : null,
    };
  });
  const orphanMementos = parsed.mementos
    .filter((m) => m.blockIndex === null)
    .map((m) => ({ text: m.text, tokens: tok.count(m.text) }));
  const preamble = parsed.segments
    .filter((s) => s.kind === "preamble")
    .map((s) => s.text)
    .join("");

  const prompt = input.problem ? encodeChat([{ role: "user", content: input.problem }], { tokenizer: tok }).ids : [];
  const tokens = prompt.concat(tok.encode(input.text));
  const masking = resolveMasking({ keepLastNBlocks: 0, ...opts.masking, requireAssistantSection: prompt.length > 0 });
  const special = trackerIdsOf(tok);
  const mem = simulateKv(tokens, prompt.length, special, masking, { architecture: arch, trajectory: true });
  const van = simulateKv(tokens, prompt.length, special, { ...masking, keepLastNBlocks: -1 }, { architecture: arch });
  const traj = mem.trajectory ?? [];
  const T = traj.length;
  const maxPoints = opts.maxPoints ?? 1200;
  const memPts = downsampleEnvelope(traj, maxPoints).map(([i, v]) => [i + 1, v] as [number, number]);
  const vanPts: [number, number][] =
    T === 0
      ? []
      : [
          [1, prompt.length + 1],
          [T, prompt.length + T],
        ];
  const num = (r: typeof mem): KvNumbers => ({
    peakTokens: r.peakTokens,
    aucTokens: r.aucTokens,
    finalTokens: r.finalTokens,
    peakGB: r.bytes?.peakGB ?? 0,
    aucGBxKtok: r.bytes?.aucGBxKtok ?? 0,
  });
  const chart = lineChart(
    [
      { name: "memento (block masking)", points: memPts, color: "#2563eb", fill: true },
      { name: "full attention", points: vanPts, color: "#6b7280", dashed: true, strokeWidth: 1.4 },
    ],
    {
      title: `KV cache: ${arch.name}`,
      width: opts.chartWidth ?? 760,
      height: opts.chartHeight ?? 300,
      x: { label: "output tokens", min: 0 },
      y: { label: "resident KV (tokens)" },
      legend: true,
    },
  );
  return {
    id: input.id,
    preamble,
    blocks,
    orphanMementos,
    answer: parsed.answer ? parsed.answer.text : null,
    answerTokens: parsed.answer ? tok.count(parsed.answer.text) : 0,
    thinkClosed: parsed.thinkEnd !== null,
    promptTokens: prompt.length,
    outputTokens: T,
    chars: input.text.length,
    architecture: arch.name,
    recordedOutputTokens: input.recordedOutputTokens ?? null,
    kv: {
      memento: num(mem),
      vanilla: num(van),
      evictions: mem.compactions.length,
      peakReduction: van.peakTokens / Math.max(1, mem.peakTokens),
      aucReduction: van.aucTokens / Math.max(1, mem.aucTokens),
    },
    trajectory: { memento: memPts, vanilla: vanPts },
    chart,
  };
}

// ---------------------------------------------------------------------------------------------------------
// What a file holds

export interface ViewerItem {
  id: string;
  /** Shown in the selector. */
  label: string;
  text: string;
  problem?: string;
  /** Output tokens recorded by the run (generations.jsonl `kv.outputTokens`). */
  recordedOutputTokens?: number;
}

function recordedOutputTokensOf(g: Record<string, unknown>): number | undefined {
  const kv = g.kv as { outputTokens?: unknown } | null | undefined;
  return typeof kv?.outputTokens === "number" ? kv.outputTokens : undefined;
}

function isGenerationsJsonl(content: string): boolean {
  const first = content.split("\n").find((l) => /\S/.test(l));
  if (!first?.trimStart().startsWith("{")) return false;
  try {
    const v = JSON.parse(first) as Record<string, unknown>;
    return typeof v === "object" && v !== null && "problemId" in v && "sample" in v && "status" in v;
  } catch {
    return false;
  }
}

/**
 * The responses of FILE: anything `loadResponses` reads (text, JSONL of responses or OpenMementos rows, a
 * segments JSON), a run's generations.jsonl, or a run directory (its generations.jsonl).
 */
export function loadViewerItems(path: string): ViewerItem[] {
  if (!existsSync(path)) throw new UserError(`${path}: no such file`);
  let file = path;
  if (statSync(path).isDirectory()) {
    file = join(path, "generations.jsonl");
    if (!existsSync(file))
      throw new UserError(`${path}: a directory without generations.jsonl (give a response file or a run directory)`);
  }
  const content = readFileSync(file, "utf8");
  if (isGenerationsJsonl(content)) {
    const items: ViewerItem[] = [];
    content.split("\n").forEach((line, i) => {
      if (!/\S/.test(line)) return;
      let g: Record<string, unknown>;
      try {
        g = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // a torn last line of a running eval
      }
      if (typeof g.response !== "string") return;
      const id = `${String(g.problemId)}#${String(g.sample)}`;
      const mark = g.correct === true ? " ✓" : g.correct === false ? " ✗" : "";
      const recorded = recordedOutputTokensOf(g);
      items.push({
        id,
        label: `${String(g.problemId)} · sample ${String(g.sample)}${mark} (line ${i + 1})`,
        text: g.response,
        ...(recorded !== undefined ? { recordedOutputTokens: recorded } : {}),
      });
    });
    if (items.length === 0) throw new UserError(`${file}: no generation with a response`);
    return items;
  }
  const loaded = loadResponses(file);
  return loaded.responses.map((r) => ({
    id: r.id,
    label: loaded.responses.length > 1 ? `${r.id} (line ${r.line})` : r.id,
    text: r.text,
    ...(r.problem !== undefined ? { problem: r.problem } : {}),
  }));
}

// ---------------------------------------------------------------------------------------------------------
// Live: one streaming chat completion

export interface LiveSource {
  kind: "live";
  /** Base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1) or the full chat-completions URL. */
  endpoint: string;
  /** Model name; default: the first of GET /models. */
  model?: string;
  prompt: string;
  apiKey?: string;
  /** Extra request fields (sampling, max_tokens, block-masking settings...). */
  body?: Record<string, unknown>;
}

export type ViewerSource =
  | { kind: "file"; path: string }
  | { kind: "items"; items: ViewerItem[]; title?: string }
  | LiveSource;

/** The chat-completions URL for a base URL. */
export function chatCompletionsUrl(endpoint: string): string {
  const u = endpoint.replace(/\/+$/, "");
  if (/\/chat\/completions$/.test(u)) return u;
  if (/\/v\d+$/.test(u)) return `${u}/chat/completions`;
  return `${u}/v1/chat/completions`;
}

function modelsUrl(endpoint: string): string {
  return chatCompletionsUrl(endpoint).replace(/\/chat\/completions$/, "/models");
}

type LiveState = "idle" | "streaming" | "done" | "error";

class LiveSession {
  text = "";
  state: LiveState = "idle";
  finishReason: string | undefined;
  error: string | undefined;
  model: string | undefined;
  view: TraceView | undefined;
  private readonly clients = new Set<ServerResponse>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private lastComputeMs = 0;
  private viewOf = "";

  constructor(
    readonly source: LiveSource,
    private readonly compute: (text: string) => TraceView,
    private readonly throttleMs: number,
  ) {
    this.model = source.model;
  }

  attach(res: ServerResponse): void {
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store",
      Connection: "keep-alive",
    });
    res.write(": memento live\n\n");
    this.clients.add(res);
    res.on("close", () => this.clients.delete(res));
    if (this.text) {
      send(res, "text", { text: this.text, total: this.text.length });
      this.refresh();
      if (this.view) send(res, "trace", this.view);
    }
    if (this.state === "done" || this.state === "error") {
      send(res, "done", { finishReason: this.finishReason, error: this.error, model: this.model });
      res.end();
      return;
    }
    if (this.state === "idle") void this.run();
  }

  private broadcast(event: string, data: unknown): void {
    for (const c of this.clients) send(c, event, data);
  }

  /** Recomputes the view if the text changed since the last one. */
  private refresh(): void {
    if (this.viewOf === this.text && this.view) return;
    const t0 = performance.now();
    this.view = this.compute(this.text);
    this.viewOf = this.text;
    this.lastComputeMs = performance.now() - t0;
  }

  private schedule(): void {
    if (this.timer) return;
    // Re-simulating the whole response costs more as it grows: never spend more than ~1/3 of the time on it.
    const delay = Math.max(this.throttleMs, 2 * this.lastComputeMs);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.state !== "streaming") return;
      this.refresh();
      this.broadcast("trace", this.view);
    }, delay);
  }

  private finish(state: "done" | "error", error?: string): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.state = state;
    this.error = error;
    this.refresh();
    this.broadcast("trace", this.view);
    this.broadcast("done", { finishReason: this.finishReason, error: this.error, model: this.model });
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  close(): void {
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { "Content-Type": "application/json", Accept: "text/event-stream" };
    if (this.source.apiKey) h.Authorization = `Bearer ${this.source.apiKey}`;
    return h;
  }

  private async run(): Promise<void> {
    this.state = "streaming";
    try {
      if (!this.model) {
        const r = await fetch(modelsUrl(this.source.endpoint), { headers: this.headers(), signal: this.abort.signal });
        if (!r.ok) throw new Error(`GET /models: HTTP ${r.status} (pass --model)`);
        const j = (await r.json()) as { data?: { id?: string }[] };
        this.model = j.data?.[0]?.id;
        if (!this.model) throw new Error("GET /models listed no model (pass --model)");
      }
      const body = {
        model: this.model,
        messages: [{ role: "user", content: this.source.prompt }],
        stream: true,
        // Keep the Memento markers in the text (vLLM / this project's server).
        skip_special_tokens: false,
        ...this.source.body,
      };
      const res = await fetch(chatCompletionsUrl(this.source.endpoint), {
        method: "POST",
        headers: this.headers(),
        body: JSON.stringify(body),
        signal: this.abort.signal,
      });
      if (!res.ok || !res.body) {
        const detail = (await res.text().catch(() => "")).replace(/\s+/g, " ").slice(0, 300);
        throw new Error(`upstream HTTP ${res.status}${detail ? `: ${detail}` : ""}`);
      }
      const decoder = new TextDecoder();
      let buf = "";
      let ended = false;
      const reader = res.body.getReader();
      while (!ended) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        for (;;) {
          const cut = buf.search(/\r?\n\r?\n/);
          if (cut === -1) break;
          const rawEvent = buf.slice(0, cut);
          buf = buf.slice(cut).replace(/^\r?\n\r?\n/, "");
          const data = rawEvent
            .split(/\r?\n/)
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).replace(/^ /, ""))
            .join("\n");
          if (!data) continue;
          if (data.trim() === "[DONE]") {
            ended = true;
            break;
          }
          this.onChunk(data);
        }
      }
      if (!ended) {
        const rest = buf
          .split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .join("\n");
        if (rest && rest !== "[DONE]") this.onChunk(rest);
      }
      reader.cancel().catch(() => {});
      this.finish("done");
    } catch (e) {
      if (this.abort.signal.aborted) return;
      this.finish("error", (e as Error).message);
    }
  }

  private onChunk(data: string): void {
    let j: {
      model?: string;
      choices?: {
        delta?: { content?: string | null; reasoning_content?: string | null; reasoning?: string | null };
        text?: string;
        finish_reason?: string | null;
      }[];
      error?: { message?: string };
    };
    try {
      j = JSON.parse(data);
    } catch {
      return; // keep-alive or a foreign line
    }
    if (j.error) throw new Error(`upstream error: ${j.error.message ?? JSON.stringify(j.error)}`);
    const c = j.choices?.[0];
    if (!c) return;
    const piece = (c.delta?.reasoning_content ?? c.delta?.reasoning ?? "") + (c.delta?.content ?? "") + (c.text ?? "");
    if (c.finish_reason) this.finishReason = c.finish_reason;
    if (!piece) return;
    this.text += piece;
    this.broadcast("delta", { text: piece, total: this.text.length });
    this.schedule();
  }
}

function send(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

// ---------------------------------------------------------------------------------------------------------
// The server

/** Which architecture and tokenizer the viewer uses and why (shown on the page; see viewer-run.ts). */
export interface ViewerSetupInfo {
  architecture: { origin: string; why: string };
  tokenizer: { origin: string; why: string };
}

export interface ViewerOptions {
  source: ViewerSource;
  tokenizer: MementoTokenizer;
  architecture?: KvArchitecture;
  /** Shown on the page under the title; absent: nothing is said. */
  setup?: ViewerSetupInfo;
  masking?: Partial<MaskingConfig>;
  /** 0 (default): a free port. */
  port?: number;
  host?: string;
  /** Live mode: least time between two KV recomputations, ms (default 250). */
  throttleMs?: number;
}

export interface ViewerServer {
  url: string;
  port: number;
  mode: "file" | "live";
  items: ViewerItem[];
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}

/** Starts the viewer's HTTP server; resolves once it listens. */
export async function startViewer(opts: ViewerOptions): Promise<ViewerServer> {
  const src = opts.source;
  const items = src.kind === "file" ? loadViewerItems(src.path) : src.kind === "items" ? src.items : [];
  if (src.kind === "items" && items.length === 0) throw new UserError("nothing to view");
  const title =
    src.kind === "file"
      ? basename(src.path)
      : src.kind === "items"
        ? (src.title ?? "responses")
        : `live: ${src.model ?? "model"} @ ${src.endpoint}`;
  const viewOpts: TraceViewOptions = {
    tokenizer: opts.tokenizer,
    architecture: opts.architecture,
    masking: opts.masking,
  };
  const cache = new Map<number, TraceView>();
  const live =
    src.kind === "live"
      ? new LiveSession(
          src,
          (text) => buildTraceView({ id: "live", text, problem: src.prompt }, viewOpts),
          opts.throttleMs ?? 250,
        )
      : undefined;
  const page = viewerPage();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(res, 405, { error: "method not allowed" });
      return;
    }
    switch (url.pathname) {
      case "/":
      case "/index.html":
        res.writeHead(200, {
          "Content-Type": "text/html; charset=utf-8",
          "Cache-Control": "no-store",
          "Content-Length": Buffer.byteLength(page),
        });
        res.end(page);
        return;
      case "/favicon.ico":
        res.writeHead(204);
        res.end();
        return;
      case "/api/info":
        json(res, 200, {
          mode: live ? "live" : "file",
          title,
          architecture: (opts.architecture ?? ARCHITECTURE_PRESETS["qwen3-8b"]).name,
          ...(opts.setup ? { setup: opts.setup } : {}),
          items: items.map((it, index) => ({ index, id: it.id, label: it.label })),
          ...(live
            ? {
                live: {
                  endpoint: live.source.endpoint,
                  model: live.model ?? null,
                  prompt: live.source.prompt,
                  state: live.state,
                },
              }
            : {}),
        });
        return;
      case "/api/trace": {
        if (live) {
          json(
            res,
            200,
            live.view ?? buildTraceView({ id: "live", text: live.text, problem: live.source.prompt }, viewOpts),
          );
          return;
        }
        const i = Number(url.searchParams.get("i") ?? "0");
        if (!Number.isInteger(i) || i < 0 || i >= items.length) {
          json(res, 404, { error: `no item ${url.searchParams.get("i")}` });
          return;
        }
        let v = cache.get(i);
        if (!v) {
          try {
            v = buildTraceView(items[i], viewOpts);
          } catch (e) {
            json(res, 500, { error: (e as Error).message });
            return;
          }
          cache.set(i, v);
        }
        json(res, 200, v);
        return;
      }
      case "/api/live":
        if (!live) {
          json(res, 404, { error: "not in live mode" });
          return;
        }
        live.attach(res);
        return;
      default:
        json(res, 404, { error: "not found" });
        return;
    }
  };

  const server: Server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      if (!res.headersSent) json(res, 500, { error: (e as Error).message });
      else res.end();
    }
  });
  const sockets = new Set<Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolvePromise, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "EADDRINUSE"
          ? new UserError(`port ${opts.port} is in use (try --port 0)`)
          : e.code === "EACCES"
            ? new UserError(`port ${opts.port}: permission denied`)
            : e,
      ),
    );
    server.listen(opts.port ?? 0, host, () => resolvePromise());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    mode: live ? "live" : "file",
    items,
    close: () =>
      new Promise<void>((resolveClose) => {
        live?.close();
        for (const s of sockets) s.destroy();
        server.close(() => resolveClose());
      }),
  };
}
