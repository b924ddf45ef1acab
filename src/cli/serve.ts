import type { Command } from "commander";
import { UserError } from "../errors.js";
import {
  BACKENDS,
  DEFAULT_KV_BUDGET_TOKENS,
  DEFAULT_MAX_RUNNING,
  DEFAULT_MAX_WAITING,
  DEFAULT_MODEL_DIR,
  SHARED_POOL_MODES,
  loadServingModel,
  type ServingModel,
} from "../engine/index.js";
import { startServer, type StartedServer } from "../server/index.js";
import { listenError } from "./listen-errors.js";
import { addMaskingOptions, maskingFromOptions } from "./masking-options.js";
import { optionalInteger, parseChoice, parseInteger, pathOption } from "./options.js";
import { closeOnInterrupt } from "./io.js";

export interface ServeCliOptions {
  /** The model directory; absent: models/toy, or with --backend llamacpp --gguf FILE the GGUF alone. */
  model?: string;
  host: string;
  port: string;
  kvBudget?: string;
  maxRunning?: string;
  maxWaiting?: string;
  /** The masking flags (src/cli/masking-options.ts); `keep` is the alias of --keep-last-n-blocks. */
  keepLastNBlocks?: string;
  keep?: string;
  maskDelimiters?: boolean;
  compactOnSummaryEnd?: boolean;
  keepLastBlockForAnswer?: boolean;
  restartMode?: boolean;
  maxBlockTokens?: string;
  backend: string;
  gguf?: string;
  sequences?: string;
  cellsPerSequence?: string;
  threads?: string;
  sharedPool?: string;
  servedModelName?: string;
  apiKey?: string;
  log?: boolean;
}

/** startServer; when it cannot listen, the loaded engine is closed and a fixable cause becomes a UserError. */
async function listen(served: ServingModel, opts: Parameters<typeof startServer>[0] & { host: string; port: number }) {
  try {
    return await startServer(opts);
  } catch (e) {
    await served.engine.close().catch(() => undefined);
    throw listenError(e, opts.host, opts.port);
  }
}

/** Loads the model and starts the server (exported for tests: `memento serve` without the signal handling). */
export async function runServe(
  o: ServeCliOptions,
): Promise<StartedServer & { model: string; backend: string; kvCells: number }> {
  const masking = maskingFromOptions(o);
  const port = parseInteger("--port", o.port, { min: 0, max: 65535 });
  const backend = parseChoice("--backend", o.backend, BACKENDS);
  const llamaFlags = {
    "--gguf": o.gguf,
    "--sequences": o.sequences,
    "--cells-per-sequence": o.cellsPerSequence,
    "--threads": o.threads,
    "--shared-pool": o.sharedPool,
  };
  if (backend !== "llamacpp") {
    const given = Object.entries(llamaFlags)
      .filter(([, v]) => v !== undefined)
      .map(([k]) => k);
    if (given.length > 0) throw new UserError(`${given.join(", ")}: only with --backend llamacpp`);
  }
  // With --gguf and no --model, the GGUF alone gives the tokenizer, the name and the context length.
  const modelDir = o.model ?? (backend === "llamacpp" && o.gguf !== undefined ? undefined : DEFAULT_MODEL_DIR);
  const served = await loadServingModel({
    modelDir,
    backend,
    kvBudgetTokens: optionalInteger("--kv-budget", o.kvBudget, { min: 1 }),
    maxRunning: optionalInteger("--max-running", o.maxRunning, { min: 1 }),
    maxWaiting: optionalInteger("--max-waiting", o.maxWaiting, { min: 0 }),
    masking,
    llamacpp: {
      gguf: o.gguf,
      sequences: optionalInteger("--sequences", o.sequences, { min: 1 }) ?? 4,
      cellsPerSequence: optionalInteger("--cells-per-sequence", o.cellsPerSequence, { min: 2 }) ?? 2048,
      threads: optionalInteger("--threads", o.threads, { min: 1 }),
      sharedPool:
        o.sharedPool === undefined ? undefined : parseChoice("--shared-pool", o.sharedPool, SHARED_POOL_MODES),
    },
  });
  const name = o.servedModelName ?? served.name;
  const server = await listen(served, {
    engine: served.engine,
    tokenizer: served.tokenizer,
    modelName: name,
    aliases: [...new Set([modelDir ?? o.gguf, served.modelDir])].filter(
      (a): a is string => a !== undefined && a !== name,
    ),
    maxModelLen: served.maxModelLen,
    apiKey: o.apiKey ?? process.env.MEMENTO_API_KEY,
    backendName: backend,
    ownsEngine: true,
    logger: o.log ?? false,
    host: o.host,
    port,
  });
  return { ...server, model: name, backend: served.engine.backend.name, kvCells: served.engine.stats().kvTotalTokens };
}

