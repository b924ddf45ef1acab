/**
 * Loading a model directory for serving: config.json + model.safetensors (the reference transformer),
 * tokenizer.json + tokenizer_config.json (with the chat template), and the engine over them.
 *
 * With the llama.cpp backend the directory still gives the tokenizer, the name and the context length; the
 * weights come from a GGUF file (given, or exported from the directory once into os.tmpdir(), where it is
 * reused while the directory's files are unchanged). "llamacpp" is served by one of two implementations:
 *   - LlamaPoolBackend (our addon, native/llama-pool) whenever it loads: ONE pool of sequences x
 *     cellsPerSequence KV cells shared by all requests (kv_unified), so cells one request's evictions free serve
 *     any other; the same memory as the per-sequence layout, without its per-request cap;
 *   - LlamaCppBackend (node-llama-cpp) otherwise, or when asked for (`sharedPool: "off"`): each sequence owns
 *     cellsPerSequence cells. Falling back on its own prints one warning line saying what is lost.
 * BACKEND_CAPABILITIES and ServingModel.capabilities always describe the implementation actually chosen.
 *
 * A GGUF alone (llamacpp with `gguf` and no `modelDir`) is enough too: the tokenizer and chat template come from
 * its `tokenizer.*` metadata (src/model/gguf-tokenizer.ts), the name from `general.name` (else the file's name
 * without .gguf), the context length from `<arch>.context_length`.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../errors.js";
import { createEngine, type MementoEngine } from "./engine.js";
import { ReferenceBackend } from "./backends/reference.js";
import { DEFAULT_LLAMACPP_GPU, type LlamaCppBackendOptions } from "./backends/llamacpp.js";
import { LLAMACPP_CAPABILITIES, REFERENCE_CAPABILITIES, missingFeature } from "./backends/capabilities.js";
import {
  defaultLlamaCppThreads,
  LLAMA_POOL_CAPABILITIES,
  LlamaPoolBackend,
  llamaPoolAvailability,
} from "./backends/llama-pool.js";
import type { Backend, BackendCapabilities, BackendFeature, EngineTokenizer } from "./types.js";
import { loadTokenizer, type MementoTokenizer } from "../format/tokenizer.js";
import type { MaskingConfig } from "../masking/config.js";
import { exportCheckpointToGguf } from "../model/gguf.js";
import { ggufServingInfo } from "../model/gguf-tokenizer.js";
import { loadModel, parseQwen3Config, type Qwen3Config, type Qwen3Model } from "../model/index.js";

export const BACKENDS = ["reference", "llamacpp"] as const;
export type BackendName = (typeof BACKENDS)[number];

/** How "llamacpp" uses the shared-KV addon: when it loads (auto), always (on: else a UserError), never (off). */
export const SHARED_POOL_MODES = ["auto", "on", "off"] as const;
export type SharedPoolMode = (typeof SHARED_POOL_MODES)[number];

/**
 * What each backend declares (the same objects its class exposes), known before a model is loaded: for
 * "llamacpp", the implementation `sharedPool: "auto"` picks on this machine (asking loads the addon, once).
 */
export const BACKEND_CAPABILITIES: Readonly<Record<BackendName, BackendCapabilities>> = Object.freeze({
  reference: REFERENCE_CAPABILITIES,
  get llamacpp(): BackendCapabilities {
    return llamaCppCapabilities("auto");
  },
});

/** The capabilities of the llama.cpp implementation `mode` picks here. */
export function llamaCppCapabilities(mode: SharedPoolMode = "auto"): BackendCapabilities {
  return mode !== "off" && llamaPoolAvailability().ok ? LLAMA_POOL_CAPABILITIES : LLAMACPP_CAPABILITIES;
}

/** The llama.cpp implementation to serve with: the shared pool or not, and the warning to print, if any. */
export interface LlamaCppChoice {
  sharedPool: boolean;
  warning?: string;
}

/**
 * Picks the llama.cpp implementation from the mode and the addon's load result (a pure function of the two).
 * Throws a UserError for an unknown mode, or for "on" when the addon is unavailable.
 */
