import type { Command } from "commander";
import { resolve } from "node:path";
import { benchEngine, formatEngineBench } from "../bench/engine.js";
import { benchEngineLlamaCpp, formatEngineBenchLlamaCpp, LLAMACPP_BENCH_DEFAULTS } from "../bench/engine-llamacpp.js";
import { llamaPoolUnavailableReason } from "../engine/backends/llama-pool.js";
import { UserError } from "../errors.js";
import { parseJson, readStdin, writeJson } from "./io.js";
import { choiceOption, integerOption, numberOption, pathOption } from "./options.js";
import { parseKvSimulateInput } from "../kv/simulate.js";
import { engineReplay } from "../bench/replay.js";

const BENCH_BACKENDS = ["llamacpp", "reference"] as const;
const GPU_CHOICES = ["auto", "off"] as const;
type GpuChoice = (typeof GPU_CHOICES)[number];
type BenchBackend = (typeof BENCH_BACKENDS)[number];

interface BenchEngineCliOptions {
  backend?: BenchBackend;
  requests?: number;
  kvBudget?: number;
  concurrency?: number;
  scale?: number;
  full?: boolean;
  threads?: number;
  admissionReserve?: number;
  maxStepTokens?: number;
  gpu?: GpuChoice;
  cacheDir?: string;
  referenceDir: string;
  synthetic?: boolean;
  rounds?: number;
  hidden?: number;
  layers?: number;
  json?: boolean;
}

/**
 * The backend to bench: the one asked for, else llama.cpp when the shared-pool addon loads, else the reference
 * backend, said in one line on stderr. Not node-llama-cpp's per-sequence backend: its KV is fixed slices, not
 * one pool, so "the same KV cells for both modes" would measure how the slices are sized, not the engine.
 */
function pickBackend(asked: BenchBackend | undefined): { backend: BenchBackend; fallback?: string } {
  if (asked === "reference") return { backend: "reference" };
  const reason = llamaPoolUnavailableReason();
  if (reason === undefined) return { backend: "llamacpp" };
  if (asked === "llamacpp") throw new UserError(`--backend llamacpp: ${reason}`);
  process.stderr.write(
    `memento bench engine: ${reason}; falling back to the reference backend (tiny random model in TypeScript, ` +
      "toy numbers: build the addon with `npm run build:native` for the llama.cpp bench)\n",
  );
  return { backend: "reference", fallback: reason };
}

