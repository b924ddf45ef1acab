import type { Command } from "commander";
import { benchTracker } from "../bench/tracker.js";
import { benchData } from "../bench/data.js";
import { benchSampler, formatSamplerBench, QWEN3_VOCAB_SIZE } from "../bench/sampler.js";
import { writeJson } from "./io.js";
import { integerOption, pathOption } from "./options.js";

export function register(program: Command): void {
  const bench = program
    .command("bench")
    .description("benchmarks (each reports ratios against a baseline measured in the same run)");
  bench
    .command("tracker")
    .description("block tracker cost per token, and kv simulate time on a 32K-token trace")
    .addOption(
      integerOption("--tokens <n>", "stream length for the per-token measurement", { min: 1 }).default(1_000_000),
    )
    .addOption(integerOption("--repeats <n>", "repeats (best is reported)", { min: 1 }).default(7))
    .option("--json", "print JSON")
    .action((opts: { tokens: number; repeats: number; json?: boolean }) => {
      const r = benchTracker(opts.tokens, opts.repeats);
      if (opts.json) return writeJson(r, true);
      process.stdout.write(
        [
          `block tracker: ${r.trackerNsPerToken.toFixed(1)} ns/token over ${r.tokens.toLocaleString()} tokens (best of ${r.repeats})`,
          `baseline loop (read + compare with 4 ids): ${r.baselineNsPerToken.toFixed(1)} ns/token; tracker/baseline = ${r.trackerOverBaseline.toFixed(2)}x`,
          `kv simulate on ${r.simulateTokens.toLocaleString()} tokens: ${r.simulateMs.toFixed(2)} ms`,
          "",
        ].join("\n"),
      );
    });
  bench
    .command("sampler")
    .description("the engine's sampler per token at Qwen3's vocabulary, against a full-sort sampler in the same run")
    .addOption(integerOption("--vocab <n>", "vocabulary size", { min: 2 }).default(QWEN3_VOCAB_SIZE))
    .addOption(integerOption("--tokens <n>", "logit vectors per repeat", { min: 1 }).default(20))
    .addOption(integerOption("--repeats <n>", "repeats (min and median are reported)", { min: 1 }).default(5))
    .option("--json", "print JSON")
    .action((opts: { vocab: number; tokens: number; repeats: number; json?: boolean }) => {
      const r = benchSampler({ vocab: opts.vocab, tokens: opts.tokens, repeats: opts.repeats });
      if (opts.json) writeJson(r, true);
      else process.stdout.write(formatSamplerBench(r));
    });
  bench
    .command("data")
    .description(
      "data pipeline: sentence split and segmentation per trace (vs naive split and the approximate DP), offline build traces/s",
    )
    .addOption(integerOption("--traces <n>", "traces to measure", { min: 1 }).default(8))
    .addOption(integerOption("--repeats <n>", "repeats (best is reported)", { min: 1 }).default(5))
    .addOption(
      pathOption("--reference <file>", "include this raw trace (used when present)").default(
        "../shared/reference/raw_trace_example.jsonl",
      ),
    )
    .option("--json", "print JSON")
    .action(async (opts: { traces: number; repeats: number; reference: string; json?: boolean }) => {
      const r = await benchData(opts.traces, opts.repeats, opts.reference);
      if (opts.json) return writeJson(r, true);
      process.stdout.write(
        [
          `data bench on ${r.source} (mean ${r.meanChars.toFixed(0)} chars, ${r.meanSentences.toFixed(0)} sentences per trace)`,
          `sentence split: ${r.splitMs.toFixed(2)} ms/trace (naive split ${r.naiveSplitMs.toFixed(2)} ms; ratio ${(r.splitMs / r.naiveSplitMs).toFixed(1)}x)`,
          `segmentation (exact): ${r.segmentMs.toFixed(2)} ms/trace (approximate DP ${r.approxSegmentMs.toFixed(2)} ms; ratio ${(r.segmentMs / r.approxSegmentMs).toFixed(2)}x; mean objective gain ${r.meanObjectiveGain.toExponential(2)})`,
          `full offline build: ${r.buildTracesPerSecond.toFixed(1)} traces/s (one worker)`,
          "",
        ].join("\n"),
      );
    });
}