export function chooseLlamaCppBackend(
  mode: string,
  addon: { ok: true } | { ok: false; reason: string },
): LlamaCppChoice {
  if (!(SHARED_POOL_MODES as readonly string[]).includes(mode))
    throw new UserError(`--shared-pool: expected one of ${SHARED_POOL_MODES.join(", ")}, got "${mode}"`);
  if (mode === "off") return { sharedPool: false };
  if (addon.ok) return { sharedPool: true };
  if (mode === "on")
    throw new UserError(`--shared-pool on: the native shared-KV addon is unavailable (${addon.reason})`);
  return {
    sharedPool: false,
    warning:
      `memento: warning: native shared-KV addon unavailable (${addon.reason}); llama.cpp runs with per-sequence KV ` +
      "(cells freed by one request cannot serve another)",
  };
}

/** The `memento serve` flag of each backend feature, for the loader's refusal. */
const FEATURE_FLAGS: Record<BackendFeature, string> = { restartMode: "--restart-mode" };

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
  /**
   * Model directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json). Optional only with
   * backend "llamacpp" and `llamacpp.gguf`: then the GGUF alone gives the tokenizer, the name and the context.
   */
  modelDir?: string;
  backend?: BackendName;
  /** KV cells shared by all running requests (default 65,536). */
  kvBudgetTokens?: number;
  /** Most requests decoded together (default 32). */
  maxRunning?: number;
  /** Most requests queued beyond the running ones; more are answered 429 (default 256). */
  maxWaiting?: number;
  /** Tokens one engine step computes at most: decode rows, then prompt chunks (default DEFAULT_MAX_STEP_TOKENS). */
  maxStepTokens?: number;
  /** Server-wide masking defaults (requests may override them with `block_masking`). */
  masking?: Partial<MaskingConfig>;
  /** Options of the llama.cpp backend (ignored by the reference backend). */
  llamacpp?: LlamaCppServingOptions;
  /** Where a warning line goes (default: stderr). */
  onWarning?: (line: string) => void;
}

/**
 * `sequences` and `cellsPerSequence` size both implementations with the same memory: the shared pool holds
 * sequences x cellsPerSequence cells (one request may use more than cellsPerSequence of them); node-llama-cpp
 * gives each sequence its cellsPerSequence.
 */
export interface LlamaCppServingOptions extends Omit<LlamaCppBackendOptions, "modelPath"> {
  /** GGUF weights (default: the model directory exported to a cached GGUF under os.tmpdir()). */
  gguf?: string;
  /** The shared-KV addon: "auto" (default), "on" or "off" (see SHARED_POOL_MODES). */
  sharedPool?: SharedPoolMode;
}

export interface ServingModel {
  engine: MementoEngine;
  tokenizer: MementoTokenizer;
  /** The id clients send as `model` (the directory's name; a lone GGUF's general.name, else its file name). */
  name: string;
  /** Longest prompt + completion, in tokens (the model's max_position_embeddings). */
  maxModelLen: number;
  /** The model directory, or the GGUF file when it was served alone. */
  modelDir: string;
  backend: BackendName;
  /** What the backend serves (= engine.capabilities); the engine refuses requests that need more. */
  capabilities: BackendCapabilities;
}

/**
 * The tokenizer the engine decodes with. Its vocabSize keeps the sampler off a model's padded rows (e.g. 108..111
 * of the toy model's 112); ids the vocabulary still lacks (gaps below it, or a replayed id) decode to nothing
 * instead of throwing, so an untrained model cannot fail a request.
 */
export function lenientTokenizer(tok: MementoTokenizer): EngineTokenizer {
  return {
    specialTokens: tok.specialTokens,
    vocabSize: tok.vocabSize,
    decode(ids, opts) {
      const known = ids.filter((id) => id < tok.vocabSize && tok.idToToken(id) !== undefined);
      return tok.decode(known, opts);
    },
  };
}

function requireFile(dir: string, file: string, hint: string): void {
  if (!existsSync(join(dir, file))) throw new UserError(`${dir}: no ${file} (${hint})`);
}

