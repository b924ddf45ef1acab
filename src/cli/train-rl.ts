/**
 * `memento train rl`: parses the options and runs `trainRl` (src/rl/train-rl.ts) from an SFT checkpoint (by
 * default the bundled `models/toy-rl-start`, a snapshot inside the toy recipe's answer stage), writing
 * checkpoints, metrics.jsonl, report.json, report.html and model/. Rerunning resumes; a rerun with options that
 * change the weights is refused in one line.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { ensureOutputDir } from "../io/files.js";
import { renderRlReportHtml } from "../rl/report-html.js";
import { DEFAULT_RL_OPTIONS, trainRl } from "../rl/train-rl.js";
import { BUNDLED_RL_START_DIR, DEFAULT_RL_OUT_DIR } from "../rl/bundled.js";
import type { AdvantageScale } from "../rl/advantages.js";
import type { MaskingConfig } from "../masking/config.js";
import { addMaskingOptions, maskingFromOptions } from "./masking-options.js";
import { choiceOption, integerOption, numberOption, pathOption } from "./options.js";
import { trainCommand } from "./toy.js";
import { onInterrupt } from "./interrupt.js";

interface TrainRlCliOptions {
  start: string;
  out: string;
  seed: number;
  steps: number;
  prompts: number;
  group: number;
  minibatches: number;
  lr: number;
  warmup: number;
  clip: number;
  epsLow: number;
  epsHigh: number;
  beta: number;
  advantage: AdvantageScale;
  temperature: number;
  trainProblems: number;
  valEvery: number;
  valProblems: number;
  valSamples: number;
  valTemperature: number;
  workers: number;
  forceNew?: boolean;
}

const D = DEFAULT_RL_OPTIONS;
const POSITIVE = { above: 0 };

/**
 * Rollout and training masking: Stage 2's, the RL block cap (DEFAULT_RL_OPTIONS, 96 tokens) unless
 * `--max-block-tokens` says otherwise (0: no cap), and any other masking flag given.
 */
export function rlMasking(o: object): Partial<MaskingConfig> {
  return { ...D.masking, ...maskingFromOptions(o) };
}

