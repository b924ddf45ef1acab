import { afterEach, describe, expect, it } from "vitest";
import {
  OpenAIProvider,
  ProviderAnswerError,
  ProviderRequestError,
  createProvider,
  type OpenAIProviderOptions,
  type ProviderEvent,
} from "../src/data/providers/index.js";
import { OfflineProvider } from "../src/data/providers/offline.js";
import {
  RateLimiter,
  backoffDelay,
  classifyFailure,
  parseRetryAfter,
  type Clock,
} from "../src/data/providers/openai.js";
import { UserError } from "../src/errors.js";
import { startFakeOpenAI, stopFakeOpenAI, useFakeOpenAI } from "./helpers/fake-openai.js";

const SENTENCES = [
  "We need the sum of the first 10 odd numbers.",
  "The k-th odd number is 2k - 1, so the sum is",
  "1 + 3 + 5 + ... + 19 = 100.",
  "Let me check with a smaller case.",
  "For n = 3 the sum is 1 + 3 + 5 = 9 = 3^2.",
  "Therefore the sum of the first n odd numbers is n^2.",
  "Alternatively, pair the terms from both ends.",
];

const BLOCKS = [
  "We define f(n) as the number of ways to tile a 2 x n board. Clearly f(1) = 1 and f(2) = 2. Using a recurrence, f(n) = f(n-1) + f(n-2). So f(3) = 3 and f(4) = 5.",
  "Let me check f(5). By the recurrence f(5) = f(4) + f(3) = 5 + 3 = 8. Listing the tilings by hand also gives 8, which confirms it. Therefore the answer is 8.",
];

const openai = useFakeOpenAI();
afterEach(() => {
  openai.fake.faults = [];
  openai.fake.always = undefined;
  openai.fake.rejectResponseFormat = false;
  openai.fake.requests.length = 0;
});

function provider(extra: Partial<OpenAIProviderOptions> = {}, events?: ProviderEvent[]): OpenAIProvider {
  return new OpenAIProvider({
    baseURL: openai.fake.baseURL,
    apiKey: "test-key",
    model: "fake-model",
    retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 50, timeoutMs: 200 },
    onEvent: events ? (e) => events.push(e) : undefined,
    ...extra,
  });
}

