import type { Command } from "commander";
import { resolve } from "node:path";
import { benchEngine, formatEngineBench } from "../bench/engine.js";
import { parseJson, readStdin, writeJson } from "./io.js";
import { parseKvSimulateInput } from "../kv/simulate.js";
import { engineReplay } from "../bench/replay.js";

/** `memento engine replay` and `memento bench engine` (added to the existing `bench` group, or creating it). */
export function register(program: Command): void {
  const engine = program.command("engine").description("the Memento inference engine (continuous batching with physical block eviction)");
  engine
    .command("replay")
    .description(
      "teacher-forced replay: read the same JSON as `kv simulate` on stdin {tokens, promptLength, specialTokens, masking}, " +
        "run it through the engine on a small random model and print the measured KV next to the simulation (match: true when equal)",
    )
    .option("--pretty", "indent the JSON output")
    .action(async (opts: { pretty?: boolean }) => {
      const input = parseKvSimulateInput(parseJson(await readStdin(), "stdin"));
      const report = await engineReplay(input.tokens, input.promptLength, input.specialTokens, input.maskingConfig);
      writeJson(report, opts.pretty);
      if (!report.match) process.exitCode = 1;
    });

  const bench = program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks");
  bench
    .command("engine")
    .description(
      "inference engine throughput: N concurrent teacher-forced replays of Memento traces on a small random model, " +
        "block eviction (keepLastNBlocks 0) vs none (-1) under the same KV budget",
    )
    .option("--requests <n>", "concurrent requests (traces are cycled)", "8")
    .option("--kv-budget <tokens>", "shared KV budget in token cells (default: 1.1x the largest request's peak without eviction)")
    .option("--reference-dir <dir>", "directory with memento_output_*.json (synthetic traces when absent)", "../shared/reference")
    .option("--synthetic", "use synthetic Memento-shaped traces")
    .option("--rounds <n>", "memento/vanilla pairs, interleaved (best of each reported)", "1")
    .option("--hidden <n>", "hidden size of the random model", "64")
    .option("--layers <n>", "layers of the random model", "2")
    .option("--json", "print one JSON object")
    .action(
      async (opts: { requests: string; kvBudget?: string; referenceDir: string; synthetic?: boolean; rounds: string; hidden: string; layers: string; json?: boolean }) => {
        const positive = (v: string, name: string) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
          return n;
        };
        const hidden = positive(opts.hidden, "hidden");
        const r = await benchEngine({
          requests: positive(opts.requests, "requests"),
          kvBudgetTokens: opts.kvBudget === undefined ? undefined : positive(opts.kvBudget, "kv-budget"),
          referenceDir: resolve(opts.referenceDir),
          synthetic: opts.synthetic,
          rounds: positive(opts.rounds, "rounds"),
          model: { hidden_size: hidden, intermediate_size: 2 * hidden, num_hidden_layers: positive(opts.layers, "layers") },
          onProgress: opts.json ? undefined : (line) => process.stderr.write(line + "\n"),
        });
        if (opts.json) return writeJson(r, true);
        process.stdout.write(formatEngineBench(r));
      },
    );
}