export function register(program: Command): void {
  const serve = program
    .command("serve")
    .description(
      "OpenAI-compatible server (POST /v1/chat/completions and /v1/completions, streaming or not; GET /v1/models, " +
        "/health, /metrics) over the Memento engine: continuous batching in a shared KV budget, each finished block " +
        "evicted right after <|summary_end|>. Per request: skip_special_tokens (default false), block_masking " +
        "{keepLastNBlocks, maskDelimiters, restartMode, maxBlockTokens, ...} over the defaults below; usage.memento " +
        "reports blocks, evictions, peak and final KV tokens. Requests beyond --max-running wait in a queue of " +
        "--max-waiting; beyond it the answer is 429. --backend llamacpp serves the weights through llama.cpp " +
        "(node-llama-cpp's prebuilt library, CPU): --model still gives the tokenizer and name, --gguf the weights " +
        "(else --model is exported to GGUF); --gguf without --model serves the GGUF alone (tokenizer, chat " +
        "template, name and context length from its metadata); it has no restart mode. Its KV is ONE pool of " +
        "sequences x cells-per-sequence cells shared by all requests when memento's native addon " +
        "(native/llama-pool) is built, else (with a warning) each sequence owns cells-per-sequence cells; either " +
        "way the KV budget is min(--kv-budget, sequences x cells-per-sequence), the same memory.",
    )
    .addOption(
      pathOption(
        "--model <dir>",
        "model directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json) (default: " +
          `${DEFAULT_MODEL_DIR}; with --backend llamacpp --gguf FILE and no --model, the GGUF alone)`,
      ),
    )
    .option("--host <addr>", "address to bind", "127.0.0.1")
    .option("--port <n>", "port (0 = a free one)", "8080")
    .option(
      "--kv-budget <tokens>",
      `KV cells (token slots) shared by all requests (default ${DEFAULT_KV_BUDGET_TOKENS})`,
    )
    .option("--max-running <n>", `most requests decoded together (default ${DEFAULT_MAX_RUNNING})`)
    .option("--max-waiting <n>", `most requests queued; more get 429 (default ${DEFAULT_MAX_WAITING})`);
  addMaskingOptions(serve);
  serve
    .option("--backend <name>", `inference backend: ${BACKENDS.join(", ")}`, "reference")
    .addOption(
      pathOption("--gguf <file>", "llamacpp: GGUF weights (default: --model, exported once to a GGUF in the temp dir)"),
    )
    .option(
      "--sequences <n>",
      "llamacpp: sequences in the llama.cpp context, the most requests running at once (default 4)",
    )
    .option(
      "--cells-per-sequence <n>",
      "llamacpp: KV cells per sequence (default 2048); the shared pool holds sequences x this, and one request " +
        "may use more of it; without the addon, the most cells one request holds at once",
    )
    .option(
      "--threads <n>",
      "llamacpp: CPU threads (default: all cores but one; llama.cpp decodes off the event loop's thread)",
    )
    .option(
      "--shared-pool <mode>",
      `llamacpp: the shared-KV-pool addon: ${SHARED_POOL_MODES.join(", ")} (auto: when it loads, else ` +
        "per-sequence KV with a warning; on: fail without it; off: node-llama-cpp's per-sequence KV)",
    )
    .option("--served-model-name <name>", "model id in the API (default: the model directory's name)")
    .option("--api-key <key>", "require Authorization: Bearer KEY on /v1/* (default: $MEMENTO_API_KEY, none if unset)")
    .option("--log", "log every request (fastify's logger, JSON lines on stdout)")
    .action(async (o: ServeCliOptions) => {
      const server = await runServe(o);
      process.stdout.write(
        `memento serve: model ${server.model} at ${server.baseURL} on ${server.backend}, ` +
          `${server.kvCells.toLocaleString("en-US")} KV cells  (Ctrl-C to stop)\n`,
      );
      await closeOnInterrupt(() => server.close());
    });
}