describe("openai provider against the fake server", () => {
  it("answers all four stages with the right shapes, sending our prompts and json mode", async () => {
    const p = provider({ models: { judge: "judge-model" }, temperature: 0.2 });
    const offline = new OfflineProvider();
    const scores = await p.scoreBoundaries(SENTENCES);
    expect(scores).toEqual(await offline.scoreBoundaries(SENTENCES));
    expect(scores).toHaveLength(SENTENCES.length - 1);

    const mementos = await p.writeMementos("Count 2 x n domino tilings.", BLOCKS);
    expect(mementos).toHaveLength(2);
    const judgments = await p.judgeMementos(BLOCKS, mementos);
    expect(judgments).toHaveLength(2);
    for (const j of judgments) {
      const d = j.dimensions;
      expect(j.score).toBe(d.formulas + d.values + d.methods + d.validation + d.noHallucination + d.resultFirst);
    }
    const refined = await p.refineMementos(BLOCKS, mementos, judgments, [1]);
    expect(refined).toHaveLength(1);

    const chat = openai.fake.requests.filter((r) => r.path === "/v1/chat/completions");
    expect(chat.map((r) => r.kind)).toEqual(["score", "compress", "judge", "refine"]);
    const bodies = chat.map((r) => r.body as { model: string; response_format?: unknown; temperature?: number });
    expect(bodies.map((b) => b.model)).toEqual(["fake-model", "fake-model", "judge-model", "fake-model"]);
    for (const b of bodies) {
      expect(b.response_format).toEqual({ type: "json_object" });
      expect(b.temperature).toBe(0.2);
    }
    expect(p.models).toEqual({ score: "fake-model", compress: "fake-model", judge: "judge-model" });
    expect(p.heuristic).toBe(false);
  });

  it("sums usage over requests and prices it", async () => {
    const p = provider({ prices: { inputPerMillion: 2, outputPerMillion: 8 } });
    await p.scoreBoundaries(SENTENCES);
    await p.writeMementos("problem", BLOCKS);
    openai.fake.faults.push({ kind: "non-json" }); // a re-ask is billed too
    await p.scoreBoundaries(SENTENCES.slice(0, 4));
    const billed = openai.fake.requests.filter((r) => r.usage);
    expect(billed).toHaveLength(4);
    const prompt = billed.reduce((a, r) => a + r.usage!.prompt_tokens, 0);
    const completion = billed.reduce((a, r) => a + r.usage!.completion_tokens, 0);
    expect(p.usage()).toEqual({ promptTokens: prompt, completionTokens: completion, requests: 4 });
    expect(p.costUsd()).toBeCloseTo((prompt * 2 + completion * 8) / 1e6, 12);
    expect(provider().costUsd()).toBe(0);
  });

  it("retries 429 and honours Retry-After", async () => {
    const events: ProviderEvent[] = [];
    const p = provider({}, events);
    openai.fake.faults.push({ kind: "429", retryAfter: "0.15" });
    const t0 = Date.now();
    const scores = await p.scoreBoundaries(SENTENCES);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(scores).toHaveLength(SENTENCES.length - 1);
    expect(events).toEqual([expect.objectContaining({ type: "retry", status: 429, delayMs: 150 })]);
    expect(openai.fake.count("score")).toBe(2);
  });

  it("prefers retry-after-ms over Retry-After", async () => {
    const events: ProviderEvent[] = [];
    const p = provider({}, events);
    openai.fake.faults.push({ kind: "429", retryAfter: "30", retryAfterMs: "20" });
    await p.scoreBoundaries(SENTENCES);
    expect(events[0]).toMatchObject({ type: "retry", delayMs: 20 });
  });

  it.each(["500", "503", "hang", "truncate", "bad-json-body", "reset"] as const)(
    "recovers from a %s fault by retrying",
    async (kind) => {
      const events: ProviderEvent[] = [];
      const p = provider({}, events);
      openai.fake.faults.push({ kind }, { kind });
      const scores = await p.scoreBoundaries(SENTENCES);
      expect(scores).toEqual(await new OfflineProvider().scoreBoundaries(SENTENCES));
      expect(openai.fake.count("score")).toBe(3);
      expect(events.filter((e) => e.type === "retry")).toHaveLength(2);
      expect(p.stats().retries).toBe(2);
      for (const e of events) if (e.type === "retry") expect(e.delayMs).toBeLessThanOrEqual(20);
    },
  );

  it.each(["500", "hang", "reset", "truncate"] as const)(
    "gives up after the configured attempts on %s",
    async (kind) => {
      const p = provider({ retry: { attempts: 3, baseDelayMs: 5, timeoutMs: 150 } });
      openai.fake.always = { kind };
      const err = await p.scoreBoundaries(SENTENCES).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderRequestError);
      const e = err as ProviderRequestError;
      expect(e.attempts).toBe(3);
      expect(e.retryable).toBe(true);
      expect(e.stage).toBe("score");
      if (kind === "500") expect(e.status).toBe(500);
      expect(openai.fake.count("score")).toBe(3);
    },
  );

  it("does not retry a 401", async () => {
    const p = provider();
    openai.fake.always = { kind: "401" };
    const err = (await p.writeMementos("p", BLOCKS).catch((e: unknown) => e)) as ProviderRequestError;
    expect(err).toBeInstanceOf(ProviderRequestError);
    expect(err.status).toBe(401);
    expect(err.attempts).toBe(1);
    expect(err.retryable).toBe(false);
    expect(openai.fake.count()).toBe(1);
  });

  it.each(["non-json", "wrong-count"] as const)(
    "re-asks once after a %s answer, with the error in the conversation",
    async (kind) => {
      const events: ProviderEvent[] = [];
      const p = provider({}, events);
      openai.fake.faults.push({ kind, stage: "judge" });
      const judgments = await p.judgeMementos(BLOCKS, ["f(n) = f(n-1) + f(n-2)", "f(5) = 8"]);
      expect(judgments).toHaveLength(2);
      const chat = openai.fake.requests.filter((r) => r.kind === "judge");
      expect(chat).toHaveLength(2);
      const second = (chat[1].body as { messages: { role: string; content: string }[] }).messages;
      expect(second.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
      expect(second[3].content).toMatch(kind === "non-json" ? /not a JSON object/ : /expected exactly 2 judgments/);
      expect(events.map((e) => e.type)).toEqual(["reask"]);
      expect(p.stats().reasks).toBe(1);
    },
  );

  it("throws ProviderAnswerError when the re-asked answer is still bad", async () => {
    const p = provider();
    openai.fake.always = { kind: "wrong-count", stage: "score" };
    const err = await p.scoreBoundaries(SENTENCES).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderAnswerError);
    expect((err as ProviderAnswerError).stage).toBe("score");
    expect((err as ProviderAnswerError).validation).toMatch(/expected exactly 6 scores/);
    expect(openai.fake.count("score")).toBe(2);
    expect(p.stats().answerErrors).toBe(1);
  });

  it("falls back from json mode for the rest of the run when response_format is rejected", async () => {
    const events: ProviderEvent[] = [];
    const p = provider({}, events);
    openai.fake.rejectResponseFormat = true;
    expect(await p.scoreBoundaries(SENTENCES)).toHaveLength(SENTENCES.length - 1);
    expect(await p.writeMementos("p", BLOCKS)).toHaveLength(2);
    const chat = openai.fake.requests.filter((r) => r.path === "/v1/chat/completions");
    expect(chat.map((r) => r.status)).toEqual([400, 200, 200]);
    expect((chat[1].body as { response_format?: unknown }).response_format).toBeUndefined();
    expect((chat[2].body as { response_format?: unknown }).response_format).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual(["json-mode-off"]);
    expect(p.stats()).toMatchObject({ jsonMode: false, retries: 0 });
  });

  it("sends no response_format with jsonMode: false", async () => {
    const p = provider({ jsonMode: false });
    await p.scoreBoundaries(SENTENCES);
    expect((openai.fake.requests[0].body as { response_format?: unknown }).response_format).toBeUndefined();
  });

  it("is abortable while waiting on a hung request and during backoff", async () => {
    const p = provider({ retry: { attempts: 5, baseDelayMs: 10, timeoutMs: 5000 } });
    openai.fake.always = { kind: "hang" };
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stop now")), 50);
    const t0 = Date.now();
    await expect(p.scoreBoundaries(SENTENCES, ac.signal)).rejects.toThrow("stop now");
    expect(Date.now() - t0).toBeLessThan(1000);

    openai.fake.always = { kind: "429", retryAfter: "10" };
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(), 50);
    await expect(p.scoreBoundaries(SENTENCES, ac2.signal)).rejects.toThrow(/abort/i);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("serves GET /v1/models (the client can list models)", async () => {
    const res = await fetch(`${openai.fake.baseURL}/models`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: { id: string }[] }).data[0].id).toBe("fake-model");
  });

  it("returns [] without a request for windows of one sentence and no blocks", async () => {
    const p = provider();
    expect(await p.scoreBoundaries(["only one"])).toEqual([]);
    expect(await p.writeMementos("p", [])).toEqual([]);
    expect(await p.refineMementos([], [], [], [])).toEqual([]);
    expect(openai.fake.requests).toHaveLength(0);
  });
});

