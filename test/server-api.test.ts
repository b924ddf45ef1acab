/**
 * `memento serve` driven by the official `openai` client over loopback: a tiny random model (toy tokenizer,
 * 2 layers of 32) and, for Memento structure, the same model behind a backend that forces a cycle of
 * block / memento markers so the engine evicts blocks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { createEngine, type MementoEngine } from "../src/engine/engine.js";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import type { Backend, DecodeInput, SeqId } from "../src/engine/types.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { loadModel } from "../src/model/index.js";
import { lenientTokenizer, loadServingModel } from "../src/engine/index.js";
import { startServer, type StartedServer } from "../src/server/index.js";
import { writeRandomModelDir } from "./helpers/random-model.js";

let dir: string;
let server: StartedServer;
let engine: MementoEngine;
let client: OpenAI;
const MODEL = "toy-random";
const user = (content: string) => [{ role: "user" as const, content }];
/** The `memento` extension of `usage`. */
const memOf = (u: OpenAI.CompletionUsage | undefined): Record<string, number> =>
  (u as unknown as { memento: Record<string, number> }).memento;
/** Its KV fields (timings differ between runs). */
const kvOf = (u: OpenAI.CompletionUsage | undefined) => {
  const { blocks, evictions, evicted_tokens, peak_kv_tokens, final_kv_tokens, kv_auc_tokens } = memOf(u);
  return { blocks, evictions, evicted_tokens, peak_kv_tokens, final_kv_tokens, kv_auc_tokens };
};

