import type { Command } from "commander";
import { benchTracker } from "../bench/tracker.js";
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
}
