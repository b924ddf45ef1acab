/**
 * `memento serve`: loads the model, starts the OpenAI-compatible server and runs until SIGINT/SIGTERM.
 *  1. The banner (stdout) names the address actually bound; binding a non-loopback address without an API key
 *     adds one warning line (stderr).
 *  2. The first SIGINT/SIGTERM drains (src/server/shutdown.ts): new requests get a 503, the ones in flight run on
 *     for up to --shutdown-timeout seconds, then are cut (a stream: an error event and [DONE]; otherwise a 503
 *     reply); a second signal cuts at once. One stderr line per phase, with counts; then exit 0.
 */
import type { Command } from "commander";
import { UserError } from "../errors.js";
import {
  BACKENDS,
  DEFAULT_KV_BUDGET_TOKENS,
  DEFAULT_MAX_RUNNING,
  DEFAULT_MAX_STEP_TOKENS,
  DEFAULT_MAX_WAITING,
  DEFAULT_MODEL_DIR,
  SHARED_POOL_MODES,
  loadServingModel,
  type ServingModel,
} from "../engine/index.js";
import {
  DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
  exposedWithoutKey,
  startServer,
  type ShutdownPhase,
  type StartedServer,
} from "../server/index.js";
import { listenError } from "./listen-errors.js";
import { addMaskingOptions, maskingFromOptions } from "./masking-options.js";
import { optionalInteger, optionalNumber, parseChoice, parseInteger, pathOption } from "./options.js";

/** `--gpu`: auto (a GPU when one loads, the default) or off (the CPU). */
const GPU_MODES = ["auto", "off"] as const;

export interface ServeCliOptions {
  /** The model directory; absent: models/toy, or with --backend llamacpp --gguf FILE the GGUF alone. */
  model?: string;
  host: string;
  port: string;
  kvBudget?: string;
  maxRunning?: string;
  maxWaiting?: string;
  maxStepTokens?: string;
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
  gpu?: string;
  servedModelName?: string;
  apiKey?: string;
  log?: boolean;
  /** Seconds requests in flight may run on after SIGINT/SIGTERM (default DEFAULT_SHUTDOWN_TIMEOUT_SECONDS). */
  shutdownTimeout?: string;
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
export async function runServe(o: ServeCliOptions): Promise<
  StartedServer & {
    model: string;
    backend: string;
    /** Where the weights run (llama.cpp: "CPU" or the GPU); absent for the reference backend. */
    device?: string;
    kvCells: number;
    apiKey?: string;
    shutdownTimeoutMs: number;
  }
> {
  const masking = maskingFromOptions(o);
  const port = parseInteger("--port", o.port, { min: 0, max: 65535 });
  const shutdownTimeoutSeconds =
    optionalNumber("--shutdown-timeout", o.shutdownTimeout, { min: 0, max: 86_400 }) ??
    DEFAULT_SHUTDOWN_TIMEOUT_SECONDS;
  const backend = parseChoice("--backend", o.backend, BACKENDS);
  const llamaFlags = {
    "--gguf": o.gguf,
    "--sequences": o.sequences,
    "--cells-per-sequence": o.cellsPerSequence,
    "--threads": o.threads,
    "--shared-pool": o.sharedPool,
    "--gpu": o.gpu,
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
    maxStepTokens: optionalInteger("--max-step-tokens", o.maxStepTokens, { min: 1 }),
    masking,
    llamacpp: {
      gguf: o.gguf,
      sequences: optionalInteger("--sequences", o.sequences, { min: 1 }) ?? 4,
      cellsPerSequence: optionalInteger("--cells-per-sequence", o.cellsPerSequence, { min: 2 }) ?? 2048,
      threads: optionalInteger("--threads", o.threads, { min: 1 }),
      sharedPool:
        o.sharedPool === undefined ? undefined : parseChoice("--shared-pool", o.sharedPool, SHARED_POOL_MODES),
      ...(o.gpu !== undefined ? { gpu: parseChoice("--gpu", o.gpu, GPU_MODES) === "off" ? false : "auto" } : {}),
    },
  });
  const name = o.servedModelName ?? served.name;
  const apiKey = o.apiKey ?? process.env.MEMENTO_API_KEY;
  const server = await listen(served, {
    engine: served.engine,
    tokenizer: served.tokenizer,
    modelName: name,
    aliases: [...new Set([modelDir ?? o.gguf, served.modelDir])].filter(
      (a): a is string => a !== undefined && a !== name,
    ),
    maxModelLen: served.maxModelLen,
    apiKey,
    backendName: backend,
    ownsEngine: true,
    logger: o.log ?? false,
    host: o.host,
    port,
  });
  return {
    ...server,
    model: name,
    backend: served.engine.backend.name,
    ...(served.engine.backend.device !== undefined ? { device: served.engine.backend.device } : {}),
    kvCells: served.engine.stats().kvTotalTokens,
    ...(apiKey !== undefined ? { apiKey } : {}),
    shutdownTimeoutMs: shutdownTimeoutSeconds * 1000,
  };
}

/** Seconds with one decimal: "20 s", "1.3 s". */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

