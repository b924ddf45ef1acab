/**
 * src/server/sse.ts and disconnect.ts with fakes: a writable that records what is written, a request handle
 * that replays given events, and event emitters standing in for the client's socket.
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import type { DoneEvent, EngineEvent, RequestStats } from "../src/engine/types.js";
import { cancelOnDisconnect } from "../src/server/disconnect.js";
import { EventStream, pipeCompletion, SSE_HEADERS, type SseTarget } from "../src/server/sse.js";
import { ApiError } from "../src/server/errors.js";

class FakeResponse implements SseTarget {
  writes: string[] = [];
  head: [number, Record<string, string>] | undefined;
  writableEnded = false;
  destroyed = false;
  writeHead(status: number, headers: Record<string, string>) {
    this.head = [status, headers];
  }
  write(chunk: string) {
    this.writes.push(chunk);
  }
  end() {
    this.writableEnded = true;
  }
  /** The data of each event, parsed when JSON. */
  events(): unknown[] {
    return this.writes.map((w) => {
      expect(w).toMatch(/^data: .*\n\n$/s);
      const data = w.slice(6, -2);
      return data === "[DONE]" ? data : JSON.parse(data);
    });
  }
}

/** A handle replaying `events` (then failing with `fail`, if given). */
function fakeHandle(events: EngineEvent[], fail?: Error) {
  const handle = {
    cancelled: 0,
    cancel() {
      handle.cancelled++;
    },
    async *[Symbol.asyncIterator]() {
      for (const e of events) yield e;
      if (fail) throw fail;
    },
  };
  return handle;
}

const stats = { promptTokens: 3, completionTokens: 2, blocks: 0 } as RequestStats;
const done = (extra: Partial<DoneEvent> = {}): DoneEvent => ({ type: "done", finishReason: "length", stats, ...extra });
const token = (text?: string): EngineEvent => ({
  type: "token",
  id: 1,
  position: 0,
  ...(text !== undefined ? { text } : {}),
});
const head = { id: "chatcmpl-1", created: 1, model: "toy" };

describe("EventStream", () => {
  it("opens with 200 and the SSE headers, writes data events, drops writes once the response ended", () => {
    const res = new FakeResponse();
    const s = new EventStream(res);
    s.open();
    expect(res.head).toEqual([200, { ...SSE_HEADERS }]);
    s.send({ a: 1 });
    s.done();
    expect(res.writes).toEqual(['data: {"a":1}\n\n', "data: [DONE]\n\n"]);
    s.close();
    s.close();
    expect(res.writableEnded).toBe(true);
    s.send({ b: 2 });
    res.writableEnded = false;
    res.destroyed = true;
    s.send({ c: 3 });
    expect(res.writes.length).toBe(2);
  });
});

