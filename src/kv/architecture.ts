import { z } from "zod";
import { UserError } from "../errors.js";

/**
 * What one token costs in the KV cache. Full-attention layers keep every resident token; sliding-window
 * layers keep only the resident tokens among the last `window` positions.
 */
export interface KvArchitecture {
  name: string;
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Bytes per stored element: 2 for bf16/fp16, 4 for fp32, 1 for fp8. */
  bytesPerElement: number;
  /** Layers that use a sliding window, and its size in tokens (absent: all layers are full attention). */
  slidingWindow?: { layers: number; window: number };
}

/** Bytes one token takes in one layer: K and V, each kvHeads x headDim elements. */
export function bytesPerTokenPerLayer(a: KvArchitecture): number {
  return 2 * a.kvHeads * a.headDim * a.bytesPerElement;
}

/** Bytes per token summed over all layers, counting every layer as full attention (the paper's 144 KiB for Qwen3-8B). */
export function bytesPerToken(a: KvArchitecture): number {
  return a.layers * bytesPerTokenPerLayer(a);
}

/** KV bytes held when `resident` tokens are resident and `residentInWindow` of them fall inside the window. */
export function kvBytes(a: KvArchitecture, resident: number, residentInWindow: number): number {
  const perLayer = bytesPerTokenPerLayer(a);
  const sw = a.slidingWindow?.layers ?? 0;
  return perLayer * ((a.layers - sw) * resident + sw * residentInWindow);
}

export const ARCHITECTURE_PRESETS: Readonly<Record<string, KvArchitecture>> = Object.freeze({
  "qwen3-8b": { name: "Qwen3-8B", layers: 36, kvHeads: 8, headDim: 128, bytesPerElement: 2 },
  "qwen3-32b": { name: "Qwen3-32B", layers: 64, kvHeads: 8, headDim: 128, bytesPerElement: 2 },
  "phi-4-reasoning": { name: "Phi-4-reasoning", layers: 40, kvHeads: 10, headDim: 128, bytesPerElement: 2 },
  // 24 of 32 layers use a 4096-token sliding window; multi-head attention (32 KV heads of 128).
  "olmo-3-7b": {
    name: "Olmo-3-7B",
    layers: 32,
    kvHeads: 32,
    headDim: 128,
    bytesPerElement: 2,
    slidingWindow: { layers: 24, window: 4096 },
  },
});

const DTYPE_BYTES: Record<string, number> = {
  bfloat16: 2,
  float16: 2,
  half: 2,
  float32: 4,
  float: 4,
  float8_e4m3fn: 1,
  float8_e5m2: 1,
};

const hfConfigSchema = z
  .object({
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive().optional(),
    hidden_size: z.number().int().positive().optional(),
    head_dim: z.number().int().positive().optional().nullable(),
    torch_dtype: z.string().optional().nullable(),
    dtype: z.string().optional().nullable(),
    sliding_window: z.number().int().positive().optional().nullable(),
    use_sliding_window: z.boolean().optional(),
    max_window_layers: z.number().int().nonnegative().optional(),
    layer_types: z.array(z.string()).optional(),
    model_type: z.string().optional(),
    _name_or_path: z.string().optional(),
  })
  .passthrough();

/**
 * Reads the KV shape from a Hugging Face `config.json` object. Sliding-window layers come from `layer_types`
 * (Olmo 3, Gemma, newer Qwen) or from `use_sliding_window` + `max_window_layers` (Qwen2/Qwen3 style).
 */
export function architectureFromHfConfig(config: unknown, name?: string): KvArchitecture {
  const parsed = hfConfigSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`config.json: ${issue.path.join(".") || "root"}: ${issue.message}`);
  }
  const c = parsed.data;
  const headDim = c.head_dim ?? (c.hidden_size ? c.hidden_size / c.num_attention_heads : undefined);
  if (!headDim || !Number.isInteger(headDim))
    throw new UserError("config.json: cannot tell head_dim (give head_dim or hidden_size)");
  const dtype = (c.torch_dtype ?? c.dtype ?? "bfloat16").toLowerCase();
  const bytesPerElement = DTYPE_BYTES[dtype];
  if (!bytesPerElement) throw new UserError(`config.json: unknown dtype "${dtype}"`);
  const arch: KvArchitecture = {
    name: name ?? c._name_or_path ?? c.model_type ?? "config.json",
    layers: c.num_hidden_layers,
    kvHeads: c.num_key_value_heads ?? c.num_attention_heads,
    headDim,
    bytesPerElement,
  };
  let swLayers = 0;
  if (c.layer_types) {
    if (c.layer_types.length !== c.num_hidden_layers)
      throw new UserError("config.json: layer_types must have one entry per layer");
    swLayers = c.layer_types.filter((t) => t.includes("sliding")).length;
  } else if (c.use_sliding_window && c.max_window_layers !== undefined) {
    // Qwen2/3 convention: layers with index >= max_window_layers use the window.
    swLayers = Math.max(0, c.num_hidden_layers - c.max_window_layers);
  }
  if (swLayers > 0) {
    if (!c.sliding_window) throw new UserError("config.json: sliding-window layers but no sliding_window size");
    arch.slidingWindow = { layers: swLayers, window: c.sliding_window };
  }
  return arch;
}

/** Looks up a preset by name (case-insensitive), e.g. "qwen3-8b". */
export function architecturePreset(name: string): KvArchitecture {
  const preset = ARCHITECTURE_PRESETS[name.toLowerCase()];
  if (!preset) {
    throw new UserError(
      `unknown architecture "${name}" (presets: ${Object.keys(ARCHITECTURE_PRESETS).join(", ")}, or a config.json path)`,
    );
  }
  return preset;
}
