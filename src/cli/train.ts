/**
 * `memento train toy`: parses the options and runs `trainToy` (src/train/toy.ts), printing the held-out verdict.
 * Rerunning resumes from the last checkpoint; a rerun with options that change the weights is refused in one line
 * (`--force-new` moves the old directory aside and starts over).
 */
import type { Command } from "commander";
import { ensureOutputDir } from "../io/files.js";
import { trainToy } from "../train/toy.js";
import { integerOption, numberOption, pathOption } from "./options.js";
import { trainCommand } from "./toy.js";
import { onInterrupt } from "./interrupt.js";

/** The options of `memento train toy`, converted while parsing. */
interface TrainToyCliOptions {
  out: string;
  seed: number;
  trainExamples: number;
  testExamples: number;
  trainMinBlocks: number;
  shortSteps: number;
  stage1Steps: number;
  stage2Steps: number;
  onceWeight: number;
  stage2Causal: number;
  answerSteps: number;
  answerWeight: number;
  answerLr: number;
  answerAllSteps: number;
  answerAllLr: number;
  batch: number;
  lr: number;
  workers: number;
  checkpointEvery: number;
  stopAfterSteps?: number;
  forceNew?: boolean;
}

const STEPS = { min: 0 };
const POSITIVE = { above: 0 };

export function register(program: Command): void {
  trainCommand(program)
    .command("toy")
    .description(
      "train the bundled toy Memento model (two-stage SFT: causal, then memento attention) and evaluate it held-out",
    )
    .addOption(
      pathOption(
        "-o, --out <dir>",
        "output directory (checkpoints, loss.csv/svg, model/, report.json); rerun resumes",
      ).default("runs/toy"),
    )
    .addOption(integerOption("--seed <n>", "seed for data, initialisation and batches", { min: 0 }).default(1))
    .addOption(
      integerOption("--train-examples <n>", "distinct training problems (1-9 rounds)", { min: 1 }).default(6000),
    )
    .addOption(integerOption("--test-examples <n>", "held-out problems (4-9 rounds)", { min: 1 }).default(200))
    .addOption(
      integerOption(
        "--train-min-blocks <n>",
        "fewest rounds of a training problem (short ones teach the step rule fast)",
        { min: 1 },
      ).default(1),
    )
    .addOption(
      integerOption(
        "--short-steps <n>",
        "causal warm-up steps on the short training problems (1-2 rounds) before stage 1",
        STEPS,
      ).default(800),
    )
    .addOption(integerOption("--stage1-steps <n>", "optimizer steps with full causal attention", STEPS).default(400))
    .addOption(integerOption("--stage2-steps <n>", "optimizer steps with memento attention", STEPS).default(500))
    .addOption(
      numberOption(
        "--once-weight <x>",
        "stage-2 loss weight of the tokens that occur once per problem (prompt reads, the answer)",
        POSITIVE,
      ).default(10),
    )
    .addOption(
      numberOption(
        "--stage2-causal <fraction>",
        "share of stage-2 examples kept causal, so the model also runs with full attention",
        { min: 0, below: 1 },
      ).default(0.25),
    )
    .addOption(
      integerOption(
        "--answer-steps <n>",
        "steps of a memento-attention stage that up-weights only the answer's digits",
        STEPS,
      ).default(300),
    )
    .addOption(
      numberOption("--answer-weight <x>", "loss weight of the answer's digits in the answer stages", POSITIVE).default(
        30,
      ),
    )
    .addOption(numberOption("--answer-lr <x>", "peak learning rate of that stage", POSITIVE).default(1e-3))
    .addOption(
      integerOption(
        "--answer-all-steps <n>",
        "steps of a final stage that up-weights the answer's digits in every example, causal ones too",
        STEPS,
      ).default(150),
    )
    .addOption(numberOption("--answer-all-lr <x>", "peak learning rate of that stage", POSITIVE).default(3e-4))
    .addOption(integerOption("--batch <n>", "sequences per step", { min: 1 }).default(8))
    .addOption(numberOption("--lr <x>", "peak learning rate", POSITIVE).default(3e-3))
    .addOption(integerOption("--workers <n>", "gradient worker threads", { min: 1 }).default(2))
    .addOption(integerOption("--checkpoint-every <n>", "steps between checkpoints", { min: 1 }).default(25))
    .addOption(
      integerOption(
        "--stop-after-steps <n>",
        "stop after n optimizer steps in this run, at a checkpoint: OUT/checkpoint is then a model directory " +
          "(a snapshot mid-recipe, as models/toy-rl-start is); rerun without it to go on",
        { min: 1 },
      ),
    )
    .option(
      "--force-new",
      "the output directory holds a run with other options: move it aside to DIR.prev-<time> and start over " +
        "(without it such a resume is refused, naming the options that differ; --workers, --checkpoint-every " +
        "and --test-examples may change)",
    )
    .action(async (o: TrainToyCliOptions) => {
      ensureOutputDir(o.out, "--out");
      const interrupt = onInterrupt();
      let outcome: Awaited<ReturnType<typeof trainToy>>;
      try {
        outcome = await trainToy({
          signal: interrupt.signal,
          outDir: o.out,
          seed: o.seed,
          trainExamples: o.trainExamples,
          testExamples: o.testExamples,
          trainMinBlocks: o.trainMinBlocks,
          shortSteps: o.shortSteps,
          stage1Steps: o.stage1Steps,
          stage2Steps: o.stage2Steps,
          onceWeight: o.onceWeight,
          stage2CausalFraction: o.stage2Causal,
          answerSteps: o.answerSteps,
          answerWeight: o.answerWeight,
          answerLr: o.answerLr,
          answerAllSteps: o.answerAllSteps,
          answerAllLr: o.answerAllLr,
          batchSize: o.batch,
          lr: o.lr,
          workers: o.workers,
          checkpointEvery: o.checkpointEvery,
          ...(o.stopAfterSteps !== undefined ? { stopAfterSteps: o.stopAfterSteps } : {}),
          forceNew: o.forceNew,
          onLog: (line) => process.stderr.write(line + "\n"),
        });
      } finally {
        interrupt.release();
      }
      if (outcome.interrupted && !interrupt.signal.aborted) {
        process.stderr.write(
          `stopped after ${outcome.result.steps} steps as asked (--stop-after-steps); ${o.out}/checkpoint holds the ` +
            "model (config.json, model.safetensors, tokenizer: a model directory); run without the flag to go on\n",
        );
        return;
      }
      if (outcome.interrupted) {
        process.stderr.write(
          `interrupted after ${outcome.result.steps} steps this run; the checkpoint in ${o.out}/checkpoint is ` +
            "saved: run the same command to resume\n",
        );
        process.exitCode = 130;
        return;
      }
      const { report, modelDir } = outcome;
      const h = report.heldOut;
      process.stdout.write(
        [
          `model saved to ${modelDir} (${report.parameters.toLocaleString("en-US")} parameters, ${(report.train.seconds / 60).toFixed(1)} min)`,
          `held-out (${h.problems} problems): accuracy with block masking ${(100 * h.masked.accuracy).toFixed(1)}%, full attention ${(100 * h.fullAttention.accuracy).toFixed(1)}% (delta ${h.accuracyDeltaPoints.toFixed(1)} points)`,
          `peak KV: ${h.masked.meanPeakKvTokens.toFixed(1)} tokens masked vs ${h.fullAttention.meanPeakKvTokens.toFixed(1)} full (${h.peakKvReduction.toFixed(2)}x lower)`,
          "",
        ].join("\n"),
      );
    });
}