/** The reference backend, except that the next token is forced to follow `pattern` by logical position. */
class CyclingBackend implements Backend {
  readonly name = "cycling";
  readonly vocabSize: number;
  readonly maxSequences = Infinity;
  constructor(
    readonly inner: ReferenceBackend,
    private readonly pattern: number[],
  ) {
    this.vocabSize = inner.vocabSize;
  }
  private force(logits: Float32Array, lastPosition: number): Float32Array {
    const out = new Float32Array(logits.length);
    out[this.pattern[(lastPosition + 1) % this.pattern.length]] = 1e4;
    return out;
  }
  allocate() {
    return this.inner.allocate();
  }
  async prefill(seq: SeqId, tokens: readonly number[], positions: readonly number[]) {
    return this.force(await this.inner.prefill(seq, tokens, positions), positions[positions.length - 1]);
  }
  async decode(batch: readonly DecodeInput[]) {
    const l = await this.inner.decode(batch);
    return l.map((x, i) => this.force(x, batch[i].position));
  }
  evict(seq: SeqId, start: number, end: number) {
    return this.inner.evict(seq, start, end);
  }
  async recompute(seq: SeqId, tokens: readonly number[], positions: readonly number[]) {
    return this.force(await this.inner.recompute(seq, tokens, positions), positions[positions.length - 1]);
  }
  free(seq: SeqId) {
    return this.inner.free(seq);
  }
  residentTokens(seq: SeqId) {
    return this.inner.residentTokens(seq);
  }
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function errorOf(
  p: Promise<unknown>,
): Promise<{ status: number; error: { message: string; type: string; param: string | null; code: string | null } }> {
  try {
    await p;
  } catch (e) {
    const err = e as InstanceType<typeof OpenAI.APIError>;
    return { status: err.status as number, error: err.error as never };
  }
  throw new Error("expected an error");
}

async function post(
  path: string,
  body: string,
  headers: Record<string, string> = { "content-type": "application/json" },
) {
  const r = await fetch(server.url + path, { method: "POST", headers, body });
  return { status: r.status, body: (await r.json()) as { error: Record<string, unknown> } };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "memento-serve-"));
  writeRandomModelDir(join(dir, MODEL), { seed: 3 });
  const m = await loadServingModel({ modelDir: join(dir, MODEL), kvBudgetTokens: 20_000 });
  engine = m.engine;
  server = await startServer({
    engine,
    tokenizer: m.tokenizer,
    modelName: m.name,
    maxModelLen: m.maxModelLen,
    port: 0,
    ownsEngine: true,
    defaultMetrics: false,
  });
  client = new OpenAI({ baseURL: server.baseURL, apiKey: "none", maxRetries: 0 });
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("memento serve: OpenAI API", () => {
  it("lists the model and reports health", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    const h = await (await fetch(`${server.url}/health`)).json();
    expect(h).toMatchObject({ status: "ok", model: MODEL, running: 0, kv_total_tokens: 20_000 });
  });

  it("chat: greedy is deterministic, streaming gives the same text, usage carries the Memento stats", async () => {
    const req = { model: MODEL, messages: user("x=3 a:12345"), temperature: 0, max_tokens: 40 };
    const a = await client.chat.completions.create(req);
    const b = await client.chat.completions.create(req);
    expect(a.object).toBe("chat.completion");
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
    expect(a.choices[0].finish_reason).toBe("length");
    expect(a.usage).toMatchObject({ completion_tokens: 40, total_tokens: a.usage!.prompt_tokens + 40 });
    expect(a.usage!.prompt_tokens).toBe(m_promptLen("x=3 a:12345"));
    const mem = memOf(a.usage);
    expect(mem).toMatchObject({
      blocks: 0,
      evictions: 0,
      peak_kv_tokens: a.usage!.prompt_tokens + 39,
      final_kv_tokens: a.usage!.prompt_tokens + 39,
    });

    // Sampling with a seed: same seed, same text, streamed or not.
    const sampled = { model: MODEL, messages: user("x=1 a:55555"), temperature: 1, seed: 7, max_tokens: 60 };
    const c = await client.chat.completions.create(sampled);
    const stream = await client.chat.completions.create({
      ...sampled,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const ch of stream) {
      expect(ch.object).toBe("chat.completion.chunk");
      if (ch.choices[0]?.delta?.content) chunks++;
      text += ch.choices[0]?.delta?.content ?? "";
      finish = ch.choices[0]?.finish_reason ?? finish;
      if (ch.usage) usage = ch.usage;
    }
    expect(text).toBe(c.choices[0].message.content);
    expect(text.length).toBeGreaterThan(10);
    expect(chunks).toBeGreaterThan(5);
    // An untrained model may sample its eos (<|im_end|>) early: "stop"; otherwise "length".
    expect(finish).toBe(c.choices[0].finish_reason);
    expect(usage).toMatchObject({ completion_tokens: c.usage!.completion_tokens, memento: kvOf(c.usage) });
    const other = await client.chat.completions.create({ ...sampled, seed: 8 });
    expect(other.choices[0].message.content).not.toBe(text);
  });

  it("stop strings cut the text; /v1/completions works on a raw prompt", async () => {
    const base = { model: MODEL, messages: user("x=4 a:98765"), temperature: 1, seed: 11, max_tokens: 80 };
    const full = (await client.chat.completions.create(base)).choices[0].message.content!;
    expect(full.length, "pick another seed: this one samples eos too early").toBeGreaterThan(30);
    const stop = full.slice(20, 22);
    const cut = await client.chat.completions.create({ ...base, stop: [stop] });
    expect(cut.choices[0].finish_reason).toBe("stop");
    expect(cut.choices[0].message.content).toBe(full.slice(0, full.indexOf(stop)));

    const prompt = "<|im_start|>user\nx=4 a:98765<|im_end|>\n<|im_start|>assistant\n";
    const comp = await client.completions.create({ model: MODEL, prompt, temperature: 1, seed: 11, max_tokens: 80 });
    expect(comp.object).toBe("text_completion");
    expect(comp.choices[0].text).toBe(full); // same tokens as the chat template renders
    const streamed = await client.completions.create({
      model: MODEL,
      prompt,
      temperature: 1,
      seed: 11,
      max_tokens: 80,
      stream: true,
    });
    let t = "";
    for await (const ch of streamed) t += ch.choices[0]?.text ?? "";
    expect(t).toBe(full);
  });

  it("bad input gets OpenAI-shaped 4xx errors; unknown routes and models 404", async () => {
    const bad = async (body: Record<string, unknown>) =>
      errorOf(client.chat.completions.create({ model: MODEL, messages: user("hi"), ...body } as never));
    let e = await bad({ temperature: "hot" });
    expect(e.status).toBe(400);
    expect(e.error).toMatchObject({ type: "invalid_request_error", param: "temperature" });
    expect(typeof e.error.message).toBe("string");
    expect((await bad({ messages: [] })).error.param).toBe("messages");
    expect((await bad({ messages: [{ role: "wizard", content: "x" }] })).error.param).toBe("messages[0].role");
    expect((await bad({ n: 2 })).error.param).toBe("n");
    expect((await bad({ max_tokens: 0 })).status).toBe(400);
    expect((await bad({ max_tokens: 1e12 })).error.param).toBe("max_tokens");
    expect((await bad({ top_p: 0 })).status).toBe(400);
    e = await bad({ block_masking: { keepLastNBlocks: -5 } });
    expect(e.error.param).toBe("block_masking.keepLastNBlocks");
    expect((await bad({ memento: { nonsense: true } })).status).toBe(400);
    e = await bad({ model: "gpt-4o" });
    expect(e.status).toBe(404);
    expect(e.error).toMatchObject({ code: "model_not_found", type: "invalid_request_error", param: "model" });
    e = await errorOf(client.models.retrieve("nope"));
    expect(e.status).toBe(404);
    e = await errorOf(client.completions.create({ model: MODEL, prompt: [999999], max_tokens: 2 }));
    expect(e.status).toBe(400);

    let r = await post("/v1/chat/completions", "{not json");
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ type: "invalid_request_error", code: "invalid_json" });
    r = await post("/v1/chat/completions", "[1,2]");
    expect(r.status).toBe(400);
    r = await post("/v1/chat/completions", "", { "content-type": "application/json" });
    expect(r.status).toBe(400);
    // curl -d without a content type still parses as JSON.
    r = await post("/v1/chat/completions", JSON.stringify({ model: MODEL, messages: user("hi"), max_tokens: 2 }), {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(r.status).toBe(200);
    const nf = await fetch(`${server.url}/v1/nothing`);
    expect(nf.status).toBe(404);
    expect(((await nf.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
    const h = await fetch(`${server.url}/health`);
    expect(h.status).toBe(200);
  });

  it("a client disconnect cancels the request and frees its KV at once (streaming and not)", async () => {
    const body = JSON.stringify({
      model: MODEL,
      messages: user("x=9 a:11111"),
      temperature: 0,
      max_tokens: 4000,
      stream: true,
    });
    const ac = new AbortController();
    const res = await fetch(`${server.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    expect(engine.stats().running).toBe(1);
    ac.abort();
    await waitFor(() => engine.stats().running === 0 && engine.stats().waiting === 0);
    expect(engine.stats().kvUsedTokens).toBe(0);
    expect((engine.backend as ReferenceBackend).sequences).toBe(0);

    const ac2 = new AbortController();
    const pending = fetch(`${server.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: user("x=9 a:11111"), temperature: 0, max_tokens: 4000 }),
      signal: ac2.signal,
    }).catch(() => undefined);
    await waitFor(() => engine.stats().running === 1);
    ac2.abort();
    await pending;
    await waitFor(() => engine.stats().running === 0);
    expect(engine.stats().kvUsedTokens).toBe(0);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/memento_requests_total\{endpoint="chat",finish_reason="cancelled"\} 2/);
  });

  it("concurrent requests are decoded together in one batch", async () => {
    const before = engine.stats().steps;
    const reqs = [1, 2, 3, 4].map((s) =>
      client.chat.completions.create({
        model: MODEL,
        messages: user(`x=${s} a:12121`),
        temperature: 0,
        max_tokens: 50,
      }),
    );
    const out = await Promise.all(reqs);
    for (const o of out) expect(o.usage!.completion_tokens).toBe(50);
    expect(engine.stats().peakRunning).toBeGreaterThanOrEqual(2);
    expect(engine.stats().steps - before).toBeLessThan(150); // 200 tokens in far fewer steps than one per token
  });

  it("/metrics exposes the engine gauges and request histograms", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of [
      "memento_num_requests_running 0",
      "memento_num_requests_waiting 0",
      "memento_kv_used_tokens 0",
      "memento_kv_total_tokens 20000",
      "memento_evictions_total",
      "memento_num_preemptions_total",
      "memento_generation_tokens_total",
      "memento_prompt_tokens_total",
      "memento_completion_tokens_total",
      "memento_time_to_first_token_seconds_bucket",
      "memento_e2e_request_latency_seconds_count",
      "memento_inter_token_latency_seconds_count",
      "memento_kv_cache_usage_perc 0",
      "memento_request_queue_time_seconds_count",
      'memento_requests_total{endpoint="chat",finish_reason="length"}',
      'memento_request_errors_total{endpoint="chat",status="400"}',
    ]) {
      expect(text).toContain(name);
    }
  });
});

