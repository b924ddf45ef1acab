/**
 * Loading a model directory for serving: config.json + model.safetensors (the reference transformer),
 * tokenizer.json + tokenizer_config.json (with the chat template), and the engine over them.
 */
import { existsSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../errors.js";
import { createEngine, type MementoEngine } from "../engine/engine.js";
import { ReferenceBackend } from "../engine/backends/reference.js";
import type { Backend, EngineTokenizer } from "../engine/types.js";
import { loadTokenizer, type MementoTokenizer } from "../format/tokenizer.js";
import type { MaskingConfig } from "../masking/config.js";
import { loadModel } from "../model/index.js";

export const BACKENDS = ["reference"] as const;
export type BackendName = (typeof BACKENDS)[number];

export const DEFAULT_MODEL_DIR = "models/toy";

/** The bundled model of this package (models/toy next to src/ and dist/), whatever the working directory. */
export function bundledModelDir(): string {
  return fileURLToPath(new URL("../../models/toy", import.meta.url));
}

/** `dir` itself, or for the default `models/toy` missing from the working directory, the package's bundled model. */
export function resolveModelDir(dir: string): string {
  if (dir === DEFAULT_MODEL_DIR && !existsSync(dir) && existsSync(bundledModelDir())) return bundledModelDir();
  return dir;
}
export const DEFAULT_KV_BUDGET_TOKENS = 65_536;
export const DEFAULT_MAX_RUNNING = 32;
export const DEFAULT_MAX_WAITING = 256;

export interface ServingModelOptions {
  /** Model directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json). */
  modelDir: string;
  backend?: BackendName;
  /** KV cells shared by all running requests (default 65,536). */
  kvBudgetTokens?: number;
  /** Most requests decoded together (default 32). */
  maxRunning?: number;
  /** Most requests queued beyond the running ones; more are answered 429 (default 256). */
  maxWaiting?: number;
  /** Server-wide masking defaults (requests may override them with `block_masking`). */
  masking?: Partial<MaskingConfig>;
}

export interface ServingModel {
  engine: MementoEngine;
  tokenizer: MementoTokenizer;
  /** The id clients send as `model` (the directory's name). */
  name: string;
  /** Longest prompt + completion, in tokens (the model's max_position_embeddings). */
  maxModelLen: number;
  modelDir: string;
}

/**
 * The tokenizer the engine decodes with: ids the vocabulary lacks (a model's padded rows, e.g. 108..111 of the
 * toy model's 112) decode to nothing instead of throwing, so an untrained model cannot fail a request.
 */
export function lenientTokenizer(tok: MementoTokenizer): EngineTokenizer {
  return {
    specialTokens: tok.specialTokens,
    decode(ids, opts) {
      const known = ids.filter((id) => id < tok.vocabSize && tok.idToToken(id) !== undefined);
      return tok.decode(known, opts);
    },
  };
}

function requireFile(dir: string, file: string, hint: string): void {
  if (!existsSync(join(dir, file))) throw new UserError(`${dir}: no ${file} (${hint})`);
}

export function loadServingModel(opts: ServingModelOptions): ServingModel {
  const dir = resolve(resolveModelDir(opts.modelDir));
  const backend = opts.backend ?? "reference";
  if (!(BACKENDS as readonly string[]).includes(backend)) throw new UserError(`--backend: expected one of ${BACKENDS.join(", ")}, got "${backend}"`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UserError(`${dir}: model directory not found (expected config.json, model.safetensors, tokenizer.json, tokenizer_config.json)`);
  }
  requireFile(dir, "config.json", "a Hugging Face Qwen3 config");
  requireFile(dir, "tokenizer.json", "a Hugging Face tokenizer");
  const tokenizer = loadTokenizer(dir);
  let model;
  try {
    model = loadModel(dir);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${dir}: cannot load the model (${(e as Error).message})`);
  }
  if (tokenizer.vocabSize > model.vocab) {
    throw new UserError(`${dir}: the tokenizer has ${tokenizer.vocabSize} ids but the model only ${model.vocab} embedding rows`);
  }
  const backendImpl: Backend = new ReferenceBackend(model);
  const engine = createEngine({
    backend: backendImpl,
    tokenizer: lenientTokenizer(tokenizer),
    kvBudgetTokens: opts.kvBudgetTokens ?? DEFAULT_KV_BUDGET_TOKENS,
    maxRunning: opts.maxRunning ?? DEFAULT_MAX_RUNNING,
    maxWaiting: opts.maxWaiting ?? DEFAULT_MAX_WAITING,
    masking: opts.masking,
  });
  return { engine, tokenizer, name: basename(dir), maxModelLen: model.config.max_position_embeddings, modelDir: dir };
}
