/**
 * Serving a GGUF alone (`memento serve --backend llamacpp --gguf FILE`, no --model): the tokenizer rebuilt from
 * the GGUF's metadata must give the ids of the original tokenizer (the toy's character vocabulary as our export
 * byte-maps it, and Qwen3's real byte-level BPE), the bundled toy model served from its GGUF alone must answer
 * the README prompt exactly as served from its directory, and a GGUF lacking a Memento marker is refused with
 * one line naming it. The serving round trip is skipped (with the reason printed) when llama.cpp cannot load.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { llamaCppUnavailableReason } from "../src/engine/backends/llamacpp.js";
import { bundledModelDir, loadServingModel, type ServingModel } from "../src/engine/index.js";
import { renderMementoChat } from "../src/format/chat.js";
import { loadTokenizer, type MementoTokenizer } from "../src/format/tokenizer.js";
import { exportCheckpointToGguf, exportModelToGguf, ggufGet, gguf, readGguf } from "../src/model/gguf.js";
import { ggufMementoTokenizer, ggufServingInfo } from "../src/model/gguf-tokenizer.js";
import { Qwen3Model, toyConfig } from "../src/model/index.js";
import { buildServer } from "../src/server/index.js";
import { UserError } from "../src/errors.js";
import { runServe } from "../src/cli/serve.js";
import { ONE_LAYER_CONFIG } from "./helpers/random-model.js";
import { tempDir } from "./helpers/tmp.js";

const unavailable = await llamaCppUnavailableReason();
if (unavailable) console.warn(`skipping the GGUF-alone serving test: ${unavailable}`);

const dir = tempDir("memento-gguf-serve-");
const toyDir = bundledModelDir();
const toyGguf = join(dir, "toy.gguf");
exportCheckpointToGguf(toyDir, toyGguf);

const SAMPLES = [
  "s=3714 k=5",
  "Hello, world! 12 + 30 = 42\n\n  indented\ttab",
  "<|block_start|>step one<|block_end|><|summary_start|>did one<|summary_end|>",
  "<think>\nok</think> assistant user",
];

function sameIds(a: MementoTokenizer, b: MementoTokenizer, texts: readonly string[]): void {
  for (const t of texts) expect(b.encode(t), JSON.stringify(t)).toEqual(a.encode(t));
}

/** A tiny random Qwen3-architecture model with `tok`'s vocabulary, exported to GGUF. */
function qwenVocabGguf(tok: MementoTokenizer, name: string): string {
  const cfg = toyConfig({ ...ONE_LAYER_CONFIG, vocab_size: Math.ceil(tok.vocabSize / 64) * 64 });
  const path = join(dir, name);
  exportModelToGguf(
    Qwen3Model.random(cfg, { seed: 3 }),
    { json: tok.tokenizerJson(), config: tok.tokenizerConfig() as Record<string, unknown> },
    path,
  );
  return path;
}

