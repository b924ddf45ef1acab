import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Qwen3Model, saveModel, toyConfig } from "../src/model/index.js";
import {
  bytesToUnicode,
  exportCheckpointToGguf,
  exportModelToGguf,
  ggufGet,
  ggufTensorName,
  gguf,
  hfTensorName,
  readGguf,
  readGgufTensor,
  readQwen3Gguf,
  TokenType,
  writeGguf,
} from "../src/model/gguf.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { Command } from "commander";
import { register as registerExportGguf } from "../src/cli/gguf.js";
import { register as registerAddTokens } from "../src/cli/model.js";
import { tempDir } from "./helpers/tmp.js";

const dir = tempDir("memento-gguf-");

const tok = toyTokenizer();
const tokFiles = { json: tok.toTokenizerJson(), config: tok.toTokenizerConfig() as Record<string, unknown> };

describe("GGUF writer/reader", () => {
  it("round-trips metadata of every scalar type, arrays and tensors with alignment", () => {
    const path = join(dir, "generic.gguf");
    const meta = new Map([
      ["general.architecture", gguf.str("test")],
      ["a.u32", gguf.u32(4_000_000_000)],
      ["a.i32", gguf.i32(-5)],
      ["a.f32", gguf.f32(0.5)],
      ["a.bool", gguf.bool(true)],
      ["a.u64", gguf.u64(2n ** 40n)],
      ["a.strs", gguf.arr("STRING", ["x", "", "Ġé"])],
      ["a.ints", gguf.arr("INT32", [1, -2, 3])],
      ["a.empty", gguf.arr("STRING", [])],
    ]);
    const t1 = Float32Array.from({ length: 3 * 5 }, (_, i) => i * 0.25 - 1);
    const t2 = Float32Array.from({ length: 7 }, (_, i) => i);
    writeGguf(path, meta, [
      { name: "m", shape: [3, 5], type: "F32", data: () => t1 },
      { name: "v", shape: [7], type: "F16", data: () => t2 },
    ]);
    const f = readGguf(path);
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(32);
    expect(ggufGet(f, "a.u32")).toBe(4_000_000_000);
    expect(ggufGet(f, "a.i32")).toBe(-5);
    expect(ggufGet(f, "a.f32")).toBe(0.5);
    expect(ggufGet(f, "a.bool")).toBe(true);
    expect(ggufGet(f, "a.u64")).toBe(2n ** 40n);
    expect(ggufGet(f, "a.strs")).toEqual(["x", "", "Ġé"]);
    expect(ggufGet(f, "a.ints")).toEqual([1, -2, 3]);
    expect(ggufGet(f, "a.empty")).toEqual([]);
    expect(f.tensors.map((t) => [t.name, t.dims, t.type])).toEqual([
      ["m", [5, 3], 0], // ggml order: innermost first
      ["v", [7], 1],
    ]);
    expect(f.dataStart % 32).toBe(0);
    for (const t of f.tensors) expect(t.offset % 32).toBe(0);
    expect(Array.from(readGgufTensor(f, "m"))).toEqual(Array.from(t1));
    expect(Array.from(readGgufTensor(f, "v"))).toEqual(Array.from(t2)); // small integers are exact in F16
    // Starts with the magic and version.
    const head = readFileSync(path).subarray(0, 8);
    expect(head.toString("latin1", 0, 4)).toBe("GGUF");
    expect(head.readUInt32LE(4)).toBe(3);
  });

  it("maps Hugging Face tensor names to llama.cpp's and back", () => {
    const cfg = toyConfig({ vocab_size: 112, tie_word_embeddings: false });
    const names = new Set<string>();
    for (const [name] of Qwen3Model.random(cfg).toTensorMap()) {
      const g = ggufTensorName(name);
      names.add(g);
      expect(hfTensorName(g)).toBe(name);
    }
    for (const n of [
      "token_embd.weight",
      "output_norm.weight",
      "output.weight",
      "blk.0.attn_q.weight",
      "blk.3.attn_k_norm.weight",
      "blk.1.ffn_down.weight",
      "blk.2.attn_output.weight",
      "blk.0.ffn_norm.weight",
      "blk.0.attn_norm.weight",
    ]) {
      expect(names.has(n)).toBe(true);
    }
    expect(() => ggufTensorName("model.layers.0.self_attn.rotary_emb.inv_freq")).toThrow(/no GGUF name/);
  });

  it("GPT-2 byte table maps printable ASCII to itself, space to Ġ and newline to Ċ", () => {
    const t = bytesToUnicode();
    expect(t[0x41]).toBe("A");
    expect(t[0x20]).toBe("Ġ");
    expect(t[0x0a]).toBe("Ċ");
    expect(new Set(t).size).toBe(256);
  });
});

