import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CharTokenizer, toyTokenizer } from "../src/train/char-tokenizer.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { encodeChat } from "../src/format/chat.js";
import { generateDataset } from "../src/train/toy-task.js";
import { renderSftText } from "../src/train/sft-data.js";
import { tempDir } from "./helpers/tmp.js";

const dir = tempDir("memento-toytok-");

describe("char tokenizer", () => {
  const tok = toyTokenizer();

  it("round-trips toy examples and matches special tokens atomically", () => {
    for (const d of generateDataset(4, 50)) {
      const text = renderSftText(d.prompt, d.response);
      const ids = tok.encode(text);
      expect(tok.decode(ids)).toBe(text);
      expect(tok.count(text)).toBe(ids.length);
    }
    const s = tok.specialTokens;
    expect(tok.encode("<|im_start|>assistant\n<think>")).toEqual([
      s.imStart,
      s.assistant,
      tok.tokenToId("\n"),
      s.thinkStart,
    ]);
    expect(tok.encode("<|block_start|><|block_end|><|summary_start|><|summary_end|></think>")).toEqual([
      s.blockStart,
      s.blockEnd,
      s.summaryStart,
      s.summaryEnd,
      s.thinkEnd,
    ]);
    expect(tok.encode("user")).toEqual([tok.tokenToId("user")]);
    expect(tok.encode("<|block")).toHaveLength(7);
    expect(tok.encode("é")).toEqual([tok.unkId]);
    expect(tok.decode(tok.encode("<think>ab</think>"), { skipSpecialTokens: true })).toBe("ab");
    expect(() => tok.decode([tok.vocabSize])).toThrow(/unknown token id/);
  });

  it("has the SpecialTokenIds fields", () => {
    expect(Object.keys(tok.specialTokens).sort()).toEqual(
      [
        "assistant",
        "blockEnd",
        "blockStart",
        "eos",
        "imEnd",
        "imStart",
        "pad",
        "summaryEnd",
        "summaryStart",
        "thinkEnd",
        "thinkStart",
      ].sort(),
    );
    expect(tok.idToToken(tok.specialTokens.pad!)).toBe("<|endoftext|>");
    expect(tok.idToToken(tok.specialTokens.eos!)).toBe("<|im_end|>");
    expect(tok.vocabSize).toBe(12 + 96);
    expect(() => new CharTokenizer("aa")).toThrow(/repeated/);
  });

  it("loadTokenizer reads its exported files and encodes identically (Hugging Face compatibility)", () => {
    tok.save(dir);
    const json = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    expect(json.model.type).toBe("BPE");
    expect(json.model.merges).toEqual([]);
    const hf = loadTokenizer(dir);
    expect(hf.addedMementoTokens).toEqual([]);
    expect(hf.vocabSize).toBe(tok.vocabSize);
    expect({ ...hf.specialTokens }).toEqual({ ...tok.specialTokens });
    const texts = [
      ...generateDataset(6, 30).map((d) => renderSftText(d.prompt, d.response)),
      "users assistant\tassistants é ü 😀 <|im_start|><|im_end|> <|endoftext|><|unk|>  \n\n {}[]~",
      "<think><|block_start|>x<|block_end|><|summary_start|>y<|summary_end|></think>\n\nz",
      "",
    ];
    for (const t of texts) {
      const a = tok.encode(t);
      expect(hf.encode(t)).toEqual(a);
      if (a.length > 0 && !a.includes(tok.unkId)) expect(hf.decode(a)).toBe(t);
    }
    // The ChatML chat template renders the same prompt as our SFT rendering.
    const d = generateDataset(6, 1)[0];
    const enc = encodeChat([{ role: "user", content: d.prompt }], { tokenizer: hf });
    expect(enc.text).toBe(renderSftText(d.prompt, "").slice(0, -"<|im_end|>".length));
  });
});
