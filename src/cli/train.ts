import type { Command } from "commander";
import { UserError } from "../errors.js";
import { trainToy } from "../train/toy.js";
import { trainCommand } from "./toy.js";

function int(flag: string, v: string, min = 0): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < min) throw new UserError(`${flag}: expected an integer >= ${min}, got "${v}"`);
  return n;
}

export function register(program: Command): void {
  trainCommand(program)
    .command("toy")
    .description("train the bundled toy Memento model (two-stage SFT: causal, then memento attention) and evaluate it held-out")
    .option("-o, --out <dir>", "output directory (checkpoints, loss.csv/svg, model/, report.json); rerun to resume", "runs/toy")
    .option("--seed <n>", "seed for data, initialisation and batches", "1")
    .option("--train-examples <n>", "distinct training problems (1-9 rounds)", "6000")
    .option("--test-examples <n>", "held-out problems (4-9 rounds)", "200")
    .option("--train-min-blocks <n>", "fewest rounds of a training problem (short ones teach the step rule fast)", "1")
    .option("--short-steps <n>", "causal warm-up steps on the short training problems (1-2 rounds) before stage 1", "800")
    .option("--stage1-steps <n>", "optimizer steps with full causal attention", "400")
    .option("--stage2-steps <n>", "optimizer steps with memento attention", "500")
    .option("--once-weight <x>", "stage-2 loss weight of the tokens that occur once per problem (prompt reads, the answer)", "10")
    .option("--stage2-causal <fraction>", "share of stage-2 examples kept causal, so the model also runs with full attention", "0.25")
    .option("--answer-steps <n>", "steps of a memento-attention stage that up-weights only the answer's digits", "300")
    .option("--answer-weight <x>", "loss weight of the answer's digits in the answer stages", "30")
    .option("--answer-lr <x>", "peak learning rate of that stage", "1e-3")
    .option("--answer-all-steps <n>", "steps of a final stage that up-weights the answer's digits in every example, causal ones too", "150")
    .option("--answer-all-lr <x>", "peak learning rate of that stage", "3e-4")
    .option("--batch <n>", "sequences per step", "8")
    .option("--lr <x>", "peak learning rate", "3e-3")
    .option("--workers <n>", "gradient worker threads", "2")
    .option("--checkpoint-every <n>", "steps between checkpoints", "25")
    .action(async (o: Record<string, string>) => {
      const lr = Number(o.lr);
      if (!(lr > 0)) throw new UserError(`--lr: expected a positive number, got "${o.lr}"`);
      const onceWeight = Number(o.onceWeight);
      if (!(onceWeight > 0)) throw new UserError(`--once-weight: expected a positive number, got "${o.onceWeight}"`);
      const causalFraction = Number(o.stage2Causal);
      if (o.stage2Causal.trim() === "" || !(causalFraction >= 0 && causalFraction < 1)) throw new UserError(`--stage2-causal: expected a number in [0, 1), got "${o.stage2Causal}"`);
      const answerWeight = Number(o.answerWeight);
      if (!(answerWeight > 0)) throw new UserError(`--answer-weight: expected a positive number, got "${o.answerWeight}"`);
      const answerLr = Number(o.answerLr);
      if (!(answerLr > 0)) throw new UserError(`--answer-lr: expected a positive number, got "${o.answerLr}"`);
      const answerAllLr = Number(o.answerAllLr);
      if (!(answerAllLr > 0)) throw new UserError(`--answer-all-lr: expected a positive number, got "${o.answerAllLr}"`);
      const { report, modelDir } = await trainToy({
        outDir: o.out,
        seed: int("--seed", o.seed),
        trainExamples: int("--train-examples", o.trainExamples, 1),
        testExamples: int("--test-examples", o.testExamples, 1),
        trainMinBlocks: int("--train-min-blocks", o.trainMinBlocks, 1),
        shortSteps: int("--short-steps", o.shortSteps),
        stage1Steps: int("--stage1-steps", o.stage1Steps),
        stage2Steps: int("--stage2-steps", o.stage2Steps),
        onceWeight,
        stage2CausalFraction: causalFraction,
        answerSteps: int("--answer-steps", o.answerSteps),
        answerWeight,
        answerLr,
        answerAllSteps: int("--answer-all-steps", o.answerAllSteps),
        answerAllLr,
        batchSize: int("--batch", o.batch, 1),
        lr,
        workers: int("--workers", o.workers, 1),
        checkpointEvery: int("--checkpoint-every", o.checkpointEvery, 1),
        onLog: (line) => process.stderr.write(line + "\n"),
      });
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