export async function loadServingModel(opts: ServingModelOptions): Promise<ServingModel> {
  const backend = opts.backend ?? "reference";
  if (!(BACKENDS as readonly string[]).includes(backend))
    throw new UserError(`--backend: expected one of ${BACKENDS.join(", ")}, got "${backend}"`);
  const sharedPoolMode = opts.llamacpp?.sharedPool ?? "auto";
  const choice =
    backend === "llamacpp"
      ? chooseLlamaCppBackend(
          sharedPoolMode,
          sharedPoolMode === "off" ? { ok: false, reason: "off" } : llamaPoolAvailability(),
        )
      : undefined;
  requireServable(backend, opts.masking, choice);
  if (opts.modelDir === undefined) {
    if (backend !== "llamacpp" || opts.llamacpp?.gguf === undefined)
      throw new UserError("a model directory is needed (--model DIR) unless --backend llamacpp --gguf FILE is given");
    return loadGgufOnly(opts, choice);
  }
  const dir = resolve(resolveModelDir(opts.modelDir));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UserError(
      `${dir}: model directory not found (expected config.json, model.safetensors, tokenizer.json, tokenizer_config.json)`,
    );
  }
  requireFile(dir, "config.json", "a Hugging Face Qwen3 config");
  requireFile(dir, "tokenizer.json", "a Hugging Face tokenizer");
  const tokenizer = loadTokenizer(dir);
  const engineOf = (backendImpl: Backend, kvBudgetTokens: number, maxRunning: number): MementoEngine =>
    engineOver(opts, tokenizer, backendImpl, kvBudgetTokens, maxRunning);
  const kvBudget = opts.kvBudgetTokens ?? DEFAULT_KV_BUDGET_TOKENS;
  const maxRunning = opts.maxRunning ?? DEFAULT_MAX_RUNNING;

  if (backend === "llamacpp") {
    let config: Qwen3Config;
    try {
      config = parseQwen3Config(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
    } catch (e) {
      throw new UserError(`${dir}: cannot read config.json (${(e as Error).message.split("\n")[0]})`);
    }
    if (tokenizer.vocabSize > config.vocab_size) {
      throw new UserError(
        `${dir}: the tokenizer has ${tokenizer.vocabSize} ids but the model only ${config.vocab_size} embedding rows`,
      );
    }
    const gguf = opts.llamacpp?.gguf;
    const modelPath = gguf !== undefined ? ggufPath(gguf) : cachedGgufExport(dir);
    const engine = await llamaCppEngine(opts, choice, tokenizer, modelPath, `the tokenizer of ${dir}`);
    return servingModel(engine, tokenizer, basename(dir), dir, config.max_position_embeddings, backend);
  }

  let model: Qwen3Model;
  try {
    model = loadModel(dir);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${dir}: cannot load the model (${(e as Error).message})`);
  }
  if (tokenizer.vocabSize > model.vocab) {
    throw new UserError(
      `${dir}: the tokenizer has ${tokenizer.vocabSize} ids but the model only ${model.vocab} embedding rows`,
    );
  }
  const engine = engineOf(new ReferenceBackend(model), kvBudget, maxRunning);
  return servingModel(engine, tokenizer, basename(dir), dir, model.config.max_position_embeddings, backend);
}

function engineOver(
  opts: ServingModelOptions,
  tokenizer: MementoTokenizer,
  backend: Backend,
  kvBudgetTokens: number,
  maxRunning: number,
): MementoEngine {
  return createEngine({
    backend,
    tokenizer: lenientTokenizer(tokenizer),
    kvBudgetTokens,
    maxRunning,
    maxWaiting: opts.maxWaiting ?? DEFAULT_MAX_WAITING,
    ...(opts.maxStepTokens !== undefined ? { maxStepTokens: opts.maxStepTokens } : {}),
    masking: opts.masking,
  });
}

/** The absolute path of a `--gguf` file (a UserError when it is not a file). */
function ggufPath(gguf: string): string {
  const modelPath = resolve(gguf);
  if (!existsSync(modelPath) || !statSync(modelPath).isFile()) throw new UserError(`--gguf: ${modelPath} not found`);
  return modelPath;
}

/** The engine over a llama.cpp backend loaded from `modelPath` (the implementation `choice` picked). */
async function llamaCppEngine(
  opts: ServingModelOptions,
  choice: LlamaCppChoice | undefined,
  tokenizer: MementoTokenizer,
  modelPath: string,
  tokenizerWhat: string,
): Promise<MementoEngine> {
  const { gguf: _gguf, sharedPool: _mode, ...given } = opts.llamacpp ?? {};
  const llamaOpts = {
    ...given,
    threads: given.threads ?? defaultLlamaCppThreads(),
    gpu: given.gpu ?? DEFAULT_LLAMACPP_GPU,
  };
  if (choice?.warning) (opts.onWarning ?? ((line) => process.stderr.write(`${line}\n`)))(choice.warning);
  let llama: Backend & { kvCapacityTokens: number; close(): Promise<void> };
  try {
    llama = choice?.sharedPool
      ? await createSharedPool(modelPath, llamaOpts)
      : await (await import("./backends/llamacpp.js")).LlamaCppBackend.create({ ...llamaOpts, modelPath });
  } catch (e) {
    throw new UserError(`llamacpp backend: cannot load ${modelPath} (${(e as Error).message.split("\n")[0]})`);
  }
  if (llama.vocabSize < tokenizer.vocabSize) {
    await llama.close();
    throw new UserError(`${modelPath}: ${llama.vocabSize} logits but ${tokenizerWhat} has ${tokenizer.vocabSize} ids`);
  }
  return engineOver(
    opts,
    tokenizer,
    llama,
    Math.min(opts.kvBudgetTokens ?? DEFAULT_KV_BUDGET_TOKENS, llama.kvCapacityTokens),
    Math.min(opts.maxRunning ?? DEFAULT_MAX_RUNNING, llama.maxSequences),
  );
}

/** Serving a GGUF alone: tokenizer, chat template, name and context length from its metadata. */
async function loadGgufOnly(opts: ServingModelOptions, choice: LlamaCppChoice | undefined): Promise<ServingModel> {
  const modelPath = ggufPath(opts.llamacpp!.gguf!);
  const info = ggufServingInfo(modelPath);
  if (info.vocabSize !== undefined && info.tokenizer.vocabSize > info.vocabSize) {
    throw new UserError(
      `${modelPath}: the tokenizer has ${info.tokenizer.vocabSize} ids but the model only ${info.vocabSize} ` +
        "embedding rows",
    );
  }
  const engine = await llamaCppEngine(opts, choice, info.tokenizer, modelPath, "its tokenizer");
  return servingModel(engine, info.tokenizer, info.name, modelPath, info.contextLength, "llamacpp");
}

/** The shared-pool backend sized like the per-sequence one: sequences x cellsPerSequence cells in all. */
function createSharedPool(
  modelPath: string,
  o: Omit<LlamaCppServingOptions, "gguf" | "sharedPool">,
): Promise<LlamaPoolBackend> {
  const { cellsPerSequence, ...rest } = o;
  const sequences = o.sequences ?? 4;
  return LlamaPoolBackend.create({ ...rest, modelPath, sequences, cells: sequences * (cellsPerSequence ?? 2048) });
}

/** Refuses, before anything is loaded, server-wide masking defaults the backend cannot serve (one line). */
function requireServable(
  backend: BackendName,
  masking: Partial<MaskingConfig> | undefined,
  choice: LlamaCppChoice | undefined,
): void {
  const capabilities =
    backend === "llamacpp"
      ? choice?.sharedPool
        ? LLAMA_POOL_CAPABILITIES
        : LLAMACPP_CAPABILITIES
      : REFERENCE_CAPABILITIES;
  const feature = missingFeature(capabilities, masking);
  if (feature === undefined) return;
  const why = capabilities.limitations?.[feature];
  throw new UserError(`${FEATURE_FLAGS[feature]} is not supported by the ${backend} backend${why ? ` (${why})` : ""}`);
}

function servingModel(
  engine: MementoEngine,
  tokenizer: MementoTokenizer,
  name: string,
  dir: string,
  maxModelLen: number,
  backend: BackendName,
): ServingModel {
  const { capabilities } = engine;
  return {
    engine,
    tokenizer,
    name,
    maxModelLen,
    modelDir: dir,
    backend,
    capabilities,
  };
}

/**
 * The model directory exported to F32 GGUF under os.tmpdir(), named by a hash of the directory's path and
 * its files' sizes and modification times: exported once, then reused until the directory changes.
 */
export function cachedGgufExport(dir: string): string {
  const h = createHash("sha256").update(dir);
  for (const f of readdirSync(dir).sort()) {
    if (
      f !== "config.json" &&
      !f.startsWith("tokenizer") &&
      !f.endsWith(".safetensors") &&
      !f.endsWith(".safetensors.index.json")
    )
      continue;
    const st = statSync(join(dir, f));
    h.update(`\0${f}\0${st.size}\0${st.mtimeMs}`);
  }
  const out = join(
    tmpdir(),
    `memento-serve-${basename(dir).replace(/[^A-Za-z0-9._-]/g, "_")}-${h.digest("hex").slice(0, 16)}.gguf`,
  );
  if (existsSync(out)) return out;
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    exportCheckpointToGguf(dir, tmp);
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { force: true });
    if (e instanceof UserError) throw e;
    throw new UserError(`${dir}: cannot export to GGUF for llama.cpp (${(e as Error).message.split("\n")[0]})`);
  }
  return out;
}
