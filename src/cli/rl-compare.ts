/**
 * `memento rl compare`: evaluates the RL stage's start checkpoint and the RL model on the same held-out toy
 * problems with the same sampling and seeds (src/rl/compare.ts) and prints one JSON object (`--json`) or a table.
 */
import type { Command } from "commander";
import { BUNDLED_RL_MODEL_DIR, BUNDLED_RL_START_DIR, DEFAULT_RL_MODEL_DIR } from "../rl/bundled.js";
import { compareRl, DEFAULT_COMPARE } from "../rl/compare.js";
import { DEFAULT_RL_OPTIONS } from "../rl/train-rl.js";
import { integerOption, numberOption, pathOption } from "./options.js";
import { addMaskingOptions } from "./masking-options.js";
import { rlMasking } from "./train-rl.js";

interface RlCompareCliOptions {
  start: string;
  rl: string;
  problems: number;
  samples: number;
  temperature: number;
  seed: number;
  workers: number;
  json?: boolean;
}

export function registerCompare(rl: Command): void {
  const cmd = rl
    .command("compare")
    .description(
      "the start checkpoint and the RL model on the same held-out problems, same sampling and seeds; masking as " +
        `train rl's (Stage 2, blocks capped at ${DEFAULT_RL_OPTIONS.masking.maxBlockTokens} tokens unless --max-block-tokens says otherwise)`,
    )
    .addOption(pathOption("--start <dir>", "the SFT checkpoint RL started from").default(BUNDLED_RL_START_DIR))
    .addOption(
      pathOption(
        "--rl <dir>",
        `the RL model (the bundled one by default; train rl writes yours to OUT/model, e.g. ${DEFAULT_RL_MODEL_DIR})`,
      ).default(BUNDLED_RL_MODEL_DIR),
    )
    .addOption(integerOption("--problems <n>", "held-out problems", { min: 1 }).default(DEFAULT_COMPARE.problems))
    .addOption(
      integerOption("--samples <n>", "samples per problem (8: maj@8)", { min: 1 }).default(DEFAULT_COMPARE.samples),
    )
    .addOption(
      numberOption("--temperature <x>", "sampling temperature (the paper evaluates at 0.6)", { above: 0 }).default(
        DEFAULT_COMPARE.temperature,
      ),
    )
    .addOption(integerOption("--seed <n>", "seed of the samplers", { min: 0 }).default(DEFAULT_COMPARE.seed))
    .addOption(integerOption("--workers <n>", "worker threads", { min: 1 }).default(DEFAULT_RL_OPTIONS.workers))
    .option("--json", "print one JSON object");
  addMaskingOptions(cmd, DEFAULT_RL_OPTIONS.masking).action(async (o: RlCompareCliOptions) => {
    const r = await compareRl({
      startDir: o.start,
      rlDir: o.rl,
      problems: o.problems,
      samples: o.samples,
      temperature: o.temperature,
      seed: o.seed,
      masking: rlMasking(o),
      workers: o.workers,
      onProgress: (line) => process.stderr.write(`${line}\n`),
    });
    if (o.json) {
      process.stdout.write(JSON.stringify(r, null, 2) + "\n");
      return;
    }
    const pct = (x: number | null) => (x === null ? "-" : `${(100 * x).toFixed(1)}%`);
    const row = (name: string, s: typeof r.start) =>
      `${name.padEnd(6)} pass@1 ${pct(s.passAt1)} [${pct(s.ci95[0])}, ${pct(s.ci95[1])}]  maj@8 ${pct(s.majAt8)}  pass@8 ${pct(s.passAt8)}  ` +
      `peak KV ${s.peakKvTokens.toFixed(0)}  ${s.blocksPerResponse.toFixed(2)} blocks of ${s.meanBlockTokens.toFixed(1)} tokens`;
    process.stdout.write(
      [
        `${r.problems} held-out problem${r.problems === 1 ? "" : "s"} x ${r.samples} samples at T=${r.temperature}, block masking on`,
        `start: ${o.start}`,
        `rl:    ${o.rl}`,
        row("start", r.start),
        row("rl", r.rl),
        `full attention would hold ${r.fullAttentionPeakKvTokens.toFixed(0)} tokens at peak for the RL model's responses`,
        "",
      ].join("\n"),
    );
  });
}
