/**
 * The OpenAI-compatible HTTP server of the Memento engine (fastify).
 *
 * Routes:
 *   POST /v1/chat/completions   messages rendered with the model's chat template, Memento variant (system
 *                               messages dropped; generation prompt `<|im_start|>assistant\n`); `stream: true`
 *                               answers Server-Sent Events (`data: {chat.completion.chunk}` ... `data: [DONE]`)
 *   POST /v1/completions        raw prompt (a string, or token ids), no template
 *   GET  /v1/models, /v1/models/:id
 *   GET  /health                200 {status: "ok", ...engine gauges}; 503 while shutting down
 *   GET  /metrics               Prometheus text format (see metrics.ts)
 *
 * Responses carry `usage: {prompt_tokens, completion_tokens, total_tokens, memento: {blocks, evictions,
 * evicted_tokens, peak_kv_tokens, final_kv_tokens, kv_auc_tokens, preemptions, ...}}`; streams send it in a
 * last chunk with `choices: []` when `stream_options.include_usage` is true, and the chunk carrying
 * `finish_reason` always has a top-level `memento` object with the same statistics.
 *
 * Overload policy: the engine runs up to `maxRunning` requests at once (and fewer when their KV does not fit
 * the budget: admission control, preemption with recompute); the rest wait in a FIFO queue of at most
 * `maxWaiting` requests. A request arriving when the queue is full is answered at once with 429
 * (`rate_limit_error`, code `queue_full`, header `Retry-After: 1`); nothing is dropped once accepted.
 *
 * A client that disconnects (closes the socket, aborts the fetch) cancels its request: the engine frees its
 * KV at once (or right after the backend call in flight). Every error is answered with an OpenAI-shaped
 * object `{error: {message, type, param, code}}`; no input can crash the server.
 */
import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Engine, FinishReason, RequestHandle, RequestStats, SamplingParams } from "../engine/types.js";
import { renderMementoChat, type ChatMessage } from "../format/chat.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { isUserError } from "../errors.js";
import type { MaskingConfig } from "../masking/config.js";
import { ApiError, fromEngine, isEngineError } from "./errors.js";
import { ServerMetrics, type Endpoint } from "./metrics.js";
import {
  chatRequestSchema,
  completionRequestSchema,
  contentText,
  parseBody,
  parseMasking,
  stopList,
  type ChatRequest,
  type CompletionRequest,
} from "./schema.js";

export interface ServerOptions {
  engine: Engine;
  tokenizer: MementoTokenizer;
  /** The model id of /v1/models; requests naming another model get 404 model_not_found. */
  modelName: string;
  /** Other names accepted as `model` (e.g. the directory path given on the command line). */
  aliases?: string[];
  /** Longest prompt + completion (max_tokens is capped to what is left of it). */
  maxModelLen: number;
  /** When set, /v1/* requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Backend name reported by /health. */
  backendName?: string;
  /** False when the backend cannot serve restart mode (llama.cpp): `block_masking.restartMode` is answered 400. Default true. */
  restartModeSupported?: boolean;
  /** Close the engine when the server closes (default false). */
  ownsEngine?: boolean;
  /** fastify's request logger (default off). */
  logger?: boolean;
  /** prom-client's default process metrics (default true). */
  defaultMetrics?: boolean;
  /** Largest request body in bytes (default 8 MiB). */
  bodyLimit?: number;
}

interface Prepared {
  endpoint: Endpoint;
  id: string;
  promptTokens: number[];
  sampling: SamplingParams;
  masking: Partial<MaskingConfig> | undefined;
  skipSpecialTokens: boolean;
  stream: boolean;
  includeUsage: boolean;
}

export interface MementoUsage {
  blocks: number;
  evictions: number;
  evicted_tokens: number;
  peak_kv_tokens: number;
  final_kv_tokens: number;
  kv_auc_tokens: number;
  preemptions: number;
  recomputed_tokens: number;
  forced_block_ends: number;
  queue_ms: number;
  time_to_first_token_ms: number;
  total_ms: number;
  message?: string;
}

export function mementoUsage(s: RequestStats, message?: string): MementoUsage {
  const ms = (x: number) => Math.round(x * 1000) / 1000;
  return {
    blocks: s.blocks,
    evictions: s.evictions,
    evicted_tokens: s.evictedTokens,
    peak_kv_tokens: s.peakKvTokens,
    final_kv_tokens: s.finalKvTokens,
    kv_auc_tokens: s.aucKvTokens,
    preemptions: s.preemptions,
    recomputed_tokens: s.recomputedTokens,
    forced_block_ends: s.forcedBlockEnds,
    queue_ms: ms(s.queueMs),
    time_to_first_token_ms: ms(s.firstTokenMs),
    total_ms: ms(s.totalMs),
    ...(message ? { message } : {}),
  };
}

