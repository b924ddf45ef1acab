import { describe, expect, it } from "vitest";
import {
  CHATML_TEMPLATE,
  encodeChat,
  mementoMessages,
  renderChat,
  renderMementoChat,
  validateMessages,
  type ChatMessage,
} from "../src/format/chat.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { UserError } from "../src/errors.js";
import { BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START } from "../src/format/tokens.js";

const tok = loadTokenizer();

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });
const system = (content: string): ChatMessage => ({ role: "system", content });

describe("renderChat with Qwen3's own template", () => {
  it("user only, with and without a generation prompt", () => {
    expect(renderChat([user("What is 2+2?")], { tokenizer: tok, addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(renderChat([user("hi")], { tokenizer: tok })).toBe("<|im_start|>user\nhi<|im_end|>\n");
  });

  it("keeps a system message (stock Qwen3)", () => {
    expect(renderChat([system("Be brief."), user("hi")], { tokenizer: tok, addGenerationPrompt: true })).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("multi-turn: reasoning of earlier turns is stripped, the last turn's is kept", () => {
    const msgs = [user("What is 2+2?"), assistant("<think>\nadd them\n</think>\n\n4"), user("And 3+3?")];
    expect(renderChat(msgs, { tokenizer: tok, addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
        "<|im_start|>assistant\n4<|im_end|>\n" +
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n" +
        "<|im_start|>assistant\n",
    );
    expect(renderChat(msgs.slice(0, 2), { tokenizer: tok })).toBe(
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd them\n</think>\n\n4<|im_end|>\n",
    );
  });

  it("enableThinking=false prefills an empty think block", () => {
    expect(renderChat([user("hi")], { tokenizer: tok, addGenerationPrompt: true, enableThinking: false })).toBe(
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    );
  });

  it("accepts an explicit template and extra variables", () => {
    const t = "{{ greeting }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ eos_token }}";
    expect(renderChat([user("a"), assistant("b")], { template: t, tokenizer: tok, extra: { greeting: ">" } })).toBe(
      ">[user:a][assistant:b]<|im_end|>",
    );
  });

  it("rejects bad input with user errors", () => {
    expect(() => renderChat([user("x")], {})).toThrow(UserError);
    expect(() => renderChat([user("x")], { template: "{% for %}" })).toThrow(UserError);
    expect(() => validateMessages({ role: "user" })).toThrow(/JSON array/);
    expect(() => validateMessages([{ role: "user" }])).toThrow(/\[0\]\.content/);
    expect(() => validateMessages([{ content: "x" }])).toThrow(/\[0\]\.role/);
  });
});

describe("renderMementoChat", () => {
  it("drops system messages", () => {
    const msgs = [system("You are a helpful assistant."), user("Solve x+1=2.")];
    expect(mementoMessages(msgs)).toEqual([user("Solve x+1=2.")]);
    expect(renderMementoChat(msgs, { tokenizer: tok, addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nSolve x+1=2.<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("ends the generation prompt with the assistant header; prefillThink appends <think>\\n", () => {
    const text = renderMementoChat([user("q")], { tokenizer: tok, addGenerationPrompt: true });
    expect(text.endsWith("<|im_start|>assistant\n")).toBe(true);
    expect(renderMementoChat([user("q")], { tokenizer: tok, addGenerationPrompt: true, prefillThink: true })).toBe(
      text + "<think>\n",
    );
    // prefillThink only applies to a generation prompt
    expect(renderMementoChat([user("q")], { tokenizer: tok, prefillThink: true })).toBe(
      "<|im_start|>user\nq<|im_end|>\n",
    );
  });

  it("falls back to plain ChatML without a tokenizer", () => {
    expect(renderMementoChat([system("s"), user("a"), assistant("b")], { addGenerationPrompt: false })).toBe(
      "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n",
    );
    expect(renderChat([user("a")], { template: CHATML_TEMPLATE, addGenerationPrompt: true })).toBe(
      "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("refuses a conversation that is only system messages", () => {
    expect(() => renderMementoChat([system("s")], { tokenizer: tok })).toThrow(UserError);
  });
});

describe("encodeChat", () => {
  const response =
    `<think>\n${BLOCK_START}First, 2+2=4.${BLOCK_END}${SUMMARY_START}2+2=4${SUMMARY_END}\n</think>\n\n` +
    "The answer is 4.";

  it("a prompt: ids end with `<|im_start|>assistant\\n`, promptLength = all", () => {
    const r = encodeChat([system("ignored"), user("What is 2+2?")], { tokenizer: tok });
    expect(r.text).toBe("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    expect(r.ids).toEqual(tok.encode(r.text));
    expect(r.promptLength).toBe(r.ids.length);
    expect(r.ids.slice(0, 2)).toEqual([151644, 872]); // <|im_start|> user
    expect(r.ids.slice(-3)).toEqual([151644, tok.specialTokens.assistant!, 198]); // <|im_start|> assistant \n
  });

  it("a training example: promptLength marks where the Memento response starts", () => {
    const r = encodeChat([user("What is 2+2?"), assistant(response)], { tokenizer: tok });
    expect(r.text).toBe(`<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n${response}<|im_end|>\n`);
    expect(r.ids).toEqual(tok.encode(r.text));
    const completion = r.ids.slice(r.promptLength);
    expect(completion[0]).toBe(tok.specialTokens.thinkStart);
    expect(tok.decode(completion)).toBe(`${response}<|im_end|>\n`);
    for (const k of ["blockStart", "blockEnd", "summaryStart", "summaryEnd"] as const) {
      expect(completion.filter((id) => id === tok.specialTokens[k])).toHaveLength(1);
    }
    expect(r.ids.slice(0, r.promptLength)).toEqual(encodeChat([user("What is 2+2?")], { tokenizer: tok }).ids);
  });

  it("with prefillThink the prompt includes <think>\\n", () => {
    const r = encodeChat([user("q"), assistant(response)], { tokenizer: tok, prefillThink: true });
    expect(tok.decode(r.ids.slice(0, r.promptLength)).endsWith("<|im_start|>assistant\n<think>\n")).toBe(true);
    expect(tok.decode(r.ids.slice(r.promptLength)).startsWith(BLOCK_START)).toBe(true);
  });

  it("rejects an assistant message with no user turn before it", () => {
    expect(() => encodeChat([system("s"), assistant("x")], { tokenizer: tok })).toThrow(UserError);
  });
});