describe("Qwen3 GGUF export", () => {
  const cfg = toyConfig({ vocab_size: 112 });
  const model = Qwen3Model.random(cfg, { seed: 11, normJitter: 0.1 });

  it("round-trips the toy model bit-exactly (F32) with qwen3 metadata and a loadable vocabulary", () => {
    const path = join(dir, "toy.gguf");
    const rep = exportModelToGguf(model, tokFiles, path);
    expect(rep.tensors).toBe(2 + 11 * cfg.num_hidden_layers); // embedding, final norm, 11 per layer; tied: no output
    expect(rep.tokenizerTokens).toBe(tok.vocabSize);
    const { config, tensors, file } = readQwen3Gguf(path);
    expect(config.vocab_size).toBe(112);
    expect(config.hidden_size).toBe(cfg.hidden_size);
    expect(config.num_attention_heads).toBe(cfg.num_attention_heads);
    expect(config.num_key_value_heads).toBe(cfg.num_key_value_heads);
    expect(config.head_dim).toBe(cfg.head_dim);
    expect(config.intermediate_size).toBe(cfg.intermediate_size);
    expect(config.num_hidden_layers).toBe(cfg.num_hidden_layers);
    expect(config.rope_theta).toBe(cfg.rope_theta);
    expect(config.rms_norm_eps).toBeCloseTo(cfg.rms_norm_eps, 12);
    expect(config.tie_word_embeddings).toBe(true);
    const back = Qwen3Model.fromTensorMap(config, tensors);
    for (const [name, data] of model.params) expect(back.params.get(name), name).toEqual(data);
    // No Q/K permutation: llama.cpp's qwen3 uses NEOX RoPE = HF rotate_half (checked numerically in llamacpp.test.ts).
    expect(readGgufTensor(file, "blk.0.attn_q.weight")).toEqual(
      model.params.get("model.layers.0.self_attn.q_proj.weight"),
    );
    expect(file.tensors.find((t) => t.name === "blk.0.attn_q.weight")!.dims).toEqual([
      cfg.hidden_size,
      cfg.num_attention_heads * cfg.head_dim,
    ]);

    expect(ggufGet(file, "general.architecture")).toBe("qwen3");
    expect(ggufGet(file, "tokenizer.ggml.model")).toBe("gpt2");
    expect(ggufGet(file, "tokenizer.ggml.pre")).toBe("qwen2");
    expect(ggufGet(file, "tokenizer.ggml.merges")).toEqual([]);
    const tokens = ggufGet(file, "tokenizer.ggml.tokens") as string[];
    const types = ggufGet(file, "tokenizer.ggml.token_type") as number[];
    expect(tokens).toHaveLength(112);
    expect(tokens[tok.tokenToId(" ")!]).toBe("Ġ");
    expect(tokens[tok.tokenToId("\n")!]).toBe("Ċ");
    expect(tokens[tok.tokenToId("a")!]).toBe("a");
    expect(tokens[tok.specialTokens.summaryEnd]).toBe("<|summary_end|>");
    expect(types[tok.specialTokens.summaryEnd]).toBe(TokenType.CONTROL);
    expect(types[tok.tokenToId("assistant")!]).toBe(TokenType.USER_DEFINED);
    expect(types[tok.tokenToId("a")!]).toBe(TokenType.NORMAL);
    expect(tokens[111]).toBe("[PAD111]");
    expect(types[111]).toBe(TokenType.UNUSED);
    expect(ggufGet(file, "tokenizer.ggml.eos_token_id")).toBe(tok.specialTokens.eos);
    expect(ggufGet(file, "tokenizer.ggml.padding_token_id")).toBe(tok.specialTokens.pad);
    expect(ggufGet(file, "tokenizer.ggml.add_bos_token")).toBe(false);
    expect(typeof ggufGet(file, "tokenizer.chat_template")).toBe("string");
  });

  it("exports a saved checkpoint directory to the same bytes, and F16 within half-precision rounding", () => {
    const ckpt = join(dir, "ckpt");
    saveModel(ckpt, model);
    tok.save(ckpt);
    const a = join(dir, "a.gguf");
    const b = join(dir, "b.gguf");
    exportModelToGguf(model, tokFiles, a);
    exportCheckpointToGguf(ckpt, b);
    expect(Buffer.compare(readFileSync(a), readFileSync(b))).toBe(0);

    const h = join(dir, "h.gguf");
    const rep = exportCheckpointToGguf(ckpt, h, { dtype: "F16" });
    expect(rep.dtype).toBe("F16");
    const { tensors, file } = readQwen3Gguf(h);
    expect(ggufGet(file, "general.file_type")).toBe(1);
    expect(file.tensors.find((t) => t.name === "output_norm.weight")!.type).toBe(0); // norms stay F32
    expect(file.tensors.find((t) => t.name === "token_embd.weight")!.type).toBe(1);
    const orig = model.params.get("model.layers.1.mlp.up_proj.weight")!;
    const half = tensors.get("model.layers.1.mlp.up_proj.weight")!.data;
    let worst = 0;
    for (let i = 0; i < orig.length; i++)
      worst = Math.max(worst, Math.abs(orig[i] - half[i]) / Math.max(Math.abs(orig[i]), 6e-5));
    expect(worst).toBeLessThan(1e-3);
  });

  it("refuses a tokenizer larger than the embedding", () => {
    const small = Qwen3Model.random(toyConfig({ vocab_size: 64 }));
    expect(() => exportModelToGguf(small, tokFiles, join(dir, "bad.gguf"))).toThrow(/embedding rows/);
  });
});