/** "1 request", "2 requests". */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** The one log line of a shutdown phase (clause 2). */
export function shutdownLine(p: ShutdownPhase, signal: string): string {
  switch (p.phase) {
    case "draining":
      return (
        `memento serve: ${signal}: new requests get 503; draining ${count(p.requests, "request")} in flight ` +
        `(${count(p.streams, "stream")}) for up to ${seconds(p.timeoutMs)}`
      );
    case "drained": {
      const cut =
        `${count(p.cutRequests, "request")} cut (${count(p.cutStreams, "stream")} ended with an error event ` +
        `and [DONE], ${p.cutRequests - p.cutStreams} answered 503)`;
      if (p.end === "drained")
        return `memento serve: drained: ${count(p.ended, "request")} ended in ${seconds(p.elapsedMs)}`;
      const why = p.end === "deadline" ? "shutdown deadline reached" : "second signal";
      return `memento serve: ${why} after ${seconds(p.elapsedMs)}: ${count(p.ended, "request")} ended, ${cut}`;
    }
    case "closed":
      return `memento serve: closed after ${seconds(p.elapsedMs)}; exiting`;
  }
}

/** The warning of clause 1, or undefined when the server is not exposed. */
export function exposureWarning(host: string, port: number, apiKey: string | undefined): string | undefined {
  if (!exposedWithoutKey(host, apiKey)) return undefined;
  return (
    `memento serve: warning: listening on ${host}, which other machines can reach, without an API key: anyone ` +
    `who reaches port ${port} can use this server (set --api-key or MEMENTO_API_KEY)`
  );
}

/** Resolves with the first SIGINT/SIGTERM's name; each later one aborts the returned signal `again`. */
function shutdownSignals(): { first: Promise<string>; again: AbortSignal; stop: () => void } {
  const again = new AbortController();
  let received: string | undefined;
  let resolveFirst: (name: string) => void = () => undefined;
  const first = new Promise<string>((resolve) => (resolveFirst = resolve));
  const on = (name: NodeJS.Signals) => {
    if (received === undefined) {
      received = name;
      resolveFirst(name);
    } else again.abort();
  };
  process.on("SIGINT", on);
  process.on("SIGTERM", on);
  return {
    first,
    again: again.signal,
    stop: () => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
    },
  };
}

/**
 * Runs until the first signal of `signals`, then shuts down gracefully, printing one stderr line per phase.
 * The handlers must be in place before the banner is out: a client that signals on seeing it would otherwise
 * race their installation and meet the default action (killed, no drain).
 */
async function serveUntilSignalled(
  server: Awaited<ReturnType<typeof runServe>>,
  signals: ReturnType<typeof shutdownSignals>,
): Promise<void> {
  try {
    const signal = await signals.first;
    await server.shutdown({
      timeoutMs: server.shutdownTimeoutMs,
      cut: signals.again,
      onPhase: (p) => process.stderr.write(`${shutdownLine(p, signal)}\n`),
    });
  } finally {
    signals.stop();
  }
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
    .option(
      "--max-waiting <n>",
      `most requests queued beyond the running ones: a burst gets --max-running + --max-waiting accepted, the ` +
        `rest 429 (default ${DEFAULT_MAX_WAITING})`,
    )
    .option(
      "--max-step-tokens <n>",
      "tokens one engine step computes at most: one per decoding request, then chunks of prompts still being " +
        `prefilled, so a long prompt never stalls the streams (default ${DEFAULT_MAX_STEP_TOKENS})`,
    );
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
      "--gpu <mode>",
      `llamacpp: ${GPU_MODES.join(", ")} (auto, the default: node-llama-cpp's CUDA or Vulkan build when a GPU ` +
        "loads here, every layer offloaded; off: the CPU)",
    )
    .option(
      "--shared-pool <mode>",
      `llamacpp: the shared-KV-pool addon: ${SHARED_POOL_MODES.join(", ")} (auto: when it loads, else ` +
        "per-sequence KV with a warning; on: fail without it; off: node-llama-cpp's per-sequence KV)",
    )
    .option("--served-model-name <name>", "model id in the API (default: the model directory's name)")
    .option("--api-key <key>", "require Authorization: Bearer KEY on /v1/* (default: $MEMENTO_API_KEY, none if unset)")
    .option("--log", "log every request (fastify's logger, JSON lines on stdout)")
    .option(
      "--shutdown-timeout <seconds>",
      "on SIGINT/SIGTERM, how long requests in flight may run on before they are cut (an error event and " +
        `[DONE] in a stream, else a 503); new ones get 503 meanwhile; a second signal cuts at once (default ` +
        `${DEFAULT_SHUTDOWN_TIMEOUT_SECONDS})`,
    )
    .action(async (o: ServeCliOptions) => {
      const server = await runServe(o);
      const signals = shutdownSignals();
      process.stdout.write(
        `memento serve: model ${server.model} at ${server.listenURL}/v1 on ${server.backend}` +
          `${server.device !== undefined ? ` (${server.device})` : ""}, ` +
          `${server.kvCells.toLocaleString("en-US")} KV cells  (Ctrl-C to stop)\n`,
      );
      const warning = exposureWarning(server.host, server.port, server.apiKey);
      if (warning !== undefined) process.stderr.write(`${warning}\n`);
      await serveUntilSignalled(server, signals);
    });
}
