/**
 * `memento analyze restart`: the restart ablation (the paper's Table 3) on a model directory and a problem set.
 * Parses the flags, loads the model and the problems, calls `runRestartAblation`, writes `restart.json` and
 * `restart.html` to --out, and prints a summary (or, with --json, the report as one JSON object).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import {
  DEFAULT_RESTART_MODEL_DIR,
  DEFAULT_RESTART_OUT_DIR,
  DEFAULT_RESTART_QUICK_PROBLEMS,
  DEFAULT_RESTART_SAMPLES,
  DEFAULT_RESTART_SEED,
  DEFAULT_RESTART_TEMPERATURE,
  DEFAULT_RESTART_TOP_K,
  DEFAULT_RESTART_TOP_P,
  loadAblationModel,
  runRestartAblation,
} from "../analyze/restart.js";
import { bundledProbeModelDir } from "../analyze/probe-run.js";
import { probeAblationTask } from "../analyze/restart-probe.js";
import { restartReportHtml, restartSummaryText } from "../analyze/restart-html.js";
import { DEFAULT_RESTART_PROBLEMS, readToyPrompts, toyAblationTask } from "../analyze/restart-tasks.js";
import { UserError } from "../errors.js";
import { ensureOutputDir } from "../io/files.js";
import { commandGroup } from "./group.js";
import { writeJson } from "./io.js";
import { choiceOption, integerOption, numberOption, pathOption } from "./options.js";

/** The problem sets `--task` names. */
const TASKS = ["toy", "probe"] as const;
type TaskName = (typeof TASKS)[number];

interface AnalyzeRestartOptions {
  task: TaskName;
  model?: string;
  problems?: string;
  limit?: number;
  samples?: number;
  greedy: boolean;
  controls: boolean;
  seed: number;
  temperature: number;
  topP: number;
  topK: number;
  out: string;
  json?: boolean;
  quick?: boolean;
}

const LIMIT_HELP = `first n problems (default ${DEFAULT_RESTART_PROBLEMS}; --quick ${DEFAULT_RESTART_QUICK_PROBLEMS})`;
const SAMPLES_HELP = `sampled generations per problem at the paper's sampling, 0 = greedy only (default ${DEFAULT_RESTART_SAMPLES})`;

/** A progress line on stderr: rewritten in place on a terminal, one per line in a log file. */
function progressLine(line: string): void {
  process.stderr.write(process.stderr.isTTY ? `\r${line}   ` : `${line}\n`);
}

export function register(program: Command): void {
  commandGroup(program, "analyze", "analyses of trained Memento models (KV probing, restart mode)")
    .command("restart")
    .description(
      "the restart ablation (paper Table 3): accuracy, peak KV and recomputed tokens with memento attention, with " +
        "restart (memento KV recomputed without its block) and with full attention, on the same problems and seeds; " +
        "writes restart.json and restart.html",
    )
    .addOption(
      choiceOption("--task <name>", "problem set: the toy task, or the probe task's held-out sequences", TASKS).default(
        "toy",
      ),
    )
    .addOption(pathOption("--model <dir>", "model directory (default models/toy; --task probe: models/probe)"))
    .addOption(
      pathOption(
        "--problems <file>",
        "JSONL of toy prompts (`problem` field, e.g. assets/toy-benchmark.jsonl); default: the held-out problems",
      ),
    )
    .addOption(integerOption("--limit <n>", LIMIT_HELP, { min: 1 }))
    .addOption(integerOption("--samples <n>", SAMPLES_HELP, { min: 0 }))
    .option("--no-greedy", "skip the greedy protocol")
    .option("--no-controls", "skip the two controls that separate restart's evicted delimiters from its recomputed KV")
    .addOption(integerOption("--seed <n>", "base sampling seed", { min: 0 }).default(DEFAULT_RESTART_SEED))
    .addOption(
      numberOption("--temperature <t>", "sampling temperature", { min: 0 }).default(DEFAULT_RESTART_TEMPERATURE),
    )
    .addOption(numberOption("--top-p <p>", "sampling top-p", { min: 0, max: 1 }).default(DEFAULT_RESTART_TOP_P))
    .addOption(integerOption("--top-k <k>", "sampling top-k (0 = off)", { min: 0 }).default(DEFAULT_RESTART_TOP_K))
    .addOption(pathOption("-o, --out <dir>", "output directory").default(DEFAULT_RESTART_OUT_DIR))
    .option("--json", "print the report as one JSON object")
    .option(
      "--quick",
      `a few problems, one sample each (for tests): --limit ${DEFAULT_RESTART_QUICK_PROBLEMS} --samples 1`,
    )
    .action((opts: AnalyzeRestartOptions) => {
      if (!opts.greedy && opts.samples === 0) throw new UserError("--no-greedy with --samples 0 leaves nothing to run");
      if (opts.task === "probe" && opts.problems !== undefined)
        throw new UserError("--problems takes toy prompts; the probe task draws its own sequences (use --limit)");
      ensureOutputDir(opts.out, "--out");
      const limit = opts.limit ?? (opts.quick ? DEFAULT_RESTART_QUICK_PROBLEMS : DEFAULT_RESTART_PROBLEMS);
      const samples = opts.samples ?? DEFAULT_RESTART_SAMPLES;
      const prompts = opts.problems === undefined ? undefined : readToyPrompts(opts.problems);
      const defaultModel = opts.task === "probe" ? bundledProbeModelDir() : DEFAULT_RESTART_MODEL_DIR;
      const { model, dir } = loadAblationModel(opts.model ?? defaultModel);
      const task = opts.task === "probe" ? probeAblationTask({ limit }) : toyAblationTask({ prompts, limit });
      const report = runRestartAblation({
        model,
        modelDir: dir,
        task,
        greedy: opts.greedy,
        samples,
        seed: opts.seed,
        temperature: opts.temperature,
        topP: opts.topP,
        topK: opts.topK,
        controls: opts.controls,
        onProgress: opts.json ? undefined : progressLine,
      });
      const jsonPath = join(opts.out, "restart.json");
      const htmlPath = join(opts.out, "restart.html");
      writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
      writeFileSync(htmlPath, restartReportHtml(report));
      if (opts.json) return writeJson(report);
      if (process.stderr.isTTY) process.stderr.write("\n");
      process.stdout.write(`${restartSummaryText(report)}\nwrote ${jsonPath} and ${htmlPath}\n`);
    });
}
