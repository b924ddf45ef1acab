import type { Command } from "commander";
import { runDemo } from "../demo/demo.js";
import { evaluateBundledModel, hasBundledModel, runModelDemo } from "../demo/model-demo.js";
import { UserError } from "../errors.js";
import { writeJson } from "./io.js";
import { integerOption, pathOption } from "./options.js";

export function register(program: Command): void {
  program
    .command("demo")
    .description(
      "the bundled toy model solving held-out problems with its blocks evicted, then a sample Memento response " +
        "with its KV sawtooth vs full attention; --json: held-out accuracy masked vs full and the peak-KV reduction",
    )
    .addOption(pathOption("-f, --file <path>", "show this Memento response text file instead of the bundled sample"))
    .option("-p, --problem <text>", "the problem of --file, so the replay includes its chat prompt")
    .addOption(integerOption("-w, --width <n>", "chart width in columns", { min: 1 }).default(64))
    .option("--json", "evaluate the bundled model on held-out problems (masked vs full attention) and print JSON")
    .addOption(integerOption("--problems <n>", "held-out problems for --json", { min: 1 }).default(200))
    .action((opts: { file?: string; problem?: string; width: number; json?: boolean; problems: number }) => {
      if (opts.json) {
        if (!hasBundledModel())
          throw new UserError("no bundled model (models/toy); train one with `memento train toy`");
        return writeJson(evaluateBundledModel({ problems: opts.problems }), true);
      }
      if (!opts.file && hasBundledModel()) process.stdout.write(runModelDemo() + "\n\n");
      process.stdout.write(runDemo({ responsePath: opts.file, problem: opts.problem, width: opts.width }) + "\n");
    });
}