describe("pipeCompletion", () => {
  it("chat: role chunk, a chunk per piece of text, held-back text, final chunk, usage, [DONE]", async () => {
    const res = new FakeResponse();
    const seen: DoneEvent[] = [];
    const events = [
      token("a"),
      token(""),
      token(),
      { type: "evict", start: 0, end: 1, block: 0, trigger: 1, freed: 1 } as const,
    ];
    await pipeCompletion(new EventStream(res), fakeHandle([...events, done({ text: "b" })]), {
      endpoint: "chat",
      head,
      includeUsage: true,
      onDone: (d) => seen.push(d),
    });
    const out = res.events() as Array<Record<string, unknown>>;
    const choiceOf = (e: Record<string, unknown> | string) =>
      typeof e === "string" ? e : ((e.choices as unknown[])[0] ?? "usage");
    expect(out.map(choiceOf)).toEqual([
      { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
      { index: 0, delta: { content: "a" }, logprobs: null, finish_reason: null },
      { index: 0, delta: { content: "b" }, logprobs: null, finish_reason: null },
      { index: 0, delta: {}, logprobs: null, finish_reason: "length", stop_reason: null },
      "usage",
      "[DONE]",
    ]);
    expect(out[3].memento).toMatchObject({ blocks: 0 });
    expect(out[4].usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    expect(seen.length).toBe(1);
  });

  it("completions: no role chunk, no usage chunk unless asked", async () => {
    const res = new FakeResponse();
    await pipeCompletion(
      new EventStream(res),
      fakeHandle([token("x"), done({ finishReason: "stop", stopReason: "y" })]),
      {
        endpoint: "completions",
        head,
        includeUsage: false,
      },
    );
    const out = res.events() as Array<Record<string, unknown>>;
    expect(out.length).toBe(3);
    expect(out[0]).toMatchObject({ object: "text_completion", choices: [{ text: "x", finish_reason: null }] });
    expect(out[1]).toMatchObject({ choices: [{ text: "", finish_reason: "stop", stop_reason: "y" }] });
    expect(out[2]).toBe("[DONE]");
  });

  it("a generation error becomes an error object before [DONE]", async () => {
    const res = new FakeResponse();
    const handle = fakeHandle([done({ finishReason: "error", message: "backend failure: boom" })]);
    await pipeCompletion(new EventStream(res), handle, { endpoint: "completions", head, includeUsage: true });
    expect(res.events()).toEqual([
      { error: { message: "backend failure: boom", type: "server_error", param: null, code: "generation_error" } },
      "[DONE]",
    ]);
  });

  it("a cancelled request just stops: no final chunk, no [DONE]", async () => {
    const res = new FakeResponse();
    let finished = 0;
    const handle = fakeHandle([token("a"), done({ finishReason: "cancelled" })]);
    await pipeCompletion(new EventStream(res), handle, {
      endpoint: "completions",
      head,
      includeUsage: true,
      onDone: () => finished++,
    });
    expect(res.events().length).toBe(1);
    expect(finished).toBe(1);
  });

  it("a request the server cancelled ends with the caller's error event, then [DONE]; no final chunk", async () => {
    const res = new FakeResponse();
    const handle = fakeHandle([token("a"), done({ finishReason: "cancelled" })]);
    await pipeCompletion(new EventStream(res), handle, {
      endpoint: "completions",
      head,
      includeUsage: true,
      cancelledError: () => new ApiError(503, "the server is shutting down", "cancelled"),
    });
    expect(res.events().slice(1)).toEqual([
      {
        error: { message: "the server is shutting down", type: "service_unavailable", param: null, code: "cancelled" },
      },
      "[DONE]",
    ]);
  });

  it("a failure while iterating is an internal error event, then [DONE]; the request is cancelled", async () => {
    const res = new FakeResponse();
    const handle = fakeHandle([token("a")], new Error("oops"));
    await pipeCompletion(new EventStream(res), handle, { endpoint: "completions", head, includeUsage: false });
    expect(res.events().slice(1)).toEqual([
      { error: { message: "internal error: oops", type: "server_error", param: null, code: "internal_error" } },
      "[DONE]",
    ]);
    expect(handle.cancelled).toBe(1);
  });
});

describe("cancelOnDisconnect", () => {
  const setup = () => {
    const req = Object.assign(new EventEmitter(), { socket: { destroyed: false } });
    const res = Object.assign(new EventEmitter(), { writableEnded: false, destroyed: false });
    const handle = { cancelled: 0, cancel: () => handle.cancelled++ };
    return { req, res, handle };
  };

  it("cancels when the response closes before its end, or the request is aborted", () => {
    const a = setup();
    cancelOnDisconnect(a.req, a.res, a.handle);
    a.res.emit("close");
    expect(a.handle.cancelled).toBe(1);
    const b = setup();
    cancelOnDisconnect(b.req, b.res, b.handle);
    b.req.emit("aborted");
    expect(b.handle.cancelled).toBe(1);
  });

  it("does not cancel a response that ended, nor once it stopped watching", () => {
    const a = setup();
    cancelOnDisconnect(a.req, a.res, a.handle);
    a.res.writableEnded = true;
    a.res.emit("close");
    const b = setup();
    const stop = cancelOnDisconnect(b.req, b.res, b.handle);
    stop();
    b.res.emit("close");
    b.req.emit("aborted");
    expect([a.handle.cancelled, b.handle.cancelled]).toEqual([0, 0]);
    expect(b.res.listenerCount("close") + b.req.listenerCount("aborted")).toBe(0);
  });

  it("cancels at once when the client is already gone", () => {
    const a = setup();
    a.req.socket.destroyed = true;
    cancelOnDisconnect(a.req, a.res, a.handle);
    expect(a.handle.cancelled).toBe(1);
  });
});
