import type { Command } from "commander";
import { register as registerKv } from "./kv.js";
import { register as registerBench } from "./bench.js";
import { register as registerBenchSoak } from "./bench-soak.js";
import { register as registerDemo } from "./demo.js";
import { register as registerTraceValidate } from "./trace-validate.js";
import { register as registerTraceStats } from "./trace-stats.js";
import { register as registerTokenize } from "./tokenize.js";
import { register as registerDataSegment } from "./data-segment.js";
import { register as registerDataSplit } from "./data-split.js";
import { registerSeedAndStats as registerDataSeedStats } from "./data-seed.js";
import { register as registerDataBuild } from "./data-build.js";
import { register as registerDataMerge } from "./data-merge.js";
import { register as registerModelAddTokens } from "./model.js";
import { register as registerModelExportGguf } from "./gguf.js";
import { register as registerToy } from "./toy.js";
import { register as registerEvalReport } from "./eval-report.js";
import { register as registerView } from "./view.js";
import { register as registerEngine } from "./engine.js";
import { register as registerEvalRun } from "./eval-run.js";
import { register as registerTrain } from "./train.js";
import { register as registerServe } from "./serve.js";
import { register as registerAnalyzeProbe } from "./analyze-probe.js";
import { register as registerAnalyzeRestart } from "./analyze-restart.js";
import { register as registerRl } from "./rl.js";
import { register as registerTrainRl } from "./train-rl.js";

/**
 * The command table. One file per command (or command group); each exports a `register(program)` that
 * parses options and calls the library. Add new commands here.
 */
export function registerCommands(program: Command): void {
  registerKv(program);
  registerBench(program);
  registerBenchSoak(program); // after registerBench: adds `bench soak`
  registerDemo(program);
  registerTraceValidate(program);
  registerTraceStats(program);
  registerTokenize(program);
  registerDataSegment(program);
  registerDataBuild(program);
  registerDataMerge(program);
  registerDataSplit(program);
  registerDataSeedStats(program);
  registerModelAddTokens(program);
  registerModelExportGguf(program);
  registerToy(program);
  registerEvalReport(program);
  registerView(program);
  registerEngine(program); // after registerBench: adds `bench engine`
  registerEvalRun(program);
  registerTrain(program);
  registerServe(program);
  registerAnalyzeProbe(program);
  registerAnalyzeRestart(program); // `analyze restart`
  registerRl(program); // the `rl` group: `rl rollouts`, `rl compare`
  registerTrainRl(program); // `train rl`
}
