/** The reference Qwen3 transformer: config, kernels, full forward/backward, and the evicting KV cache. */
export * from "./config.js";
export * from "./ops.js";
export * from "./transformer.js";
export * from "./kv-cache.js";
export * from "./safetensors.js";
export * from "./gguf.js";
export * from "./add-tokens.js";

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { causalPattern } from "../masking/masks.js";
import { parseQwen3Config, type Qwen3Config } from "./config.js";
import { Qwen3Model } from "./transformer.js";
import { IGNORE_INDEX, Rng } from "./ops.js";
import { readCheckpoint, writeSafetensors, SINGLE_FILE } from "./safetensors.js";

export interface SaveOptions {
  /** Storage dtype of the weights (default F32; BF16 halves the file, as HF checkpoints usually are). */
  dtype?: "F32" | "BF16" | "F16";
}

const TORCH_DTYPE = { F32: "float32", BF16: "bfloat16", F16: "float16" } as const;

/**
 * Writes a model in the Hugging Face layout: `dir/config.json` and `dir/model.safetensors` (HF tensor names,
 * no lm_head when tied, metadata {format: "pt"}). Tokenizer files are the caller's.
 */
export function saveModel(dir: string, model: Qwen3Model, opts: SaveOptions = {}): void {
  const dtype = opts.dtype ?? "F32";
  mkdirSync(dir, { recursive: true });
  const config = { ...model.config, torch_dtype: TORCH_DTYPE[dtype] };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const tensors = new Map<string, { shape: number[]; data: Float32Array; dtype: "F32" | "BF16" | "F16" }>();
  for (const [name, t] of model.toTensorMap()) tensors.set(name, { ...t, dtype });
  writeSafetensors(join(dir, SINGLE_FILE), tensors, { format: "pt" });
}

/** Loads a Hugging Face Qwen3 checkpoint directory (config.json + model.safetensors or sharded). */
export function loadModel(dir: string): Qwen3Model {
  const config = parseQwen3Config(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
  return Qwen3Model.fromTensorMap(config, readCheckpoint(dir));
}

export interface Throughput {
  seqLen: number;
  /** Tokens per second of `forward` alone (activations kept, as in training). */
  forwardTokensPerSec: number;
  /** Tokens per second of forward + backward (`lossAndGrad`). */
  trainTokensPerSec: number;
}

/**
 * Measures single-thread throughput on random tokens with the causal pattern: `iters` timed repetitions
 * after one warm-up of each.
 */
export function measureThroughput(config: Qwen3Config, seqLen: number, iters = 3, seed = 1): Throughput {
  const model = Qwen3Model.random(config, { seed });
  const rng = new Rng(seed);
  const tokens = new Int32Array(seqLen);
  for (let i = 0; i < seqLen; i++) tokens[i] = rng.int(config.vocab_size);
  const targets = new Int32Array(seqLen);
  for (let i = 0; i < seqLen; i++) targets[i] = i + 1 < seqLen ? tokens[i + 1] : IGNORE_INDEX;
  const pattern = causalPattern(seqLen);
  model.forward(tokens, pattern);
  let t0 = performance.now();
  for (let i = 0; i < iters; i++) model.forward(tokens, pattern);
  const fwd = (performance.now() - t0) / 1000;
  model.lossAndGrad(tokens, targets, pattern);
  t0 = performance.now();
  for (let i = 0; i < iters; i++) model.lossAndGrad(tokens, targets, pattern);
  const both = (performance.now() - t0) / 1000;
  return { seqLen, forwardTokensPerSec: (seqLen * iters) / fwd, trainTokensPerSec: (seqLen * iters) / both };
}
