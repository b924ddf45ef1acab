import type { Command } from "commander";
import { UserError } from "../errors.js";
import type { MaskingConfig } from "../masking/config.js";
import {
  BACKENDS,
  DEFAULT_KV_BUDGET_TOKENS,
  DEFAULT_MAX_RUNNING,
  DEFAULT_MAX_WAITING,
  DEFAULT_MODEL_DIR,
  loadServingModel,
  type BackendName,
} from "../engine/index.js";
import { startServer, type StartedServer } from "../server/index.js";

export interface ServeCliOptions {
  model: string;
  host: string;
  port: string;
  kvBudget?: string;
  maxRunning?: string;
  maxWaiting?: string;
  keepLastNBlocks?: string;
  maskDelimiters?: boolean;
  restartMode?: boolean;
  maxBlockTokens?: string;
  backend: string;
  gguf?: string;
  sequences?: string;
  cellsPerSequence?: string;
  threads?: string;
  servedModelName?: string;
  apiKey?: string;
  log?: boolean;
}

function int(flag: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new UserError(`${flag}: expected an integer in [${min}, ${max}], got "${v}"`);
  return n;
}

/** Loads the model and starts the server (exported for tests: `memento serve` without the signal handling). */
export async function runServe(o: ServeCliOptions): Promise<StartedServer & { model: string }> {
  const masking: Partial<MaskingConfig> = {};
  const keep = int("--keep-last-n-blocks", o.keepLastNBlocks, -1);
  if (keep !== undefined) masking.keepLastNBlocks = keep;
  if (o.maskDelimiters) masking.maskDelimiters = true;
  if (o.restartMode) masking.restartMode = true;
  const maxBlock = int("--max-block-tokens", o.maxBlockTokens, 0);
  if (maxBlock !== undefined) masking.maxBlockTokens = maxBlock;
  const port = int("--port", o.port, 0, 65535)!;
  const llamaFlags = { "--gguf": o.gguf, "--sequences": o.sequences, "--cells-per-sequence": o.cellsPerSequence, "--threads": o.threads };
  if (o.backend !== "llamacpp") {
    const given = Object.entries(llamaFlags).filter(([, v]) => v !== undefined).map(([k]) => k);
    if (given.length > 0) throw new UserError(`${given.join(", ")}: only with --backend llamacpp`);
  }
  const served = await loadServingModel({
    modelDir: o.model,
    backend: o.backend as BackendName,
    kvBudgetTokens: int("--kv-budget", o.kvBudget, 1),
    maxRunning: int("--max-running", o.maxRunning, 1),
    maxWaiting: int("--max-waiting", o.maxWaiting, 0),
    masking,
    llamacpp: {
      gguf: o.gguf,
      sequences: int("--sequences", o.sequences, 1) ?? 4,
      cellsPerSequence: int("--cells-per-sequence", o.cellsPerSequence, 2) ?? 2048,
      threads: int("--threads", o.threads, 1),
    },
  });
  const name = o.servedModelName ?? served.name;
  const server = await startServer({
    engine: served.engine,
    tokenizer: served.tokenizer,
    modelName: name,
    aliases: [o.model, served.modelDir].filter((a) => a !== name),
    maxModelLen: served.maxModelLen,
    apiKey: o.apiKey ?? process.env.MEMENTO_API_KEY,
    backendName: o.backend,
    restartModeSupported: served.restartModeSupported,
    ownsEngine: true,
    logger: o.log ?? false,
    host: o.host,
    port,
  });
  return { ...server, model: name };
}

export function register(program: Command): void {
  program
    .command("serve")
    .description(
      "OpenAI-compatible server (POST /v1/chat/completions and /v1/completions, streaming or not; GET /v1/models, /health, /metrics) " +
        "over the Memento engine: continuous batching in a shared KV budget, each finished block evicted right after <|summary_end|>. " +
        "Per request: skip_special_tokens (default false), block_masking {keepLastNBlocks, maskDelimiters, restartMode, maxBlockTokens, ...} " +
        "over the defaults below; usage.memento reports blocks, evictions, peak and final KV tokens. Requests beyond --max-running wait " +
        "in a queue of --max-waiting; beyond it the answer is 429. --backend llamacpp serves the weights through llama.cpp " +
        "(node-llama-cpp, CPU): --model still gives the tokenizer and name, --gguf the weights (else --model is exported to GGUF); " +
        "its KV budget is min(--kv-budget, sequences x cells-per-sequence).",
    )
    .option("--model <dir>", "model directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)", DEFAULT_MODEL_DIR)
    .option("--host <addr>", "address to bind", "127.0.0.1")
    .option("--port <n>", "port (0 = a free one)", "8080")
    .option("--kv-budget <tokens>", `KV cells (token slots) shared by all requests (default ${DEFAULT_KV_BUDGET_TOKENS})`)
    .option("--max-running <n>", `most requests decoded together (default ${DEFAULT_MAX_RUNNING})`)
    .option("--max-waiting <n>", `most requests queued; more get 429 (default ${DEFAULT_MAX_WAITING})`)
    .option("--keep-last-n-blocks <n>", "completed blocks kept in the KV cache: 0 evicts every block (Memento), -1 none (vanilla)", "0")
    .option("--mask-delimiters", "evict <|block_start|>/<|block_end|> with the block (Phi-4 style)")
    .option("--restart-mode", "evict [block_start, block_end] and recompute the memento's KV without the block (reference backend only)")
    .option("--max-block-tokens <n>", "force <|block_end|> after this many block tokens (0 = no limit)", "0")
    .option("--backend <name>", `inference backend: ${BACKENDS.join(", ")}`, "reference")
    .option("--gguf <file>", "llamacpp: GGUF weights (default: --model exported once to a cached GGUF in the OS temp directory)")
    .option("--sequences <n>", "llamacpp: sequences in the llama.cpp context, the most requests running at once (default 4)")
    .option("--cells-per-sequence <n>", "llamacpp: KV cells of each sequence, the most tokens one request holds at once (default 2048)")
    .option("--threads <n>", "llamacpp: CPU threads (default: node-llama-cpp's choice)")
    .option("--served-model-name <name>", "model id in the API (default: the model directory's name)")
    .option("--api-key <key>", "require Authorization: Bearer KEY on /v1/* (default: $MEMENTO_API_KEY, none if unset)")
    .option("--log", "log every request (fastify's logger, JSON lines on stdout)")
    .action(async (o: ServeCliOptions) => {
      const server = await runServe(o);
      process.stdout.write(`memento serve: model ${server.model} at ${server.baseURL}  (Ctrl-C to stop)\n`);
      await new Promise<void>((resolveStop) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          void server.close().then(() => resolveStop());
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
    });
}
