import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { causalPattern } from "../src/masking/masks.js";
import { countParameters, kvBytesPerToken, parameterShapes, parseQwen3Config, toyConfig } from "../src/model/config.js";
import { Qwen3Model } from "../src/model/transformer.js";
import { loadModel, saveModel } from "../src/model/index.js";

/** The published Qwen3-0.6B config.json fields (facts: sizes of the public checkpoint). */
const QWEN3_06B = {
  architectures: ["Qwen3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: "qwen3",
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.51.0",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

describe("Qwen3 config", () => {
  it("parses a real Hugging Face config, keeps unknown fields, and counts its parameters", () => {
    const c = parseQwen3Config(QWEN3_06B);
    expect(c.bos_token_id).toBe(151643);
    expect(countParameters(c)).toBe(596_049_920); // "0.6B", 0.44B without the embedding
    expect(kvBytesPerToken(c, 2)).toBe(112 * 1024);
  });

  it("rejects what the implementation does not do", () => {
    expect(() => parseQwen3Config({ ...QWEN3_06B, attention_bias: true })).toThrow();
    expect(() => parseQwen3Config({ ...QWEN3_06B, model_type: "llama" })).toThrow();
    expect(() => parseQwen3Config({ ...QWEN3_06B, num_key_value_heads: 3 })).toThrow(/multiple/);
    expect(() => parseQwen3Config({ ...QWEN3_06B, rope_scaling: { type: "yarn", factor: 4 } })).toThrow();
    expect(() => parseQwen3Config({ vocab_size: 10 })).toThrow();
  });

  it("names parameters exactly as Hugging Face, [out, in], lm_head only when untied", () => {
    const c = toyConfig({ num_hidden_layers: 1 });
    const names = parameterShapes(c).map(([n]) => n);
    expect(names).toEqual([
      "model.embed_tokens.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.v_proj.weight",
      "model.layers.0.self_attn.o_proj.weight",
      "model.layers.0.self_attn.q_norm.weight",
      "model.layers.0.self_attn.k_norm.weight",
      "model.layers.0.post_attention_layernorm.weight",
      "model.layers.0.mlp.gate_proj.weight",
      "model.layers.0.mlp.up_proj.weight",
      "model.layers.0.mlp.down_proj.weight",
      "model.norm.weight",
    ]);
    const shapes = new Map(parameterShapes(toyConfig({ tie_word_embeddings: false })));
    expect(shapes.get("model.layers.0.self_attn.k_proj.weight")).toEqual([64, 128]);
    expect(shapes.get("model.layers.0.mlp.down_proj.weight")).toEqual([128, 384]);
    expect(shapes.get("lm_head.weight")).toEqual([64, 128]);
  });

  it("the toy configuration has about 1M parameters", () => {
    expect(countParameters(toyConfig())).toBe(796_032);
  });
});

describe("model init, tensor maps and the HF checkpoint layout", () => {
  const config = toyConfig({ num_hidden_layers: 2, tie_word_embeddings: false });
  const tokens = [1, 5, 9, 3, 60, 2, 2, 7];
  const pattern = causalPattern(tokens.length);

  it("random init is seeded", () => {
    const a = Qwen3Model.random(config, { seed: 4 });
    const b = Qwen3Model.random(config, { seed: 4 });
    const c = Qwen3Model.random(config, { seed: 5 });
    const w = "model.layers.1.mlp.up_proj.weight";
    expect(a.params.get(w)).toEqual(b.params.get(w));
    expect(a.params.get(w)).not.toEqual(c.params.get(w));
    // std 0.02 for ordinary matrices
    const up = a.params.get(w) as Float32Array;
    const std = Math.sqrt(up.reduce((s, x) => s + x * x, 0) / up.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
  });

  it("toTensorMap / fromTensorMap round-trips", () => {
    const a = Qwen3Model.random(config, { seed: 1, std: 0.2 });
    const b = Qwen3Model.fromTensorMap(config, a.toTensorMap());
    expect(b.forward(tokens, pattern).logits).toEqual(a.forward(tokens, pattern).logits);
    const map = a.toTensorMap();
    map.delete("model.norm.weight");
    expect(() => Qwen3Model.fromTensorMap(config, map)).toThrow(/model.norm.weight/);
  });

  it("saves and loads config.json + model.safetensors (F32 exact, BF16 close)", () => {
    const dir = mkdtempSync(join(tmpdir(), "qwen3-"));
    try {
      for (const tied of [true, false]) {
        const a = Qwen3Model.random(toyConfig({ num_hidden_layers: 2, tie_word_embeddings: tied }), {
          seed: 2,
          std: 0.2,
        });
        saveModel(join(dir, "f32"), a);
        const json = JSON.parse(readFileSync(join(dir, "f32", "config.json"), "utf8"));
        expect(json).toMatchObject({
          model_type: "qwen3",
          architectures: ["Qwen3ForCausalLM"],
          torch_dtype: "float32",
        });
        const b = loadModel(join(dir, "f32"));
        expect(b.config.tie_word_embeddings).toBe(tied);
        expect(b.params.has("lm_head.weight")).toBe(!tied);
        expect(b.forward(tokens, pattern).logits).toEqual(a.forward(tokens, pattern).logits);
        saveModel(join(dir, "bf16"), a, { dtype: "BF16" });
        const c = loadModel(join(dir, "bf16"));
        const la = a.forward(tokens, pattern).logits;
        const lc = c.forward(tokens, pattern).logits;
        let m = 0;
        let scale = 0;
        for (let i = 0; i < la.length; i++) {
          m = Math.max(m, Math.abs(la[i] - lc[i]));
          scale = Math.max(scale, Math.abs(la[i]));
        }
        expect(m).toBeGreaterThan(0); // really rounded
        expect(m / scale).toBeLessThan(0.02); // bf16 keeps ~3 significant digits
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
