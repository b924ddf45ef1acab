/**
 * Test and demo helpers: a small random-weight model directory in the bundled model's layout (the toy
 * character tokenizer, vocabulary padded to 112), so the server can be exercised without a trained model.
 */
import { saveModel, Qwen3Model, toyConfig, type Qwen3Config } from "../../src/model/index.js";
import { toyTokenizer } from "../../src/train/char-tokenizer.js";

export interface RandomModelOptions {
  seed?: number;
  config?: Partial<Qwen3Config>;
}

/** Writes config.json, model.safetensors, tokenizer.json and tokenizer_config.json of a tiny random model into `dir`. */
export function writeRandomModelDir(dir: string, opts: RandomModelOptions = {}): void {
  const config = toyConfig({
    vocab_size: 112,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 16,
    ...opts.config,
  });
  saveModel(dir, Qwen3Model.random(config, { seed: opts.seed ?? 1 }));
  toyTokenizer().save(dir);
}