async function benchReference(opts: BenchEngineCliOptions, fallback: string | undefined): Promise<void> {
  for (const flag of [
    "concurrency",
    "scale",
    "full",
    "threads",
    "cacheDir",
    "gpu",
    "maxStepTokens",
    "admissionReserve",
  ] as const)
    if (opts[flag] !== undefined) throw new UserError(`--${kebab(flag)} applies to the llama.cpp backend only`);
  const hidden = opts.hidden ?? 64;
  const r = await benchEngine({
    requests: opts.requests ?? 8,
    kvBudgetTokens: opts.kvBudget,
    referenceDir: resolve(opts.referenceDir),
    synthetic: opts.synthetic,
    rounds: opts.rounds ?? 1,
    model: { hidden_size: hidden, intermediate_size: 2 * hidden, num_hidden_layers: opts.layers ?? 2 },
    onProgress: opts.json ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  if (opts.json) return writeJson({ backend: "reference", ...(fallback ? { fallback } : {}), ...r }, true);
  process.stdout.write(formatEngineBench(r));
}

async function benchLlamaCpp(opts: BenchEngineCliOptions): Promise<void> {
  if (opts.hidden !== undefined || opts.layers !== undefined)
    throw new UserError(
      "--hidden and --layers size the reference backend's toy model; the llama.cpp bench uses its ~100M model",
    );
  if (opts.full && opts.scale !== undefined) throw new UserError("--full and --scale exclude each other");
  const r = await benchEngineLlamaCpp({
    requests: opts.requests,
    kvCells: opts.kvBudget,
    concurrency: opts.concurrency,
    scale: opts.full ? 1 : opts.scale,
    rounds: opts.rounds,
    threads: opts.threads,
    admissionReserve: opts.admissionReserve,
    maxStepTokens: opts.maxStepTokens,
    gpu: opts.gpu === "off" ? false : "auto",
    cacheDir: opts.cacheDir === undefined ? undefined : resolve(opts.cacheDir),
    referenceDir: resolve(opts.referenceDir),
    synthetic: opts.synthetic,
    onProgress: (line) => process.stderr.write(`${line}\n`), // stderr: stdout stays one JSON object
  });
  if (opts.json) return writeJson(r, true);
  process.stdout.write(formatEngineBenchLlamaCpp(r));
}

const D = LLAMACPP_BENCH_DEFAULTS;

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** `memento engine replay` and `memento bench engine` (added to the existing `bench` group, or creating it). */
export function register(program: Command): void {
  const engine = program
    .command("engine")
    .description("the Memento inference engine (continuous batching with physical block eviction)");
  engine
    .command("replay")
    .description(
      "teacher-forced replay: read the same JSON as `kv simulate` on stdin " +
        "{tokens, promptLength, specialTokens, masking}, run it through the engine on a small random model " +
        "and print the measured KV next to the simulation (match: true when equal)",
    )
    .option("--pretty", "indent the JSON output")
    .action(async (opts: { pretty?: boolean }) => {
      const input = parseKvSimulateInput(parseJson(await readStdin(), "stdin"));
      const report = await engineReplay(input.tokens, input.promptLength, input.specialTokens, input.maskingConfig);
      writeJson(report, opts.pretty);
      if (!report.match) process.exitCode = 1;
    });

  const bench =
    program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks");
  bench
    .command("engine")
    .description(
      "inference engine throughput: a stream of teacher-forced Memento replays, block eviction (keepLastNBlocks 0) " +
        "vs none (-1) on the same KV cells, interleaved rounds; on llama.cpp's shared KV pool with a generated " +
        "~100M-parameter Qwen3 (default when the addon loads), or the reference backend's tiny random model",
    )
    .addOption(
      choiceOption(
        "--backend <name>",
        "llamacpp (default when the shared-pool addon loads) or reference",
        BENCH_BACKENDS,
      ),
    )
    .addOption(
      integerOption(
        "--requests <n>",
        "requests submitted at once, traces cycled " +
          `(default: llamacpp ${D.requestsPerSlot} x --concurrency, reference 8)`,
        { min: 1 },
      ),
    )
    .addOption(
      integerOption(
        "--kv-budget <cells>",
        "KV cells shared by all requests, the same for both modes (default: llamacpp from --concurrency, " +
          "reference 1.1x the largest request's peak without eviction)",
        { min: 1 },
      ),
    )
    .addOption(
      integerOption(
        "--concurrency <n>",
        `llamacpp: requests the pool holds at once with masking on, at their mean KV (default ${D.concurrency})`,
        { min: 1 },
      ),
    )
    .addOption(
      numberOption(
        "--scale <x>",
        `llamacpp: length factor of the traces' prompts, blocks and mementos (default ${D.scale})`,
        { above: 0, max: 1 },
      ),
    )
    .option("--full", "llamacpp: replay the traces whole (--scale 1)")
    .addOption(
      integerOption("--threads <n>", "llamacpp: llama.cpp threads (default: every core but one, as the server)", {
        min: 1,
      }),
    )
    .addOption(
      integerOption(
        "--admission-reserve <n>",
        "llamacpp: cells an admission leaves free beyond its need (the engine's default: 16)",
        { min: 1 },
      ),
    )
    .addOption(
      integerOption(
        "--max-step-tokens <n>",
        "tokens one engine step computes at most: decode rows, then prompt chunks (the engine's default: 512)",
        { min: 1 },
      ),
    )
    .addOption(
      choiceOption(
        "--gpu <mode>",
        "llamacpp: auto = node-llama-cpp's CUDA/Vulkan build when a GPU loads (default), off = the CPU",
        GPU_CHOICES,
      ),
    )
    .addOption(
      pathOption("--cache-dir <dir>", "llamacpp: where the generated model is cached (default: the OS temp dir)"),
    )
    .addOption(
      pathOption(
        "--reference-dir <dir>",
        "directory with memento_output_*.json (synthetic traces of the same shape when absent)",
      ).default("../shared/reference"),
    )
    .option("--synthetic", "use synthetic Memento-shaped traces")
    .addOption(
      integerOption(
        "--rounds <n>",
        `interleaved memento/vanilla rounds (default: llamacpp ${D.rounds}, median and min reported; ` +
          "reference 1, best of each)",
        { min: 1 },
      ),
    )
    .addOption(integerOption("--hidden <n>", "reference: hidden size of the random model (default 64)", { min: 1 }))
    .addOption(integerOption("--layers <n>", "reference: layers of the random model (default 2)", { min: 1 }))
    .option("--json", "print one JSON object")
    .action(async (opts: BenchEngineCliOptions) => {
      const { backend, fallback } = pickBackend(opts.backend);
      if (backend === "reference") return benchReference(opts, fallback);
      return benchLlamaCpp(opts);
    });
}
