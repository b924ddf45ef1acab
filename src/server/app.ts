/**
 * The OpenAI-compatible HTTP server of the Memento engine (fastify): this file only wires the pieces.
 *
 * Routes (handlers in routes/, file named in parentheses):
 *   POST /v1/chat/completions   messages rendered with the model's chat template, Memento variant (system
 *                               messages dropped; generation prompt `<|im_start|>assistant\n`); `stream: true`
 *                               answers Server-Sent Events (`data: {chat.completion.chunk}` ... `data: [DONE]`)
 *   POST /v1/completions        raw prompt (a string, or token ids), no template (both: completions.ts)
 *   GET  /v1/models, /v1/models/:id                                                     (models.ts)
 *   GET  /health                200 {status: "ok", ...engine gauges}; 503 while shutting down (health.ts)
 *   GET  /metrics               Prometheus text format of metrics.ts                     (metrics.ts)
 *
 * Responses carry `usage: {prompt_tokens, completion_tokens, total_tokens, memento: {blocks, evictions,
 * evicted_tokens, peak_kv_tokens, final_kv_tokens, kv_auc_tokens, preemptions, ...}}` (openai-shapes.ts);
 * streams send it in a last chunk with `choices: []` when `stream_options.include_usage` is true, and the
 * chunk carrying `finish_reason` always has a top-level `memento` object with the same statistics (sse.ts).
 *
 * Overload policy: the engine runs up to `maxRunning` requests at once (and fewer when their KV does not fit
 * the budget: admission control, preemption with recompute); the rest wait in a FIFO queue. The engine holds
 * at most `maxRunning + maxWaiting` requests, running or waiting, so a burst gets exactly that many accepted; a
 * request beyond it is answered at once with 429 (`rate_limit_error`, code `queue_full`, header
 * `Retry-After: 1`); nothing is dropped once accepted.
 *
 * Shutdown (shutdown.ts): `StartedServer.shutdown` drains (new requests 503, the ones in flight go on) up to a
 * deadline, then cuts what is left (a stream gets an error event and [DONE], a plain request a 503), then closes;
 * `close()` is the same with no drain. Closing the fastify app directly cancels what is in flight first.
 *
 * A client that disconnects (closes the socket, aborts the fetch) cancels its request: the engine frees its
 * KV at once (or right after the backend call in flight) (disconnect.ts). Every error is answered with an
 * OpenAI-shaped object `{error: {message, type, param, code}}` (errors.ts, error-replies.ts); no input can
 * crash the server. What the backend cannot serve (restart mode on llama.cpp) the engine refuses, and the
 * refusal is a 400 naming the request's field.
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { Engine } from "../engine/types.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { registerApiKey } from "./auth.js";
import type { ServerContext } from "./context.js";
import { registerErrorReplies } from "./error-replies.js";
import { ServerLifecycle } from "./lifecycle.js";
import { ServerMetrics } from "./metrics.js";
import { registerCompletionRoutes } from "./routes/completions.js";
import { registerHealthRoute } from "./routes/health.js";
import { registerMetricsRoute } from "./routes/metrics.js";
import { registerModelRoutes } from "./routes/models.js";
import { ServedModel } from "./served-model.js";
import { shutdownServer, type ShutdownOptions } from "./shutdown.js";
import { boundAddress, clientHost, urlHost } from "./bind.js";

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
  /** Backend name reported by /health and quoted when a request asks for a feature it lacks. */
  backendName?: string;
  /** Close the engine when the server closes (default false). */
  ownsEngine?: boolean;
  /** fastify's request logger (default off). */
  logger?: boolean;
  /** prom-client's default process metrics (default true). */
  defaultMetrics?: boolean;
  /** Largest request body in bytes (default 8 MiB). */
  bodyLimit?: number;
}

/** Every body is parsed as JSON whatever its content type (curl -d sends form-urlencoded by default). */
function parseEveryBodyAsJson(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("*", { parseAs: "string" }, json);
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  return (await assemble(opts)).app;
}

/** The app and the lifecycle its routes share (startServer's shutdown drives the lifecycle). */
async function assemble(opts: ServerOptions): Promise<{ app: FastifyInstance; lifecycle: ServerLifecycle }> {
  const ctx: ServerContext = {
    engine: opts.engine,
    tokenizer: opts.tokenizer,
    model: new ServedModel(opts.modelName, opts.maxModelLen, opts.aliases),
    metrics: new ServerMetrics(opts.engine, { defaultMetrics: opts.defaultMetrics }),
    lifecycle: new ServerLifecycle(),
    ...(opts.backendName !== undefined ? { backendName: opts.backendName } : {}),
  };
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 8 * 1024 * 1024,
    forceCloseConnections: true,
    // While closing, requests still reach the routes, which refuse them with an OpenAI-shaped 503.
    return503OnClosing: false,
  });
  parseEveryBodyAsJson(app);
  registerErrorReplies(app, ctx.metrics);
  registerApiKey(app, opts.apiKey);
  app.addHook("preClose", async () => {
    ctx.lifecycle.close();
    if (opts.ownsEngine) await opts.engine.close();
  });
  registerHealthRoute(app, ctx);
  registerMetricsRoute(app, ctx.metrics);
  registerModelRoutes(app, ctx.model);
  registerCompletionRoutes(app, ctx);
  return { app, lifecycle: ctx.lifecycle };
}

export interface StartedServer {
  app: FastifyInstance;
  /** The URL a client on this machine connects to, e.g. http://127.0.0.1:8080 (also when bound to 0.0.0.0). */
  url: string;
  /** The OpenAI base URL: `${url}/v1`. */
  baseURL: string;
  /** The address actually bound, as the socket reports it (e.g. 0.0.0.0, ::, 127.0.0.1). */
  host: string;
  /** The URL of the bound address, e.g. http://0.0.0.0:8080 (what `memento serve` prints). */
  listenURL: string;
  port: number;
  /** Drains up to `timeoutMs`, cuts what is left (error event / 503), then closes (shutdown.ts). */
  shutdown(opts: ShutdownOptions): Promise<void>;
  /** shutdown with no drain: requests in flight are cut at once, each told so. */
  close(): Promise<void>;
}

/** Builds the server and listens (port 0 = a free one). */
export async function startServer(opts: ServerOptions & { host?: string; port?: number }): Promise<StartedServer> {
  const { app, lifecycle } = await assemble(opts);
  const asked = { host: opts.host ?? "127.0.0.1", port: opts.port ?? 8080 };
  await app.listen(asked);
  const { host, port } = boundAddress(app.server, asked);
  const url = `http://${urlHost(clientHost(host))}:${port}`;
  const shutdown = (o: ShutdownOptions) => shutdownServer(app, lifecycle, o);
  return {
    app,
    url,
    baseURL: `${url}/v1`,
    host,
    listenURL: `http://${urlHost(host)}:${port}`,
    port,
    shutdown,
    close: () => shutdown({ timeoutMs: 0 }),
  };
}