export function register(program: Command): void {
  const cmd = trainCommand(program)
    .command("rl")
    .description(
      "RL with block-masked rollouts (CISPO, group-relative advantages, KL to the start) from an SFT checkpoint; " +
        `masking is Stage 2's with blocks capped at ${D.masking.maxBlockTokens} tokens unless --max-block-tokens says ` +
        "otherwise (0: no cap)",
    )
    .addOption(
      pathOption("--start <dir>", "SFT checkpoint to start from (also the KL reference)").default(BUNDLED_RL_START_DIR),
    )
    .addOption(
      pathOption(
        "-o, --out <dir>",
        "output directory (checkpoint, metrics.jsonl, report, model/); rerun resumes",
      ).default(DEFAULT_RL_OUT_DIR),
    )
    .addOption(integerOption("--seed <n>", "seed for prompts and rollouts", { min: 0 }).default(D.seed))
    .addOption(integerOption("--steps <n>", "RL steps (rollout batches)", { min: 1 }).default(D.steps))
    .addOption(integerOption("--prompts <n>", "prompts per step", { min: 1 }).default(D.prompts))
    .addOption(integerOption("--group <n>", "samples per prompt (the paper: 8)", { min: 2 }).default(D.group))
    .addOption(
      integerOption("--minibatches <n>", "optimizer updates per step (whole groups each)", { min: 1 }).default(
        D.minibatches,
      ),
    )
    .addOption(numberOption("--lr <x>", "learning rate (constant after warmup)", POSITIVE).default(D.lr))
    .addOption(
      integerOption("--warmup <n>", "linear warmup, in optimizer updates", { min: 0 }).default(D.warmupUpdates),
    )
    .addOption(numberOption("--clip <x>", "global gradient-norm clip", POSITIVE).default(D.clip))
    .addOption(
      numberOption("--eps-low <x>", "CISPO: ratio weight at least 1 - eps-low", { min: 0, below: 1 }).default(
        D.cispo.epsLow,
      ),
    )
    .addOption(
      numberOption("--eps-high <x>", "CISPO: ratio weight at most 1 + eps-high", { min: 0 }).default(D.cispo.epsHigh),
    )
    .addOption(
      numberOption("--beta <x>", "KL penalty to the start checkpoint (k3 estimator)", { min: 0 }).default(D.cispo.beta),
    )
    .addOption(
      choiceOption("--advantage <scale>", "group-relative advantage: divide by the group's std, or only centre", [
        "std",
        "none",
      ] as const).default(D.advantageScale),
    )
    .addOption(numberOption("--temperature <x>", "rollout temperature", POSITIVE).default(D.temperature))
    .addOption(
      integerOption("--train-problems <n>", "distinct training problems prompts are drawn from", { min: 1 }).default(
        D.trainProblems,
      ),
    )
    .addOption(
      integerOption("--val-every <n>", "validate every n steps (and at the end)", { min: 1 }).default(D.valEvery),
    )
    .addOption(
      integerOption("--val-problems <n>", "held-out problems per validation", { min: 1 }).default(D.valProblems),
    )
    .addOption(integerOption("--val-samples <n>", "samples per held-out problem", { min: 1 }).default(D.valSamples))
    .addOption(
      numberOption("--val-temperature <x>", "validation temperature (the paper: 0.6)", POSITIVE).default(
        D.valTemperature,
      ),
    )
    .addOption(
      integerOption("--workers <n>", "worker threads for rollouts and gradients", { min: 1 }).default(D.workers),
    )
    .option(
      "--force-new",
      "the output directory holds a run with other options: move it aside to DIR.prev-<time> and start over",
    );
  addMaskingOptions(cmd, D.masking).action(async (o: TrainRlCliOptions) => {
    const masking = rlMasking(o);
    ensureOutputDir(o.out, "--out");
    const interrupt = onInterrupt();
    let outcome: Awaited<ReturnType<typeof trainRl>>;
    try {
      outcome = await trainRl({
        startDir: o.start,
        outDir: o.out,
        seed: o.seed,
        steps: o.steps,
        prompts: o.prompts,
        group: o.group,
        minibatches: o.minibatches,
        lr: o.lr,
        warmupUpdates: o.warmup,
        clip: o.clip,
        cispo: { epsLow: o.epsLow, epsHigh: o.epsHigh, beta: o.beta },
        advantageScale: o.advantage,
        temperature: o.temperature,
        masking,
        trainProblems: o.trainProblems,
        valEvery: o.valEvery,
        valProblems: o.valProblems,
        valSamples: o.valSamples,
        valTemperature: o.valTemperature,
        workers: o.workers,
        forceNew: o.forceNew,
        signal: interrupt.signal,
        onLog: (line) => process.stderr.write(line + "\n"),
      });
    } finally {
      interrupt.release();
    }
    if (outcome.stopped) {
      process.stderr.write(
        `interrupted; the checkpoint in ${o.out}/checkpoint is saved: run the same command to resume\n`,
      );
      process.exitCode = 130;
      return;
    }
    const r = outcome.report;
    writeFileSync(join(o.out, "report.html"), renderRlReportHtml(r));
    const first = r.val[0];
    const last = r.val[r.val.length - 1];
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    process.stdout.write(
      [
        `RL model saved to ${join(o.out, "model")} (${(r.seconds / 60).toFixed(1)} min); report: ${join(o.out, "report.html")}`,
        `held-out pass@1 (T=${o.valTemperature}, ${last.problems} problems x ${last.samples}): ` +
          `${pct(first.passAt1)} at step 0 -> ${pct(last.passAt1)} at step ${last.step}`,
        `peak KV ${last.peakKvTokens.toFixed(0)} tokens vs ${last.fullAttentionPeakKvTokens.toFixed(0)} with full attention; ` +
          `${last.blocksPerResponse.toFixed(2)} blocks of ${last.meanBlockTokens.toFixed(1)} tokens`,
        "",
      ].join("\n"),
    );
  });
}
