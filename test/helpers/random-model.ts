/**
 * Test and demo helpers: a small random-weight model in the bundled model's layout (the toy character
 * tokenizer, vocabulary padded to 112), so the engine and the server can be exercised without a trained
 * model: in memory (randomModel, toyMementoTokenizer) or as a model directory (writeRandomModelDir).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizer, type MementoTokenizer } from "../../src/format/tokenizer.js";
import { saveModel, Qwen3Model, toyConfig, type Qwen3Config } from "../../src/model/index.js";
import { toyTokenizer } from "../../src/train/char-tokenizer.js";

export interface RandomModelOptions {
  seed?: number;
  config?: Partial<Qwen3Config>;
}

/** The tiny shape of randomModel: 2 layers of 32, 2 query heads over 1 KV head, vocabulary 112. */
export const TINY_MODEL_CONFIG: Partial<Qwen3Config> = {
  vocab_size: 112,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 16,
};

/** A smaller shape still (1 layer of 16) for the quickest runs; the vocabulary is left to the caller. */
export const ONE_LAYER_CONFIG: Partial<Qwen3Config> = {
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 8,
};

/** A tiny random model (2 layers of 32, vocabulary 112) in memory. */
export function randomModel(opts: RandomModelOptions = {}): Qwen3Model {
  const config = toyConfig({ ...TINY_MODEL_CONFIG, ...opts.config });
  return Qwen3Model.random(config, { seed: opts.seed ?? 1 });
}

/** Writes a tiny random model's config.json, model.safetensors, tokenizer.json and tokenizer_config.json to `dir`. */
export function writeRandomModelDir(dir: string, opts: RandomModelOptions = {}): void {
  saveModel(dir, randomModel(opts));
  toyTokenizer().save(dir);
}

/** The toy character tokenizer as the server loads it (a MementoTokenizer with the chat template). */
export function toyMementoTokenizer(): MementoTokenizer {
  const dir = mkdtempSync(join(tmpdir(), "memento-toy-tokenizer-"));
  try {
    toyTokenizer().save(dir);
    return loadTokenizer(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