describe("memento model export-gguf", () => {
  it("exports a checkpoint directory from the command line, in the model group", async () => {
    const cfg = toyConfig({ vocab_size: 112 });
    const ckpt = join(dir, "cli-ckpt");
    saveModel(ckpt, Qwen3Model.random(cfg, { seed: 2 }));
    tok.save(ckpt);
    const program = new Command().exitOverride();
    registerAddTokens(program);
    registerExportGguf(program);
    expect(program.commands.filter((c) => c.name() === "model")).toHaveLength(1);
    const out = join(dir, "cli.gguf");
    const writes: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => {
      writes.push(s);
      return true;
    }) as typeof process.stdout.write;
    try {
      await program.parseAsync(["node", "memento", "model", "export-gguf", ckpt, out, "--dtype", "f16"]);
    } finally {
      process.stdout.write = orig;
    }
    expect(writes.join("")).toMatch(
      /wrote .*cli\.gguf .*GGUF v3, qwen3, 46 tensors F16, vocab 112 with 108 tokenizer tokens/,
    );
    expect(readQwen3Gguf(out).config.hidden_size).toBe(cfg.hidden_size);
    await expect(
      program.parseAsync(["node", "memento", "model", "export-gguf", ckpt, out, "--dtype", "Q4"]),
    ).rejects.toThrow(/--dtype: expected F32 or F16/);
  });
});
