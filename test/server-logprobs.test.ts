/**
 * `memento serve` answers `logprobs` / `top_logprobs` in OpenAI's shapes: the bundled toy model on the reference
 * backend, every returned logprob checked against log_softmax of the reference model's logits recomputed by one
 * full forward of prompt + completion under the request's Stage-2 memento pattern (blocks evicted mid-answer).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { bundledModelDir, loadServingModel } from "../src/engine/index.js";
import type { MementoTokenizer } from "../src/format/tokenizer.js";
import { DEFAULT_MASKING, trackerIdsOf } from "../src/masking/config.js";
import { mementoPattern } from "../src/masking/masks.js";
import { loadModel, type Qwen3Model } from "../src/model/index.js";
import { startServer, type StartedServer } from "../src/server/index.js";
import { LogprobsFormatter } from "../src/server/logprobs.js";
import { EventStream, pipeCompletion } from "../src/server/sse.js";
import type { EngineEvent, RequestStats } from "../src/engine/types.js";

let server: StartedServer;
let client: OpenAI;
let model: Qwen3Model;
let tokenizer: MementoTokenizer;
let name: string;

const PROBLEM = "s=0454 k=6";
/** Enough tokens for the toy model to close two blocks, so the check runs across evictions. */
const MAX_TOKENS = 180;