describe("openai provider pieces", () => {
  it("parses Retry-After forms", () => {
    const h = (o: Record<string, string>) => new Headers(o);
    expect(parseRetryAfter(h({ "retry-after": "2" }))).toBe(2000);
    expect(parseRetryAfter(h({ "retry-after": "0.5" }))).toBe(500);
    expect(parseRetryAfter(h({ "retry-after-ms": "120", "retry-after": "9" }))).toBe(120);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter(h({ "retry-after": "Thu, 01 Jan 2026 00:00:03 GMT" }), now)).toBe(3000);
    expect(parseRetryAfter(h({}))).toBeUndefined();
    expect(parseRetryAfter(h({ "retry-after": "soon" }))).toBeUndefined();
  });

  it("full-jitter backoff stays in [0, min(max, base*2^(k-1))]", () => {
    expect(backoffDelay(1, 100, 10_000, () => 0.999)).toBeCloseTo(99.9);
    expect(backoffDelay(4, 100, 10_000, () => 1)).toBe(800);
    expect(backoffDelay(20, 100, 10_000, () => 1)).toBe(10_000);
    expect(backoffDelay(3, 100, 10_000, () => 0)).toBe(0);
  });

  it("classifies failures", () => {
    expect(classifyFailure(new SyntaxError("Unexpected end of JSON input")).retryable).toBe(true);
    expect(classifyFailure(Object.assign(new Error("x"), { code: "ECONNRESET" })).retryable).toBe(true);
    expect(classifyFailure(new TypeError("terminated")).retryable).toBe(true);
    expect(classifyFailure(new Error("something else")).retryable).toBe(false);
  });

  it("rate limiter: requests and tokens per minute, first come first served", async () => {
    let t = 0;
    const waits: number[] = [];
    const clock: Clock = {
      now: () => t,
      sleep: async (ms) => {
        waits.push(ms);
        t += ms;
      },
    };
    const rl = new RateLimiter({ requestsPerMinute: 2, tokensPerMinute: 1000 }, clock);
    await rl.acquire(100);
    await rl.acquire(100);
    expect(t).toBe(0);
    await rl.acquire(100); // third request in the minute: waits for one request's refill (30 s)
    expect(t).toBe(30_000);
    rl.settle(100, 900); // the last one was much bigger than estimated: debt
    // tokens: 1000 - 300 - 800 + (30s * 1000/60s = 500 refilled, capped) ... wait for 100 tokens to be back
    await rl.acquire(100);
    expect(t).toBeGreaterThan(30_000);
    t = 0;
    const tokenLimited = new RateLimiter({ tokensPerMinute: 600 }, clock);
    waits.length = 0;
    await tokenLimited.acquire(600);
    await tokenLimited.acquire(60); // 60 tokens at 10 per second: 6 s
    expect(waits).toEqual([6000]);
    const ac = new AbortController();
    ac.abort(new Error("aborted wait"));
    await expect(tokenLimited.acquire(10, ac.signal)).rejects.toThrow("aborted wait");
  });

  it("rate limiter is used by the provider", async () => {
    const fakeServer = await startFakeOpenAI();
    try {
      let t = 0;
      const clock: Clock = {
        now: () => t,
        sleep: async (ms) => {
          t += ms;
        },
      };
      const p = new OpenAIProvider({
        baseURL: fakeServer.baseURL,
        model: "m",
        rateLimit: { requestsPerMinute: 1 },
        clock,
        retry: { timeoutMs: 2000 },
      });
      await p.scoreBoundaries(SENTENCES);
      await p.scoreBoundaries(SENTENCES);
      expect(t).toBe(60_000);
      expect(fakeServer.count("score")).toBe(2);
    } finally {
      await stopFakeOpenAI(fakeServer);
    }
  });
});

describe("createProvider", () => {
  it("builds both providers and validates options", () => {
    expect(createProvider({ provider: "offline" }).heuristic).toBe(true);
    const p = createProvider({
      provider: "openai",
      baseURL: "http://127.0.0.1:1/v1",
      model: "m",
      models: { judge: "j" },
    });
    expect(p.name).toBe("openai");
    expect(p.models).toEqual({ score: "m", compress: "m", judge: "j" });
    expect(() => createProvider({ provider: "openai", baseURL: "http://127.0.0.1:1/v1" })).toThrow(UserError);
    expect(() => createProvider({ provider: "openai", baseURL: "not a url", model: "m" })).toThrow(/baseURL/);
    expect(() =>
      createProvider({ provider: "openai", baseURL: "http://127.0.0.1:1/v1", model: "m", retry: { attempts: 0 } }),
    ).toThrow(/retry.attempts/);
    expect(() => createProvider({ provider: "nope" } as never)).toThrow(/unknown provider/);
  });
});
