/**
 * `memento eval report RUN...`: one self-contained HTML report of evaluation runs (src/report/report.ts). Prints
 * a line per run and, on stderr, one `warning: ...` line for each thing that makes the comparison shaky (failed
 * generations, other problems, other sample counts). Also creates the `eval` command group.
 */
import type { Command } from "commander";
import { ensureOutputFile } from "../io/files.js";
import { writeReport } from "../report/report.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { resolveArchitecture } from "../kv/resolve.js";
import { ARCHITECTURE_PRESETS } from "../kv/architecture.js";
import { integerOption, pathOption } from "./options.js";
import { formatKvBytes } from "../eval/kv-units.js";
import { commandGroup } from "./group.js";

/** The `eval` command group, shared by `eval run` and `eval report` (whichever registers first creates it). */
export function evalCommand(program: Command): Command {
  return commandGroup(program, "eval", "evaluate a model on benchmarks: accuracy and KV cost, reports");
}

interface Options {
  out: string;
  fullAttention?: string[];
  sample?: number;
  maxProblems: number;
  fillKv?: boolean;
  tokenizer?: string;
  title?: string;
}

export function register(program: Command): void {
  evalCommand(program)
    .command("report")
    .description(
      "write one self-contained HTML report (tables, KV sawtooth per problem, compression CDF, maj@k, accuracy vs peak KV) " +
        "for one or more run directories of `memento eval run`; the first run is the baseline of the deltas",
    )
    .argument("<runDirs...>", "run directories (run.json + generations.jsonl)")
    .addOption(pathOption("-o, --out <file>", "HTML file to write").default("report.html"))
    .option(
      "--full-attention <labels...>",
      "runs (label or directory) whose server did not evict blocks; default: detected from run.json",
    )
    .addOption(
      integerOption(
        "--sample <i>",
        "sample index drawn in the per-problem KV charts (default: the first successful one)",
        { min: 0 },
      ),
    )
    .addOption(integerOption("--max-problems <n>", "most problems drawn in the KV section", { min: 0 }).default(60))
    .option("--fill-kv", "compute KV with the tokenizer for generations stored without it")
    .addOption(pathOption("-t, --tokenizer <dir>", "tokenizer for --fill-kv (default: Qwen3)"))
    .option("--title <text>", "report title")
    .action((runDirs: string[], opts: Options) => {
      ensureOutputFile(opts.out, "--out");
      const fillKv = opts.fillKv
        ? {
            tokenizer: loadTokenizer(opts.tokenizer),
            architecture: (name: string) => {
              try {
                return resolveArchitecture(name);
              } catch {
                return ARCHITECTURE_PRESETS["qwen3-8b"];
              }
            },
          }
        : undefined;
      const r = writeReport(runDirs, opts.out, {
        fullAttention: opts.fullAttention,
        sample: opts.sample,
        maxSawtoothProblems: opts.maxProblems,
        fillKv,
        title: opts.title,
      });
      const lines = r.runs.map(
        (s) =>
          `  ${s.label}: pass@1 ${s.scoredProblems > 0 ? `${(s.pass1 * 100).toFixed(1)}% ± ${(s.pass1StdErr * 100).toFixed(1)}` : "-"} over ${s.problems} problems x ${s.n}` +
          `${s.errors > 0 ? ` (${s.errors} failed generations not scored)` : ""}, ` +
          `peak KV ${Math.round(s.kv.peakTokens)} tok (${formatKvBytes(s.kv.peakGB)}, ${s.kvMode === "full" ? "full attention" : "block masking"})`,
      );
      process.stdout.write(`wrote ${r.out} (${(r.bytes / 1024).toFixed(0)} KiB)\n${lines.join("\n")}\n`);
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    });
}
