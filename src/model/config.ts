import { z } from "zod";

/**
 * The Hugging Face Qwen3 `config.json` fields the reference transformer reads. Unknown fields are kept
 * (real checkpoints carry many: bos/eos ids, transformers_version, ...) so a config round-trips unchanged.
 * Features this implementation does not have (attention bias, rope scaling, sliding windows, activations
 * other than SiLU) are rejected instead of silently ignored.
 */
export const qwen3ConfigSchema = z
  .looseObject({
    model_type: z.literal("qwen3").default("qwen3"),
    architectures: z.array(z.string()).default(["Qwen3ForCausalLM"]),
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive(),
    head_dim: z.number().int().positive(),
    rope_theta: z.number().positive().default(1_000_000),
    rms_norm_eps: z.number().positive().default(1e-6),
    tie_word_embeddings: z.boolean().default(false),
    max_position_embeddings: z.number().int().positive().default(40960),
    torch_dtype: z.string().default("float32"),
    hidden_act: z.literal("silu").optional(),
    attention_bias: z.literal(false).optional(),
    rope_scaling: z.null().optional(),
    use_sliding_window: z.literal(false).optional(),
  })
  .refine((c) => c.num_attention_heads % c.num_key_value_heads === 0, {
    message: "num_attention_heads must be a multiple of num_key_value_heads",
  })
  .refine((c) => c.head_dim % 2 === 0, { message: "head_dim must be even (RoPE rotates pairs)" });

export type Qwen3Config = z.infer<typeof qwen3ConfigSchema>;

/** Validates a parsed `config.json` (or a partial object with the required fields) and fills defaults. */
export function parseQwen3Config(json: unknown): Qwen3Config {
  return qwen3ConfigSchema.parse(json);
}

/**
 * The ~1M-parameter configuration used for the toy task and the throughput numbers: 4 layers, d=128,
 * 4 query heads over 2 KV heads of 32, SwiGLU 384, tied embeddings.
 */
export function toyConfig(overrides: Partial<Qwen3Config> = {}): Qwen3Config {
  return parseQwen3Config({
    vocab_size: 64,
    hidden_size: 128,
    intermediate_size: 384,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 32,
    rope_theta: 10_000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    max_position_embeddings: 4096,
    torch_dtype: "float32",
    ...overrides,
  });
}

/** Every parameter tensor of the model, in Hugging Face names and [out, in] shapes, in a fixed order. */
export function parameterShapes(c: Qwen3Config): Array<[string, number[]]> {
  const h = c.hidden_size;
  const qDim = c.num_attention_heads * c.head_dim;
  const kvDim = c.num_key_value_heads * c.head_dim;
  const out: Array<[string, number[]]> = [["model.embed_tokens.weight", [c.vocab_size, h]]];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      [`${p}input_layernorm.weight`, [h]],
      [`${p}self_attn.q_proj.weight`, [qDim, h]],
      [`${p}self_attn.k_proj.weight`, [kvDim, h]],
      [`${p}self_attn.v_proj.weight`, [kvDim, h]],
      [`${p}self_attn.o_proj.weight`, [h, qDim]],
      [`${p}self_attn.q_norm.weight`, [c.head_dim]],
      [`${p}self_attn.k_norm.weight`, [c.head_dim]],
      [`${p}post_attention_layernorm.weight`, [h]],
      [`${p}mlp.gate_proj.weight`, [c.intermediate_size, h]],
      [`${p}mlp.up_proj.weight`, [c.intermediate_size, h]],
      [`${p}mlp.down_proj.weight`, [h, c.intermediate_size]],
    );
  }
  out.push(["model.norm.weight", [h]]);
  if (!c.tie_word_embeddings) out.push(["lm_head.weight", [c.vocab_size, h]]);
  return out;
}

/** Number of trainable parameters (tied embeddings counted once). */
export function countParameters(c: Qwen3Config): number {
  let n = 0;
  for (const [, shape] of parameterShapes(c)) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** KV-cache bytes per resident token: 2 (K and V) x layers x KV heads x head_dim x bytes per element. */
export function kvBytesPerToken(c: Qwen3Config, bytesPerElement = 4): number {
  return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * bytesPerElement;
}
