/**
 * The OpenAI-shaped objects of src/server/openai-shapes.ts, built from given statistics: exact JSON (key
 * order included, as clients and golden files see it), usage with the `memento` extension.
 */
import { describe, expect, it } from "vitest";
import type { RequestStats } from "../src/engine/types.js";
import {
  completionResponse,
  completionUsage,
  finalChunk,
  mementoUsage,
  openAiFinishReason,
  roleChunk,
  textChunk,
  usageChunk,
  type ResponseHead,
} from "../src/server/openai-shapes.js";

const stats: RequestStats = {
  promptTokens: 9,
  completionTokens: 5,
  blocks: 2,
  evictions: 1,
  evictedTokens: 7,
  peakKvTokens: 13,
  currentKvTokens: 0,
  finalKvTokens: 6,
  aucKvTokens: 50,
  preemptions: 1,
  recomputedTokens: 11,
  restartRecomputedTokens: 0,
  forcedBlockEnds: 3,
  queueMs: 1.23456,
  firstTokenMs: 2.0004,
  totalMs: 10.9999,
  interTokenMs: [1.5, 2.5],
};
const head: ResponseHead = { id: "chatcmpl-1", created: 1700000000, model: "toy" };
const MEMENTO =
  '{"blocks":2,"evictions":1,"evicted_tokens":7,"peak_kv_tokens":13,"final_kv_tokens":6,"kv_auc_tokens":50,' +
  '"preemptions":1,"recomputed_tokens":11,"forced_block_ends":3,"queue_ms":1.235,"time_to_first_token_ms":2,' +
  '"total_ms":11}';
const USAGE = `{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14,"memento":${MEMENTO}}`;

describe("usage", () => {
  it("maps the engine's statistics to snake_case, milliseconds rounded to microseconds", () => {
    expect(JSON.stringify(mementoUsage(stats))).toBe(MEMENTO);
    expect(JSON.stringify(completionUsage(stats))).toBe(USAGE);
  });

  it("carries the engine's message only when there is one", () => {
    expect(mementoUsage(stats, "KV budget exhausted").message).toBe("KV budget exhausted");
    expect("message" in mementoUsage(stats, "")).toBe(false);
  });

  it("reports every ending other than length as stop", () => {
    expect(openAiFinishReason("length")).toBe("length");
    expect(openAiFinishReason("stop")).toBe("stop");
    expect(openAiFinishReason("cancelled")).toBe("stop");
  });
});

describe("whole completions", () => {
  it("chat.completion: the text as the assistant's message, stop_reason null without a stop", () => {
    const r = completionResponse("chat", head, "hi", { finishReason: "length", stats });
    expect(JSON.stringify(r)).toBe(
      '{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"toy","choices":[{"index":0,' +
        '"message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"length","stop_reason":null}],' +
        `"usage":${USAGE}}`,
    );
  });

  it("text_completion: the text as `text`, with the stop string that ended it", () => {
    const r = completionResponse("completions", head, "ab", { finishReason: "stop", stopReason: "\n", stats });
    expect(JSON.stringify(r)).toBe(
      '{"id":"chatcmpl-1","object":"text_completion","created":1700000000,"model":"toy","choices":[{"index":0,' +
        `"text":"ab","logprobs":null,"finish_reason":"stop","stop_reason":"\\n"}],"usage":${USAGE}}`,
    );
  });
});

describe("chunks", () => {
  const prefix = (object: string) => `{"id":"chatcmpl-1","object":"${object}","created":1700000000,"model":"toy",`;

  it("chat: role first, then deltas, then finish_reason with stop_reason and the Memento statistics", () => {
    expect(JSON.stringify(roleChunk(head))).toBe(
      `${prefix("chat.completion.chunk")}"choices":[{"index":0,"delta":{"role":"assistant","content":""},` +
        '"logprobs":null,"finish_reason":null}]}',
    );
    expect(JSON.stringify(textChunk("chat", head, "x"))).toBe(
      `${prefix("chat.completion.chunk")}"choices":[{"index":0,"delta":{"content":"x"},"logprobs":null,` +
        '"finish_reason":null}]}',
    );
    expect(JSON.stringify(finalChunk("chat", head, { finishReason: "stop", stopReason: 2, stats }))).toBe(
      `${prefix("chat.completion.chunk")}"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop",` +
        `"stop_reason":2}],"memento":${MEMENTO}}`,
    );
    expect(JSON.stringify(usageChunk("chat", head, { stats }))).toBe(
      `${prefix("chat.completion.chunk")}"choices":[],"usage":${USAGE}}`,
    );
  });

  it("completions: text pieces, an empty text on the final chunk", () => {
    expect(JSON.stringify(textChunk("completions", head, "x"))).toBe(
      `${prefix("text_completion")}"choices":[{"index":0,"text":"x","logprobs":null,"finish_reason":null}]}`,
    );
    expect(JSON.stringify(finalChunk("completions", head, { finishReason: "length", stats }))).toBe(
      `${prefix("text_completion")}"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"length",` +
        `"stop_reason":null}],"memento":${MEMENTO}}`,
    );
    expect(usageChunk("completions", head, { stats, message: "m" }).usage.memento.message).toBe("m");
  });
});
