/**
 * The server's routes and shared state through fastify's inject, over a FAKE engine whose requests the test
 * ends by hand: each ending (length, error, cancelled by the client, cancelled by a closing server) and each
 * engine refusal becomes the answer it should, streamed or not. Plus the small pieces the routes share:
 * ServedModel, ServerLifecycle, healthReport.
 */
import type { FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { RequestChannel } from "../src/engine/handle.js";
import {
  EngineError,
  UnsupportedFeatureError,
  type DoneEvent,
  type Engine,
  emptyRequestStats,
  type EngineRequest,
  type EngineStats,
  type RequestStats,
} from "../src/engine/types.js";
import { buildServer } from "../src/server/app.js";
import { ServerLifecycle } from "../src/server/lifecycle.js";
import { clientHost, exposedWithoutKey, isLoopbackHost, urlHost } from "../src/server/bind.js";
import { EventEmitter } from "node:events";
import { healthReport } from "../src/server/routes/health.js";
import { ServedModel } from "../src/server/served-model.js";
import { toyMementoTokenizer } from "./helpers/random-model.js";

const tok = toyMementoTokenizer();
const STATS: RequestStats = {
  ...emptyRequestStats(4),
  completionTokens: 1,
  peakKvTokens: 5,
  finalKvTokens: 5,
  aucKvTokens: 5,
};
const ENGINE_STATS: EngineStats = {
  running: 1,
  waiting: 2,
  kvUsedTokens: 30,
  kvTotalTokens: 100,
  preemptions: 0,
  evictions: 0,
  evictedTokens: 0,
  generatedTokens: 0,
  finishedRequests: 0,
  peakKvUsedTokens: 0,
  peakRunning: 0,
  steps: 0,
  decodedTokens: 0,
  prefillTokens: 0,
};

/** An engine that records submissions and leaves their endings to the test (or throws `refusal`). */
class FakeEngine implements Engine {
  readonly submitted: Array<{ request: EngineRequest; channel: RequestChannel }> = [];
  refusal: EngineError | undefined;
  closed = false;
  submit(request: EngineRequest) {
    if (this.refusal) throw this.refusal;
    const channel: RequestChannel = new RequestChannel(request.id ?? "r", () =>
      channel.emit({ type: "done", finishReason: "cancelled", stats: STATS }),
    );
    this.submitted.push({ request, channel });
    return channel;
  }
  stats() {
    return ENGINE_STATS;
  }
  async close() {
    this.closed = true;
  }
  /** The latest request, once submitted. */
  async next(): Promise<RequestChannel> {
    for (let i = 0; i < 200 && this.submitted.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const s = this.submitted.shift();
    if (!s) throw new Error("nothing was submitted");
    return s.channel;
  }
}

let app: FastifyInstance;
let engine: FakeEngine;
afterEach(async () => {
  await app?.close();
});

async function serve(extra: { backendName?: string } = {}) {
  engine = new FakeEngine();
  app = await buildServer({
    engine,
    tokenizer: tok,
    modelName: "toy",
    aliases: ["./models/toy"],
    maxModelLen: 64,
    defaultMetrics: false,
    ownsEngine: true,
    ...extra,
  });
}

const post = (url: string, body: Record<string, unknown>) =>
  app.inject({ method: "POST", url, payload: { model: "toy", ...body } });
const chatBody = { messages: [{ role: "user", content: "hi" }] };
const done = (extra: Partial<DoneEvent> = {}): DoneEvent => ({
  type: "done",
  finishReason: "length",
  stats: STATS,
  ...extra,
});

describe("completions over a fake engine", () => {
  it("answers the request the engine ran, with the prepared engine request", async () => {
    await serve();
    const pending = post("/v1/chat/completions", { ...chatBody, max_tokens: 3, temperature: 0 });
    const ch = await engine.next();
    ch.emit({ type: "token", id: 5, position: 9, text: "ok" });
    ch.emit(done());
    const r = await pending;
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      object: "chat.completion",
      model: "toy",
      choices: [{ message: { content: "ok" } }],
    });
  });

  it("a generation error is a 500 generation_error", async () => {
    await serve();
    const pending = post("/v1/completions", { prompt: "abc" });
    (await engine.next()).emit(done({ finishReason: "error", message: "backend failure: boom" }));
    const r = await pending;
    expect([r.statusCode, r.json()]).toEqual([
      500,
      { error: { message: "backend failure: boom", type: "server_error", param: null, code: "generation_error" } },
    ]);
  });

  it("a request cancelled under a live server is a 499", async () => {
    await serve();
    const pending = post("/v1/completions", { prompt: "abc" });
    (await engine.next()).cancel();
    const r = await pending;
    expect([r.statusCode, r.json().error]).toEqual([
      499,
      { message: "request cancelled", type: "invalid_request_error", param: null, code: "cancelled" },
    ]);
  });

  it("closing the server cancels requests in flight (503) and closes an engine it owns", async () => {
    await serve();
    const pending = post("/v1/chat/completions", chatBody);
    await engine.next();
    await app.close();
    const r = await pending;
    expect([r.statusCode, r.json().error]).toEqual([
      503,
      {
        message: "the server is shutting down; the request was cancelled before it finished",
        type: "service_unavailable",
        param: null,
        code: "cancelled",
      },
    ]);
    expect(engine.closed).toBe(true);
  });

  it("streams: an error after the headers is an error event, then [DONE]", async () => {
    await serve();
    const pending = post("/v1/completions", { prompt: "abc", stream: true });
    const ch = await engine.next();
    ch.emit({ type: "token", id: 5, position: 3, text: "a" });
    ch.emit(done({ finishReason: "error", message: "boom" }));
    const r = await pending;
    expect(r.statusCode).toBe(200);
    expect(r.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    const events = r.body.split("\n\n").filter(Boolean);
    expect(events.slice(1)).toEqual([
      'data: {"error":{"message":"boom","type":"server_error","param":null,"code":"generation_error"}}',
      "data: [DONE]",
    ]);
  });

  it("engine refusals name the request's field: the masking field used, the endpoint's prompt", async () => {
    await serve({ backendName: "llamacpp" });
    engine.refusal = new UnsupportedFeatureError("restartMode", "llama.cpp");
    let r = await post("/v1/completions", { prompt: "abc", memento: { restart_mode: true } });
    expect([r.statusCode, r.json().error]).toEqual([
      400,
      {
        message: "restartMode is not supported by this server's backend (llamacpp)",
        type: "invalid_request_error",
        param: "memento.restartMode",
        code: "invalid_value",
      },
    ]);
    engine.refusal = new EngineError("prompt_too_large", "prompt of 3 tokens does not fit the KV budget");
    r = await post("/v1/completions", { prompt: "abc" });
    expect([r.statusCode, r.json().error.param, r.json().error.code]).toEqual([
      400,
      "prompt",
      "context_length_exceeded",
    ]);
    r = await post("/v1/chat/completions", chatBody);
    expect(r.json().error.param).toBe("messages");
    engine.refusal = new EngineError("queue_full", "2 requests are already waiting");
    r = await post("/v1/chat/completions", { ...chatBody, stream: true });
    expect([r.statusCode, r.headers["retry-after"], r.json().error.code]).toEqual([429, "1", "queue_full"]);
    const metrics = (await app.inject({ url: "/metrics" })).body;
    expect(metrics).toContain('memento_request_errors_total{endpoint="completions",status="400"} 2');
    expect(metrics).toContain('memento_request_errors_total{endpoint="chat",status="429"} 1');
  });
});

describe("models and health", () => {
  it("lists the model, finds it under an alias, 404s other names", async () => {
    await serve();
    const list = (await app.inject({ url: "/v1/models" })).json();
    expect(list).toEqual({
      object: "list",
      data: [{ id: "toy", object: "model", created: expect.any(Number), owned_by: "memento", max_model_len: 64 }],
    });
    expect((await app.inject({ url: "/v1/models/.%2Fmodels%2Ftoy" })).json().id).toBe("toy");
    const r = await app.inject({ url: "/v1/models/gpt" });
    expect([r.statusCode, r.json().error]).toEqual([
      404,
      {
        message: "The model `gpt` does not exist. This server serves `toy`.",
        type: "invalid_request_error",
        param: "model",
        code: "model_not_found",
      },
    ]);
  });

  it("/health reports the engine's gauges and the backend name", async () => {
    await serve({ backendName: "llamacpp" });
    const r = await app.inject({ url: "/health" });
    expect([r.statusCode, r.body]).toEqual([
      200,
      '{"status":"ok","model":"toy","backend":"llamacpp","running":1,"waiting":2,' +
        '"kv_used_tokens":30,"kv_total_tokens":100}',
    ]);
    expect(healthReport(ENGINE_STATS, true, "m", "reference")).toMatchObject({
      status: "shutting_down",
      backend: "reference",
    });
  });
});

describe("shared pieces", () => {
  it("ServedModel accepts its id and aliases only", () => {
    const m = new ServedModel("toy", 64, ["alias"], 5);
    expect([m.accepts("toy"), m.accepts("alias"), m.accepts("other")]).toEqual([true, true, false]);
    expect(m.card()).toEqual({ id: "toy", object: "model", created: 5, owned_by: "memento", max_model_len: 64 });
    expect(() => m.require("other")).toThrow("The model `other` does not exist");
  });

  it("ServerLifecycle tracks requests until they end, cancels them all on close, then refuses new ones", async () => {
    const life = new ServerLifecycle();
    const cancelled: string[] = [];
    const channel = (id: string) => {
      const c: RequestChannel = new RequestChannel(id, () => {
        cancelled.push(id);
        c.emit({ type: "done", finishReason: "cancelled", stats: STATS });
      });
      return c;
    };
    const a = channel("a");
    const b = channel("b");
    life.track(a);
    life.track(b);
    expect(life.inFlight).toBe(2);
    a.emit({ type: "done", finishReason: "length", stats: STATS });
    await a.result();
    expect(life.inFlight).toBe(1);
    life.requireOpen();
    life.close();
    expect([life.closing, cancelled]).toEqual([true, ["b"]]);
    expect(() => life.requireOpen()).toThrow("the server is shutting down");
  });

  it("ServerLifecycle: an exchange lasts until its response closes; drain refuses new ones, cuts nothing", async () => {
    const life = new ServerLifecycle();
    const cancelled: string[] = [];
    const channel = (id: string): RequestChannel => {
      const c: RequestChannel = new RequestChannel(id, () => {
        cancelled.push(id);
        c.emit({ type: "done", finishReason: "cancelled", stats: STATS });
      });
      return c;
    };
    const res = new EventEmitter();
    const a = channel("a");
    const b = channel("b");
    life.track(a, { streaming: true, response: res });
    life.track(b);
    expect(life.drain()).toEqual({ requests: 2, streams: 1 });
    expect(() => life.requireOpen()).toThrow("the server is shutting down");
    expect(cancelled).toEqual([]);
    let settled = false;
    void life.settled().then(() => (settled = true));
    a.emit({ type: "done", finishReason: "length", stats: STATS });
    await a.result();
    await new Promise((r) => setImmediate(r));
    expect([life.counts(), settled]).toEqual([{ requests: 2, streams: 1 }, false]); // a's answer is still open
    res.emit("close");
    await new Promise((r) => setImmediate(r));
    expect(life.cutAll()).toEqual({ requests: 1, streams: 0 });
    expect(cancelled).toEqual(["b"]);
    await life.settled();
    expect([life.inFlight, settled]).toEqual([0, true]);
  });

  it("bind: loopback hosts are 127/8, ::1 and localhost; a wildcard is reached at 127.0.0.1; IPv6 is bracketed", () => {
    const hosts = ["127.0.0.1", "127.8.9.1", "::1", "localhost", "::ffff:127.0.0.1", "0.0.0.0", "::", "10.0.0.2"];
    expect(hosts.map(isLoopbackHost)).toEqual([true, true, true, true, true, false, false, false]);
    expect([exposedWithoutKey("0.0.0.0", undefined), exposedWithoutKey("0.0.0.0", "k")]).toEqual([true, false]);
    expect(exposedWithoutKey("127.0.0.1", undefined)).toBe(false);
    expect([clientHost("0.0.0.0"), urlHost("::"), urlHost("::1"), urlHost("10.0.0.2")]).toEqual([
      "127.0.0.1",
      "[::]",
      "[::1]",
      "10.0.0.2",
    ]);
  });
});