beforeAll(async () => {
  const m = await loadServingModel({ modelDir: bundledModelDir(), kvBudgetTokens: 20_000 });
  tokenizer = m.tokenizer;
  name = m.name;
  model = loadModel(bundledModelDir());
  server = await startServer({
    engine: m.engine,
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
});

/** log_softmax(logits of row q)[token] for every completion token, from one forward under the Stage-2 pattern. */
function recomputedLogprobs(promptIds: number[], completionIds: number[]): number[] {
  const ids = [...promptIds, ...completionIds];
  const pattern = mementoPattern(ids, promptIds.length, trackerIdsOf(tokenizer), DEFAULT_MASKING);
  const { logits } = model.forward(ids, pattern);
  const v = model.vocab;
  return completionIds.map((tok, i) => {
    const row = logits.subarray((promptIds.length + i - 1) * v, (promptIds.length + i) * v);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    return row[tok] - max - Math.log(sum);
  });
}

const chatBody = (extra: Record<string, unknown>) => ({
  model: name,
  messages: [{ role: "user" as const, content: PROBLEM }],
  temperature: 0,
  max_tokens: MAX_TOKENS,
  logprobs: true,
  top_logprobs: 3,
  ...extra,
});

type ChatWithIds = OpenAI.ChatCompletion & {
  prompt_token_ids: number[];
  choices: (OpenAI.ChatCompletion.Choice & { token_ids: number[]; forced_token_indices: number[] })[];
};

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(server.baseURL + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

describe("server logprobs", () => {
  it("each chat logprob equals log_softmax of the reference logits under the request's memento pattern (1e-4)", async () => {
    const r = (await client.chat.completions.create(
      chatBody({ return_tokens_as_token_ids: true, return_token_ids: true }) as never,
    )) as unknown as ChatWithIds;
    const choice = r.choices[0];
    const content = choice.logprobs!.content!;
    expect(content.length).toBe(choice.token_ids.length);
    expect((r.usage as unknown as { memento: { evictions: number } }).memento.evictions).toBeGreaterThan(0);
    expect(content.map((c) => c.token)).toEqual(choice.token_ids.map((id) => `token_id:${id}`));
    const want = recomputedLogprobs(r.prompt_token_ids, choice.token_ids);
    for (let i = 0; i < content.length; i++) {
      expect(Math.abs(content[i].logprob - want[i]), `token ${i}`).toBeLessThan(1e-4);
      // Greedy: the chosen token is the most likely one, and the alternatives come best first.
      expect(content[i].top_logprobs.length).toBe(3);
      expect(content[i].top_logprobs[0].token).toBe(content[i].token);
      expect(content[i].top_logprobs[0].logprob).toBe(content[i].logprob);
      const tops = content[i].top_logprobs.map((t) => t.logprob);
      expect(tops).toEqual([...tops].sort((a, b) => b - a));
      expect(content[i].bytes).toEqual([...Buffer.from(content[i].token)]);
    }
    expect(choice.forced_token_indices).toEqual([]);
  });

  it("return_token_ids names the <|block_end|> tokens the engine forced, each still with its logprob", async () => {
    const r = (await client.chat.completions.create(
      chatBody({ return_token_ids: true, max_tokens: 60, block_masking: { max_block_tokens: 8 } }) as never,
    )) as unknown as ChatWithIds;
    const { token_ids: ids, forced_token_indices: forced } = r.choices[0];
    expect(forced.length).toBeGreaterThan(0);
    for (const i of forced) expect(ids[i]).toBe(tokenizer.specialTokens.blockEnd);
    expect(r.choices[0].logprobs!.content!.length).toBe(ids.length);
  });

  it("token strings are the tokenizer's decode of the single id, markers included", async () => {
    const r = (await client.chat.completions.create(
      chatBody({ return_token_ids: true, max_tokens: 40 }) as never,
    )) as unknown as ChatWithIds;
    const ids = r.choices[0].token_ids;
    expect(r.choices[0].logprobs!.content!.map((c) => c.token)).toEqual(ids.map((id) => tokenizer.decode([id])));
    expect(r.choices[0].logprobs!.content![0].token).toBe("<think>");
  });

  it("a chat stream's logprobs concatenate to the non-streamed answer's", async () => {
    const whole = await client.chat.completions.create(chatBody({ max_tokens: 60 }) as never);
    const stream = await client.chat.completions.create({ ...chatBody({ max_tokens: 60 }), stream: true } as never);
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    for await (const ch of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      streamed.push(...(ch.choices[0]?.logprobs?.content ?? []));
    }
    expect(streamed).toEqual((whole as OpenAI.ChatCompletion).choices[0].logprobs!.content);
  });

  it("completions: the legacy shape, the chosen token among up to logprobs + 1 alternatives, same values as chat", async () => {
    const chat = (await client.chat.completions.create(
      chatBody({ return_token_ids: true, max_tokens: 50 }) as never,
    )) as unknown as ChatWithIds;
    const body = { model: name, prompt: chat.prompt_token_ids, temperature: 0, max_tokens: 50, logprobs: 2 };
    const c = await client.completions.create(body);
    const lp = c.choices[0].logprobs!;
    expect(lp.token_logprobs).toEqual(chat.choices[0].logprobs!.content!.map((x) => x.logprob));
    expect(lp.tokens).toEqual(chat.choices[0].logprobs!.content!.map((x) => x.token));
    let offset = 0;
    for (let i = 0; i < lp.tokens!.length; i++) {
      const top = lp.top_logprobs![i];
      expect(top[lp.tokens![i]]).toBe(lp.token_logprobs![i]);
      expect(Object.keys(top).length).toBeLessThanOrEqual(3);
      expect(lp.text_offset![i]).toBe(offset);
      offset += lp.tokens![i].length;
    }
    const stream = await client.completions.create({ ...body, stream: true });
    const tokens: string[] = [];
    const offsets: number[] = [];
    for await (const ch of stream) {
      tokens.push(...(ch.choices[0]?.logprobs?.tokens ?? []));
      offsets.push(...(ch.choices[0]?.logprobs?.text_offset ?? []));
    }
    expect([tokens, offsets]).toEqual([lp.tokens, lp.text_offset]);
  });

  it("no logprobs unless asked: logprobs is null", async () => {
    const r = await client.chat.completions.create({
      ...chatBody({ max_tokens: 5 }),
      logprobs: false,
      top_logprobs: 0,
    });
    expect(r.choices[0].logprobs).toBeNull();
    const c = await client.completions.create({ model: name, prompt: "x", temperature: 0, max_tokens: 3 });
    expect(c.choices[0].logprobs).toBeNull();
  });

  it("bad values are 400s with an OpenAI error object naming the field", async () => {
    const top = await post("/chat/completions", chatBody({ top_logprobs: 21 }));
    expect(top.status).toBe(400);
    expect(top.json.error).toMatchObject({ param: "top_logprobs", type: "invalid_request_error" });
    expect((top.json.error as { message: string }).message).toMatch(/top_logprobs.*\[0, 20\]/);
    const legacy = await post("/completions", { model: name, prompt: "x", max_tokens: 3, logprobs: 6 });
    expect(legacy.status).toBe(400);
    expect(legacy.json.error).toMatchObject({ param: "logprobs", type: "invalid_request_error" });
    const orphan = await post("/chat/completions", chatBody({ logprobs: false, top_logprobs: 2 }));
    expect([orphan.status, (orphan.json.error as { param: string }).param]).toEqual([400, "top_logprobs"]);
  });
});

describe("streamed logprobs (sse.ts with a fake handle)", () => {
  it("a token with held-back text, and a stop token with none, ride with the next chunk or a chunk of their own", async () => {
    const writes: string[] = [];
    const target = {
      writableEnded: false,
      destroyed: false,
      writeHead() {},
      write: (c: string) => writes.push(c),
      end() {},
    };
    const tok = (id: number, text: string): EngineEvent => ({ type: "token", id, position: id, text, logprob: -id });
    const events: EngineEvent[] = [
      tok(1, "a"),
      tok(2, ""),
      tok(3, "bc"),
      tok(4, ""),
      { type: "done", finishReason: "stop", stats: { promptTokens: 1 } as RequestStats },
    ];
    const handle = {
      cancel() {},
      async *[Symbol.asyncIterator]() {
        yield* events;
      },
    };
    const formatter = new LogprobsFormatter("completions", { top: 0, tokenIds: true }, () => "");
    await pipeCompletion(new EventStream(target), handle, {
      endpoint: "completions",
      head: { id: "cmpl-1", created: 1, model: "m" },
      includeUsage: false,
      logprobs: formatter,
    });
    const chunks = writes
      .map((w) => w.slice(6, -2))
      .filter((d) => d !== "[DONE]")
      .map((d) => JSON.parse(d).choices[0]);
    expect(chunks.map((c) => [c.text, c.logprobs?.tokens ?? null, c.logprobs?.text_offset ?? null])).toEqual([
      ["a", ["token_id:1"], [0]],
      ["bc", ["token_id:2", "token_id:3"], [10, 20]],
      ["", ["token_id:4"], [30]],
      ["", null, null],
    ]);
  });
});