describe("the tokenizer of a GGUF's metadata", () => {
  it("gives the toy export the directory's ids, chat template, name and context length", () => {
    const original = loadTokenizer(toyDir);
    const info = ggufServingInfo(toyGguf);
    expect(info.name).toBe("memento-qwen3"); // the exporter's default general.name
    expect(info.contextLength).toBe(4096);
    expect(info.vocabSize).toBe(112);
    expect(info.tokenizer.vocabSize).toBe(original.vocabSize);
    expect(info.tokenizer.chatTemplate).toBe(original.chatTemplate);
    expect(info.tokenizer.specialTokens).toEqual(original.specialTokens);
    const prompt = renderMementoChat([{ role: "user", content: "s=3714 k=5" }], { tokenizer: original });
    expect(renderMementoChat([{ role: "user", content: "s=3714 k=5" }], { tokenizer: info.tokenizer })).toBe(prompt);
    sameIds(original, info.tokenizer, [...SAMPLES.filter((s) => !/[\t]/.test(s)), prompt]);
    const ids = original.encode(prompt);
    expect(info.tokenizer.decode(ids)).toBe(original.decode(ids));
  });

  it("encodes like the real Qwen3 tokenizer from a Qwen3-vocabulary GGUF", () => {
    const qwen = loadTokenizer();
    const rebuilt = ggufMementoTokenizer(readGguf(qwenVocabGguf(qwen, "qwen3-vocab.gguf")));
    expect(rebuilt.vocabSize).toBe(qwen.vocabSize);
    expect(rebuilt.specialTokens).toEqual(qwen.specialTokens);
    expect(rebuilt.chatTemplate).toBe(qwen.chatTemplate);
    const prompt = renderMementoChat(
      [
        { role: "system", content: "You are helpful." },
        { role: "user", content: "Déjà vu: what's 2+2? 日本語も。" },
      ],
      { tokenizer: qwen, prefillThink: true },
    );
    sameIds(qwen, rebuilt, [...SAMPLES, prompt, "naïve café — ½ “quotes” 🙂\r\n"]);
    for (const m of ["<|block_start|>", "<|block_end|>", "<|summary_start|>", "<|summary_end|>"])
      expect(rebuilt.encode(m)).toEqual([qwen.tokenToId(m)]);
    const ids = qwen.encode(prompt);
    expect(rebuilt.decode(ids)).toBe(qwen.decode(ids));
  }, 60_000);

  it("refuses a GGUF lacking Memento markers with one line naming them", () => {
    const file = readGguf(toyGguf);
    const tokens = [...(ggufGet(file, "tokenizer.ggml.tokens") as string[])];
    tokens[tokens.indexOf("<|summary_end|>")] = "<|summary_stop|>";
    const metadata = new Map(file.metadata);
    metadata.set("tokenizer.ggml.tokens", gguf.arr("STRING", tokens));
    const broken = { ...file, metadata };
    expect(() => ggufMementoTokenizer(broken)).toThrow(UserError);
    expect(() => ggufMementoTokenizer(broken)).toThrow(
      `${toyGguf}: the GGUF's vocabulary lacks the Memento markers <|summary_end|> ` +
        "(add them with memento model add-tokens before converting)",
    );

    const plainQwen = loadTokenizer(undefined, { addMementoTokens: false });
    const path = qwenVocabGguf(plainQwen, "qwen3-plain.gguf");
    let message = "";
    try {
      ggufServingInfo(path);
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      message = (e as Error).message;
    }
    expect(message).toContain(
      "lacks the Memento markers <|block_start|>, <|block_end|>, <|summary_start|>, <|summary_end|>",
    );
    expect(message).not.toContain("\n");
  }, 60_000);

  it("needs a model directory unless llamacpp is given a GGUF", async () => {
    await expect(loadServingModel({ backend: "reference" })).rejects.toThrow(/a model directory is needed/);
    await expect(loadServingModel({ backend: "llamacpp" })).rejects.toThrow(/a model directory is needed/);
  });
});

describe.skipIf(!!unavailable)("serving a GGUF alone", () => {
  const llamacpp = {
    sequences: 1,
    cellsPerSequence: 1024,
    threads: 1,
    kvCacheType: "F32" as const,
    flashAttention: false,
  };

  async function answer(m: ServingModel): Promise<{ text: string; usage: Record<string, unknown> }> {
    const app = await buildServer({
      engine: m.engine,
      tokenizer: m.tokenizer,
      modelName: m.name,
      maxModelLen: m.maxModelLen,
      defaultMetrics: false,
    });
    try {
      const res = await app.inject({
        method: "POST",
        url: "/v1/chat/completions",
        payload: {
          model: m.name,
          messages: [{ role: "user", content: "s=3714 k=5" }],
          temperature: 0,
          max_tokens: 400,
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      return { text: body.choices[0].message.content, usage: body.usage };
    } finally {
      await app.close();
      await m.engine.close();
    }
  }

  it("answers the README prompt as the model directory does", async () => {
    const fromGguf = await loadServingModel({ backend: "llamacpp", llamacpp: { ...llamacpp, gguf: toyGguf } });
    expect(fromGguf.name).toBe("memento-qwen3");
    expect(fromGguf.modelDir).toBe(toyGguf);
    expect(fromGguf.maxModelLen).toBe(4096);
    const a = await answer(fromGguf);
    const fromDir = await loadServingModel({
      modelDir: toyDir,
      backend: "llamacpp",
      llamacpp: { ...llamacpp, gguf: toyGguf },
    });
    expect(fromDir.name).toBe("toy");
    const b = await answer(fromDir);
    expect(a.text.length).toBeGreaterThan(0);
    expect(a.text).toBe(b.text);
    expect(a.usage.prompt_tokens).toBe(b.usage.prompt_tokens);
    expect(a.text.trim().split("\n").pop()).toMatch(/\d{4}/);
  }, 120_000);

  it("memento serve --gguf FILE without --model serves the GGUF alone under its general.name", async () => {
    const server = await runServe({
      host: "127.0.0.1",
      port: "0",
      backend: "llamacpp",
      gguf: toyGguf,
      sequences: "1",
      cellsPerSequence: "256",
      threads: "1",
    });
    try {
      expect(server.model).toBe("memento-qwen3");
      const models = (await (await fetch(`${server.baseURL}/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toContain("memento-qwen3");
    } finally {
      await server.close();
    }
  }, 60_000);
});
