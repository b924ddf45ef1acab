/**
 * `memento analyze probe`: KV probing of the probe-task model (the paper's Figure 13 at toy scale). Parses the
 * options and calls `analyzeProbe` (src/analyze/probe-run.ts); progress goes to stderr, the verdict (or, with
 * --json, the report object) to stdout.
 */
import type { Command } from "commander";
import { analyzeProbe } from "../analyze/probe-run.js";
import type { ProbeReport } from "../analyze/probe.js";
import { ensureOutputDir } from "../io/files.js";
import { commandGroup } from "./group.js";
import { integerOption, pathOption } from "./options.js";

/** The options of `memento analyze probe`, converted while parsing. */
interface AnalyzeProbeCliOptions {
  out: string;
  modelDir?: string;
  quick?: boolean;
  samples?: number;
  checkpointSamples?: number;
  taskSamples?: number;
  workers?: number;
  json?: boolean;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function summary(r: ProbeReport, json: string, html: string): string {
  const last = (c: ProbeReport["masked"]) => c.byLayer[c.byLayer.length - 1];
  const line = (name: string, c: ProbeReport["masked"]) => {
    const a = last(c);
    return `${name} (memento ${c.block}), last layer: ${pct(a.accuracy)} [${pct(a.ci95[0])}, ${pct(a.ci95[1])}], first layer ${pct(c.byLayer[0].accuracy)} (chance ${pct(r.chance)})`;
  };
  return [
    line("direct", r.direct),
    line("masked", r.masked),
    line("causal", r.causal),
    `masked by distance: ${r.maskedByDistance.map((d) => `+${d.distance} ${pct(d.accuracy)}`).join(", ")} (chance ${pct(r.chance)})`,
    `across training: ${r.maskedByCheckpoint.map((c) => `step ${c.step} masked ${pct(c.accuracy)} task ${pct(c.taskAccuracy)}`).join("; ")}`,
    `wrote ${json} and ${html}`,
    "",
  ].join("\n");
}

export function register(program: Command): void {
  commandGroup(program, "analyze", "analyses of trained Memento models (KV probing, restart mode)")
    .command("probe")
    .description(
      "KV probing (Figure 13 at toy scale): train probes to recover a passcode from mementos' keys and values",
    )
    .addOption(pathOption("-o, --out <dir>", "where probe.json and probe.html go").default("runs/probe"))
    .addOption(
      pathOption(
        "--model-dir <dir>",
        "the probe-task model (step-N/ checkpoints); reused when complete, else trained into (default: the bundled models/probe)",
      ),
    )
    .option("--quick", "tiny model, few steps, few samples: checks the pipeline in seconds (numbers mean nothing)")
    .addOption(integerOption("--samples <n>", "probe sequences for the final model (train + test)", { min: 20 }))
    .addOption(integerOption("--checkpoint-samples <n>", "probe sequences per checkpoint", { min: 20 }))
    .addOption(
      integerOption("--task-samples <n>", "held-out sequences for each checkpoint's task accuracy", { min: 1 }),
    )
    .addOption(integerOption("--workers <n>", "gradient worker threads when the model must be trained", { min: 1 }))
    .option("--json", "print the report as one JSON object on stdout")
    .action(async (o: AnalyzeProbeCliOptions) => {
      ensureOutputDir(o.out, "--out");
      const { report, jsonPath, htmlPath } = await analyzeProbe({
        outDir: o.out,
        modelDir: o.modelDir,
        quick: o.quick,
        samples: o.samples,
        checkpointSamples: o.checkpointSamples,
        taskSamples: o.taskSamples,
        workers: o.workers,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(o.json ? `${JSON.stringify(report)}\n` : summary(report, jsonPath, htmlPath));
    });
}
