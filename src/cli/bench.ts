import type { Command } from "commander";
import { benchTracker } from "../bench/tracker.js";
import { benchData } from "../bench/data.js";
import { writeJson } from "./io.js";

export function register(program: Command): void {
  const bench = program.command("bench").description("benchmarks (each reports ratios against a baseline measured in the same run)");
  bench
    .command("tracker")
    .description("block tracker cost per token, and kv simulate time on a 32K-token trace")
    .option("--tokens <n>", "stream length for the per-token measurement", "1000000")
    .option("--repeats <n>", "repeats (best is reported)", "7")
    .option("--json", "print JSON")
    .action((opts: { tokens: string; repeats: string; json?: boolean }) => {
      const r = benchTracker(Number(opts.tokens), Number(opts.repeats));
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
    .command("data")
    .description("data pipeline: sentence split and segmentation per trace (vs naive split and the approximate DP), offline build traces/s")
    .option("--traces <n>", "traces to measure", "8")
    .option("--repeats <n>", "repeats (best is reported)", "5")
    .option("--reference <file>", "include this raw trace (default: ../shared/reference/raw_trace_example.jsonl when present)", "../shared/reference/raw_trace_example.jsonl")
    .option("--json", "print JSON")
    .action(async (opts: { traces: string; repeats: string; reference: string; json?: boolean }) => {
      const r = await benchData(Number(opts.traces), Number(opts.repeats), opts.reference);
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
