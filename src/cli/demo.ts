import type { Command } from "commander";
import { runDemo } from "../demo/demo.js";

export function register(program: Command): void {
  program
    .command("demo")
    .description("parse a sample Memento response, show its blocks and mementos, and its KV sawtooth vs full attention")
    .option("-f, --file <path>", "a Memento response text file instead of the bundled sample")
    .option("-p, --problem <text>", "the problem, so the replay includes its chat prompt")
    .option("-w, --width <n>", "chart width in columns", "64")
    .action((opts: { file?: string; problem?: string; width: string }) => {
      process.stdout.write(runDemo({ responsePath: opts.file, problem: opts.problem, width: Number(opts.width) }) + "\n");
    });
}