function usage(s: RequestStats, message?: string) {
  return { prompt_tokens: s.promptTokens, completion_tokens: s.completionTokens, total_tokens: s.promptTokens + s.completionTokens, memento: mementoUsage(s, message) };
}

function finishReason(r: FinishReason): "stop" | "length" {
  return r === "length" ? "length" : "stop";
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { engine, tokenizer } = opts;
  const metrics = new ServerMetrics(engine, { defaultMetrics: opts.defaultMetrics });
  const names = new Set([opts.modelName, ...(opts.aliases ?? [])]);
  const created = Math.floor(Date.now() / 1000);
  const inflight = new Set<RequestHandle>();
  let closing = false;

  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: opts.bodyLimit ?? 8 * 1024 * 1024, forceCloseConnections: true });

  // Parse every body as JSON whatever its content type (curl -d sends form-urlencoded by default).
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("*", { parseAs: "string" }, json);

  const endpointOf = (req: FastifyRequest): string => {
    const url = req.routeOptions.url ?? "";
    return url.endsWith("/chat/completions") ? "chat" : url.endsWith("/completions") ? "completions" : url || "none";
  };
  const sendError = (req: FastifyRequest, reply: FastifyReply, e: ApiError) => {
    metrics.error(endpointOf(req), e.status);
    if (e.status === 429) void reply.header("retry-after", "1");
    return reply.code(e.status).send(e.toBody());
  };

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiError) return sendError(req, reply, err);
    if (isEngineError(err)) return sendError(req, reply, fromEngine(err));
    if (isUserError(err)) return sendError(req, reply, new ApiError(400, err.message, "invalid_value"));
    const e = err as { statusCode?: number; code?: string; message?: string };
    const status = typeof e.statusCode === "number" ? e.statusCode : 500;
    if (status >= 400 && status < 500) {
      const code =
        e.code === "FST_ERR_CTP_BODY_TOO_LARGE"
          ? "request_too_large"
          : e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE"
            ? "unsupported_media_type"
            : status === 400 && /json/i.test(`${e.code ?? ""} ${e.message ?? ""}`) || err instanceof SyntaxError
              ? "invalid_json"
              : "invalid_request";
      const message = code === "invalid_json" ? `malformed JSON body: ${e.message ?? "parse error"}` : (e.message ?? "bad request");
      return sendError(req, reply, new ApiError(status, message, code));
    }
    req.log.error(err);
    return sendError(req, reply, new ApiError(500, `internal error: ${e.message ?? String(err)}`, "internal_error"));
  });
  app.setNotFoundHandler((req, reply) => sendError(req, reply, new ApiError(404, `no route ${req.method} ${req.url}`, "not_found")));

  app.addHook("onRequest", async (req) => {
    if (opts.apiKey === undefined || !req.url.startsWith("/v1/")) return;
    const auth = req.headers.authorization ?? "";
    if (auth !== `Bearer ${opts.apiKey}`) throw new ApiError(401, "invalid or missing API key (Authorization: Bearer KEY)", "invalid_api_key");
  });

  app.addHook("preClose", async () => {
    closing = true;
    for (const h of inflight) h.cancel();
    if (opts.ownsEngine) await engine.close();
  });

  const modelCard = () => ({ id: opts.modelName, object: "model", created, owned_by: "memento", max_model_len: opts.maxModelLen });

  app.get("/health", async (_req, reply) => {
    const s = engine.stats();
    return reply.code(closing ? 503 : 200).send({
      status: closing ? "shutting_down" : "ok",
      model: opts.modelName,
      backend: opts.backendName ?? "reference",
      running: s.running,
      waiting: s.waiting,
      kv_used_tokens: s.kvUsedTokens,
      kv_total_tokens: s.kvTotalTokens,
    });
  });

  app.get("/metrics", async (_req, reply) => {
    const m = await metrics.render();
    return reply.header("content-type", m.contentType).send(m.body);
  });

  app.get("/v1/models", async () => ({ object: "list", data: [modelCard()] }));
  app.get<{ Params: { id: string } }>("/v1/models/:id", async (req) => {
    if (!names.has(req.params.id)) throw modelNotFound(req.params.id);
    return modelCard();
  });

  function modelNotFound(name: string): ApiError {
    return new ApiError(404, `The model \`${name}\` does not exist. This server serves \`${opts.modelName}\`.`, "model_not_found", "model");
  }

  /** Shared part of both endpoints: model check, sampling, masking, max_tokens against the context. */
  function prepare(endpoint: Endpoint, body: ChatRequest | CompletionRequest, promptTokens: number[], maxTokensField: number | null | undefined): Prepared {
    if (!names.has(body.model)) throw modelNotFound(body.model);
    if (closing) throw new ApiError(503, "the server is shutting down", "shutting_down");
    const room = opts.maxModelLen - promptTokens.length;
    if (room < 1) {
      throw new ApiError(400, `the prompt has ${promptTokens.length} tokens; the model's context is ${opts.maxModelLen}`, "context_length_exceeded", endpoint === "chat" ? "messages" : "prompt");
    }
    const maxTokens = Math.min(maxTokensField ?? room, room);
    const sampling: SamplingParams = {
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k ?? -1,
      minP: body.min_p ?? 0,
      maxTokens,
    };
    if (body.seed !== undefined && body.seed !== null) sampling.seed = body.seed;
    const stop = stopList(body.stop);
    if (stop) sampling.stop = stop;
    if (body.stop_token_ids && body.stop_token_ids.length > 0) sampling.stopTokenIds = body.stop_token_ids;
    const masking = parseMasking(body);
    if (masking?.restartMode && opts.restartModeSupported === false) {
      const field = body.block_masking ? "block_masking" : "memento";
      throw new ApiError(400, `restartMode is not supported by this server's backend (${opts.backendName ?? "unknown"})`, "invalid_value", `${field}.restartMode`);
    }
    return {
      endpoint,
      id: `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replace(/-/g, "")}`,
      promptTokens,
      sampling,
      masking,
      skipSpecialTokens: body.skip_special_tokens ?? false,
      stream: body.stream ?? false,
      includeUsage: body.stream_options?.include_usage ?? false,
    };
  }

  function submit(p: Prepared): RequestHandle {
    try {
      const handle = engine.submit({
        id: p.id,
        promptTokens: p.promptTokens,
        sampling: p.sampling,
        ...(p.masking ? { masking: p.masking } : {}),
        skipSpecialTokens: p.skipSpecialTokens,
      });
      inflight.add(handle);
      void handle.result().then(() => inflight.delete(handle));
      return handle;
    } catch (e) {
      if (isEngineError(e)) throw fromEngine(e);
      throw e;
    }
  }

  /** Cancels the request when the client goes away before the answer is complete. */
  function cancelOnDisconnect(req: FastifyRequest, res: ServerResponse, handle: RequestHandle): () => void {
    const onClose = () => {
      if (!res.writableEnded) handle.cancel();
    };
    res.on("close", onClose);
    req.raw.on("aborted", onClose);
    if (res.destroyed || req.raw.socket?.destroyed) handle.cancel();
    return () => {
      res.off("close", onClose);
      req.raw.off("aborted", onClose);
    };
  }

  async function respond(req: FastifyRequest, reply: FastifyReply, p: Prepared, model: string) {
    const handle = submit(p);
    const createdAt = Math.floor(Date.now() / 1000);
    if (p.stream) return stream(req, reply, p, handle, model, createdAt);
    const detach = cancelOnDisconnect(req, reply.raw, handle);
    const r = await handle.result();
    detach();
    metrics.finished(p.endpoint, r.finishReason, r.stats);
    if (r.finishReason === "cancelled") throw new ApiError(closing ? 503 : 499, closing ? "the server is shutting down" : "request cancelled", "cancelled");
    if (r.finishReason === "error") throw new ApiError(500, r.message ?? "generation failed", "generation_error");
    const fr = finishReason(r.finishReason);
    const stopReason = r.stopReason ?? null;
    if (p.endpoint === "chat") {
      return {
        id: p.id,
        object: "chat.completion",
        created: createdAt,
        model,
        choices: [{ index: 0, message: { role: "assistant", content: r.text }, logprobs: null, finish_reason: fr, stop_reason: stopReason }],
        usage: usage(r.stats, r.message),
      };
    }
    return {
      id: p.id,
      object: "text_completion",
      created: createdAt,
      model,
      choices: [{ index: 0, text: r.text, logprobs: null, finish_reason: fr, stop_reason: stopReason }],
      usage: usage(r.stats, r.message),
    };
  }

  async function stream(req: FastifyRequest, reply: FastifyReply, p: Prepared, handle: RequestHandle, model: string, createdAt: number) {
    reply.hijack();
    const res = reply.raw;
    res.on("error", () => handle.cancel());
    const detach = cancelOnDisconnect(req, res, handle);
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    const write = (data: unknown) => {
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    };
    const chat = p.endpoint === "chat";
    const chunk = (piece: string | null, finish: string | null, extra: Record<string, unknown> = {}) =>
      chat
        ? { id: p.id, object: "chat.completion.chunk", created: createdAt, model, choices: [{ index: 0, delta: piece === null ? {} : { content: piece }, logprobs: null, finish_reason: finish, ...extra }] }
        : { id: p.id, object: "text_completion", created: createdAt, model, choices: [{ index: 0, text: piece ?? "", logprobs: null, finish_reason: finish, ...extra }] };
    if (chat) write({ id: p.id, object: "chat.completion.chunk", created: createdAt, model, choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] });
    try {
      for await (const ev of handle) {
        if (ev.type === "token") {
          if (ev.text) write(chunk(ev.text, null));
        } else if (ev.type === "done") {
          metrics.finished(p.endpoint, ev.finishReason, ev.stats);
          if (ev.finishReason === "cancelled") break;
          if (ev.text) write(chunk(ev.text, null));
          if (ev.finishReason === "error") {
            write(new ApiError(500, ev.message ?? "generation failed", "generation_error").toBody());
          } else {
            write({ ...chunk(null, finishReason(ev.finishReason), { stop_reason: ev.stopReason ?? null }), memento: mementoUsage(ev.stats, ev.message) });
            if (p.includeUsage) write({ id: p.id, object: chat ? "chat.completion.chunk" : "text_completion", created: createdAt, model, choices: [], usage: usage(ev.stats, ev.message) });
          }
          write("[DONE]");
        }
      }
    } catch (e) {
      write(new ApiError(500, `internal error: ${(e as Error).message}`, "internal_error").toBody());
      write("[DONE]");
      handle.cancel();
    } finally {
      detach();
      if (!res.writableEnded) res.end();
    }
  }

  app.post("/v1/chat/completions", async (req, reply) => {
    const body = parseBody(chatRequestSchema, req.body);
    if (!names.has(body.model)) throw modelNotFound(body.model);
    const messages: ChatMessage[] = body.messages.map((m) => {
      const out: ChatMessage = { role: m.role === "developer" ? "system" : m.role, content: contentText(m.content) };
      if (typeof m.reasoning_content === "string") out.reasoning_content = m.reasoning_content;
      return out;
    });
    let text: string;
    try {
      text = renderMementoChat(messages, { tokenizer, addGenerationPrompt: true });
    } catch (e) {
      if (isUserError(e)) throw new ApiError(400, e.message, "invalid_value", "messages");
      throw e;
    }
    const p = prepare("chat", body, tokenizer.encode(text), body.max_completion_tokens ?? body.max_tokens);
    return respond(req, reply, p, body.model);
  });

  app.post("/v1/completions", async (req, reply) => {
    const body = parseBody(completionRequestSchema, req.body);
    if (!names.has(body.model)) throw modelNotFound(body.model);
    const prompt = body.prompt;
    let ids: number[];
    if (typeof prompt === "string") ids = tokenizer.encode(prompt);
    else if (prompt.length === 1 && typeof prompt[0] === "string") ids = tokenizer.encode(prompt[0]);
    else if (prompt.length === 1 && Array.isArray(prompt[0])) ids = prompt[0];
    else ids = prompt as number[];
    if (ids.length === 0) throw new ApiError(400, "prompt must not be empty", "invalid_value", "prompt");
    const p = prepare("completions", body, ids, body.max_tokens);
    return respond(req, reply, p, body.model);
  });

  return app;
}

export interface StartedServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** The OpenAI base URL: `${url}/v1`. */
  baseURL: string;
  port: number;
  close(): Promise<void>;
}

/** Builds the server and listens (port 0 = a free one). */
export async function startServer(opts: ServerOptions & { host?: string; port?: number }): Promise<StartedServer> {
  const app = await buildServer(opts);
  const host = opts.host ?? "127.0.0.1";
  await app.listen({ host, port: opts.port ?? 8080 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : (opts.port ?? 8080);
  const shown = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  const url = `http://${shown}:${port}`;
  return { app, url, baseURL: `${url}/v1`, port, close: () => app.close() };
}
