/**
 * src/server/prepare.ts called directly: request bodies (as the schema parses them) to engine requests, with
 * the toy tokenizer; each client mistake is a 400 naming its field.
 */
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/server/errors.js";
import {
  chatMessages,
  chatPromptTokens,
  completionPromptTokens,
  completionTokenLimit,
  maskingFieldOf,
  newResponseId,
  prepareRequest,
  promptParam,
  samplingParams,
} from "../src/server/prepare.js";
import { chatRequestSchema, completionRequestSchema, parseBody } from "../src/server/schema.js";
import { toyMementoTokenizer } from "./helpers/random-model.js";

const tok = toyMementoTokenizer();
const chat = (extra: Record<string, unknown> = {}) =>
  parseBody(chatRequestSchema, { model: "toy", messages: [{ role: "user", content: "hi" }], ...extra });
const completion = (extra: Record<string, unknown> = {}) =>
  parseBody(completionRequestSchema, { model: "toy", prompt: "abc", ...extra });

/** The ApiError a call throws. */
function refusal(f: () => unknown): ApiError {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error("expected an ApiError");
}

describe("prompts", () => {
  it("chat: developer is system, text parts join, reasoning_content is kept", () => {
    const body = chat({
      messages: [
        { role: "developer", content: "be brief" },
        {
          role: "user",
          content: [
            { type: "text", text: "a" },
            { type: "text", text: "b" },
          ],
        },
        { role: "assistant", content: null, reasoning_content: "r" },
      ],
    });
    expect(chatMessages(body)).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "ab" },
      { role: "assistant", content: "", reasoning_content: "r" },
    ]);
  });

  it("chat: rendered Memento style (system dropped, generation prompt added), then tokenized", () => {
    const ids = chatPromptTokens(
      chat({
        messages: [
          { role: "system", content: "s" },
          { role: "user", content: "hi" },
        ],
      }),
      tok,
    );
    expect(tok.decode(ids)).toBe("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  });

  it("chat: a conversation the template cannot render is a 400 on messages", () => {
    const e = refusal(() => chatPromptTokens(chat({ messages: [{ role: "system", content: "s" }] }), tok));
    expect(e.toBody().error).toEqual({
      message: "messages: nothing to render once system messages are dropped",
      type: "invalid_request_error",
      param: "messages",
      code: "invalid_value",
    });
  });

  it("completions: a string or one string is tokenized; token ids are taken as they are", () => {
    expect(completionPromptTokens(completion({ prompt: "abc" }), tok)).toEqual(tok.encode("abc"));
    expect(completionPromptTokens(completion({ prompt: ["abc"] }), tok)).toEqual(tok.encode("abc"));
    expect(completionPromptTokens(completion({ prompt: [5, 6] }), tok)).toEqual([5, 6]);
    expect(completionPromptTokens(completion({ prompt: [[7, 8]] }), tok)).toEqual([7, 8]);
    const e = refusal(() => completionPromptTokens(completion({ prompt: "" }), tok));
    expect([e.status, e.message, e.param]).toEqual([400, "prompt must not be empty", "prompt"]);
  });
});

describe("limits and sampling", () => {
  it("caps max_tokens to what the context leaves, defaulting to all of it", () => {
    expect(completionTokenLimit("chat", 10, undefined, 100)).toBe(90);
    expect(completionTokenLimit("chat", 10, null, 100)).toBe(90);
    expect(completionTokenLimit("chat", 10, 5, 100)).toBe(5);
    expect(completionTokenLimit("chat", 10, 500, 100)).toBe(90);
  });

  it("a prompt that fills the context is context_length_exceeded on the endpoint's prompt field", () => {
    const e = refusal(() => completionTokenLimit("completions", 100, 1, 100));
    expect(e.toBody().error).toEqual({
      message: "the prompt has 100 tokens; the model's context is 100",
      type: "invalid_request_error",
      param: "prompt",
      code: "context_length_exceeded",
    });
    expect(refusal(() => completionTokenLimit("chat", 101, 1, 100)).param).toBe("messages");
    expect([promptParam("chat"), promptParam("completions")]).toEqual(["messages", "prompt"]);
  });

  it("fills OpenAI's defaults and passes the vLLM extensions", () => {
    expect(samplingParams(chat(), 7)).toEqual({ temperature: 1, topP: 1, topK: -1, minP: 0, maxTokens: 7 });
    const s = samplingParams(
      chat({ temperature: 0, top_p: 0.5, top_k: 3, min_p: 0.1, seed: 4, stop: ["", "x"], stop_token_ids: [9] }),
      7,
    );
    expect(s).toEqual({
      temperature: 0,
      topP: 0.5,
      topK: 3,
      minP: 0.1,
      maxTokens: 7,
      seed: 4,
      stop: ["x"],
      stopTokenIds: [9],
    });
    const none = samplingParams(chat({ seed: null, stop: "", stop_token_ids: [] }), 7);
    expect(["seed" in none, "stop" in none, "stopTokenIds" in none]).toEqual([false, false, false]);
  });
});

describe("prepareRequest", () => {
  it("builds the engine request with the response's id and the stream options", () => {
    const body = chat({
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
      skip_special_tokens: true,
    });
    const p = prepareRequest("chat", body, [1, 2, 3], body.max_tokens, 50);
    expect(p.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(p).toMatchObject({ endpoint: "chat", stream: true, includeUsage: true });
    expect(p.request).toEqual({
      id: p.id,
      promptTokens: [1, 2, 3],
      sampling: { temperature: 1, topP: 1, topK: -1, minP: 0, maxTokens: 3 },
      skipSpecialTokens: true,
    });
    expect("maskingField" in p).toBe(false);
    expect(newResponseId("completions")).toMatch(/^cmpl-[0-9a-f]{32}$/);
  });

  it("passes masking overrides (either field, snake_case too) and remembers which field carried them", () => {
    const a = prepareRequest("chat", chat({ block_masking: { restart_mode: true } }), [1], undefined, 50);
    expect([a.request.masking, a.maskingField]).toEqual([{ restartMode: true }, "block_masking"]);
    const b = prepareRequest("completions", completion({ memento: { keepLastNBlocks: 2 } }), [1], undefined, 50);
    expect([b.request.masking, b.maskingField]).toEqual([{ keepLastNBlocks: 2 }, "memento"]);
    expect(maskingFieldOf(completion())).toBeUndefined();
  });

  it("refuses bad masking with the field's path", () => {
    const e = refusal(() => prepareRequest("chat", chat({ memento: { keepLastNBlocks: -5 } }), [1], undefined, 50));
    expect([e.status, e.param]).toEqual([400, "memento.keepLastNBlocks"]);
  });
});