function m_promptLen(content: string): number {
  // `<|im_start|>` `user` `\n` content `<|im_end|>` `\n` `<|im_start|>` `assistant` `\n` with the char tokenizer.
  return 3 + content.length + 5;
}

describe("memento serve: block eviction, overload, stress", () => {
  let mdir: string;
  let mserver: StartedServer;
  let mengine: MementoEngine;
  let mclient: OpenAI;

  beforeAll(async () => {
    mdir = join(dir, MODEL);
    const tok = loadTokenizer(mdir);
    const st = tok.specialTokens;
    const ch = (c: string) => tok.encode(c)[0];
    const pattern = [
      st.blockStart,
      ...[..."abcdefghij"].map(ch),
      st.blockEnd,
      st.summaryStart,
      ch("x"),
      ch("="),
      ch("1"),
      st.summaryEnd,
    ];
    const inner = new ReferenceBackend(loadModel(mdir));
    mengine = createEngine({
      backend: new CyclingBackend(inner, pattern),
      tokenizer: lenientTokenizer(tok),
      kvBudgetTokens: 2000,
      maxRunning: 4,
      maxWaiting: 2,
    });
    mserver = await startServer({
      engine: mengine,
      tokenizer: tok,
      modelName: "cycling",
      maxModelLen: 4096,
      port: 0,
      ownsEngine: true,
      defaultMetrics: false,
    });
    mclient = new OpenAI({ baseURL: mserver.baseURL, apiKey: "none", maxRetries: 0 });
  });
  afterAll(async () => {
    await mserver?.close();
  });

  it("evicts each finished block; usage and /metrics show it; per-request block_masking overrides", async () => {
    const req = { model: "cycling", messages: user("go"), temperature: 0, max_tokens: 120 };
    const r = await mclient.chat.completions.create(req);
    const text = r.choices[0].message.content!;
    expect(text).toContain("<|summary_end|>");
    const mem = memOf(r.usage);
    const total = r.usage!.prompt_tokens + r.usage!.completion_tokens;
    expect(mem.blocks).toBeGreaterThanOrEqual(7);
    expect(mem.evictions).toBeGreaterThanOrEqual(6);
    expect(mem.evicted_tokens).toBe(mem.evictions * 10);
    // Resident KV only grows by the 7 kept tokens of each 17-token cycle: the peak is the final count.
    expect(mem.peak_kv_tokens).toBe(total - 1 - mem.evicted_tokens);
    expect(mem.final_kv_tokens).toBe(mem.peak_kv_tokens);
    expect(mem.peak_kv_tokens).toBeLessThan(0.6 * total);

    const skip = await mclient.chat.completions.create({ ...req, skip_special_tokens: true } as never);
    expect(skip.choices[0].message.content).not.toContain("<|");
    expect(skip.choices[0].message.content).toContain("x=1");

    const vanilla = await mclient.chat.completions.create({ ...req, block_masking: { keepLastNBlocks: -1 } } as never);
    const vm = memOf(vanilla.usage);
    expect(vm.evictions).toBe(0);
    expect(vm.peak_kv_tokens).toBe(total - 1);
    const keep2 = await mclient.chat.completions.create({ ...req, memento: { keep_last_n_blocks: 2 } } as never);
    const km = memOf(keep2.usage);
    expect(km.evictions).toBe(mem.evictions - 2);

    const metrics = await (await fetch(`${mserver.url}/metrics`)).text();
    const ev = Number(/^memento_evictions_total (\d+)/m.exec(metrics)?.[1]);
    expect(ev).toBe(mem.evictions * 2 + km.evictions);
  });

  it("overload: beyond max running the queue waits, beyond the queue 429; a prompt larger than the KV budget is a 400", async () => {
    const long = { model: "cycling", messages: user("go"), temperature: 0, max_tokens: 3000, stream: true };
    const controllers: AbortController[] = [];
    const open = async () => {
      const ac = new AbortController();
      controllers.push(ac);
      const res = await fetch(`${mserver.baseURL}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(long),
        signal: ac.signal,
      });
      expect(res.status).toBe(200);
      return res;
    };
    const streams = await Promise.all([1, 2, 3, 4, 5, 6].map(open)); // 4 running + 2 waiting
    await waitFor(() => mengine.stats().running + mengine.stats().waiting === 6);
    const e = await errorOf(
      mclient.chat.completions.create({ model: "cycling", messages: user("one more"), max_tokens: 5 }),
    );
    expect(e.status).toBe(429);
    expect(e.error).toMatchObject({ type: "rate_limit_error", code: "queue_full" });
    for (const ac of controllers) ac.abort();
    void streams;
    await waitFor(() => mengine.stats().running === 0 && mengine.stats().waiting === 0);
    expect(mengine.stats().kvUsedTokens).toBe(0);

    const big = await errorOf(
      mclient.chat.completions.create({ model: "cycling", messages: user("y".repeat(2100)), max_tokens: 5 }),
    );
    expect(big.status).toBe(400);
    expect(big.error.code).toBe("context_length_exceeded");
  });

  it("stress: many concurrent streams with random disconnects end with every KV slot free and the server healthy", async () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const one = async (i: number) => {
      const ac = new AbortController();
      const abortAfter = rand() < 0.5 ? Math.floor(rand() * 30) : Infinity;
      try {
        const res = await fetch(`${mserver.baseURL}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "cycling",
            messages: user(`req ${i}`),
            max_tokens: 50 + Math.floor(rand() * 200),
            stream: true,
          }),
          signal: ac.signal,
        });
        if (res.status === 429) return "429";
        const reader = res.body!.getReader();
        for (let n = 0; ; n++) {
          if (n >= abortAfter) {
            ac.abort();
            return "aborted";
          }
          const { done } = await reader.read();
          if (done) return "done";
        }
      } catch {
        return "aborted";
      }
    };
    const outcomes: string[] = [];
    for (let wave = 0; wave < 3; wave++)
      outcomes.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => one(wave * 8 + i)))));
    expect(outcomes).toContain("done");
    expect(outcomes).toContain("aborted");
    await waitFor(() => mengine.stats().running === 0 && mengine.stats().waiting === 0);
    await mengine.idle();
    expect(mengine.stats().kvUsedTokens).toBe(0);
    const h = await fetch(`${mserver.url}/health`);
    expect(h.status).toBe(200);
    const r = await mclient.chat.completions.create({
      model: "cycling",
      messages: user("still there?"),
      max_tokens: 8,
    });
    expect(r.usage!.completion_tokens).toBe(8);
  });

  it("optional API key", async () => {
    const keyed = await startServer({
      engine: mengine,
      tokenizer: loadTokenizer(mdir),
      modelName: "cycling",
      maxModelLen: 4096,
      port: 0,
      apiKey: "sekret",
      defaultMetrics: false,
    });
    try {
      const e = await errorOf(new OpenAI({ baseURL: keyed.baseURL, apiKey: "wrong", maxRetries: 0 }).models.list());
      expect(e.status).toBe(401);
      const ok = await new OpenAI({ baseURL: keyed.baseURL, apiKey: "sekret", maxRetries: 0 }).models.list();
      expect(ok.data[0].id).toBe("cycling");
      expect((await fetch(`${keyed.url}/health`)).status).toBe(200);
    } finally {
      await keyed.close();
    }
  });
});
