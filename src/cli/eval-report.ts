import type { Command } from "commander";
import { UserError } from "../errors.js";
import { writeReport } from "../report/report.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { resolveArchitecture } from "../kv/resolve.js";
import { ARCHITECTURE_PRESETS } from "../kv/architecture.js";

/** The `eval` command group, shared by `eval run` and `eval report` (whichever registers first creates it). */
export function evalCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === "eval");
  if (existing) return existing;
  return program.command("eval").description("evaluate a model on benchmarks: accuracy and KV cost, reports");
}

interface Options {
  out: string;
  fullAttention?: string[];
  sample?: string;
  maxProblems: string;
  fillKv?: boolean;
  tokenizer?: string;
  title?: string;
}

function intOption(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

export function register(program: Command): void {
  evalCommand(program)
    .command("report")
    .description(
      "write one self-contained HTML report (tables, KV sawtooth per problem, compression CDF, maj@k, accuracy vs peak KV) " +
        "for one or more run directories of `memento eval run`; the first run is the baseline of the deltas",
    )
    .argument("<runDirs...>", "run directories (run.json + generations.jsonl)")
    .option("-o, --out <file>", "HTML file to write", "report.html")
    .option("--full-attention <labels...>", "runs (label or directory) whose server did not evict blocks; default: detected from run.json")
    .option("--sample <i>", "sample index drawn in the per-problem KV charts (default: the first successful one)")
    .option("--max-problems <n>", "most problems drawn in the KV section", "60")
    .option("--fill-kv", "compute KV with the tokenizer for generations stored without it")
    .option("-t, --tokenizer <dir>", "tokenizer for --fill-kv (default: Qwen3)")
    .option("--title <text>", "report title")
    .action((runDirs: string[], opts: Options) => {
      const sample = opts.sample === undefined ? undefined : intOption("--sample", opts.sample, 0);
      const maxSawtoothProblems = intOption("--max-problems", opts.maxProblems, 0);
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
        sample,
        maxSawtoothProblems,
        fillKv,
        title: opts.title,
      });
      const lines = r.runs.map(
        (s) =>
          `  ${s.label}: pass@1 ${(s.pass1 * 100).toFixed(1)}% ± ${(s.pass1StdErr * 100).toFixed(1)} over ${s.problems} problems x ${s.n}, ` +
          `peak KV ${Math.round(s.kv.peakTokens)} tok (${s.kv.peakGB.toFixed(3)} GB, ${s.kvMode === "full" ? "full attention" : "block masking"})`,
      );
      process.stdout.write(`wrote ${r.out} (${(r.bytes / 1024).toFixed(0)} KiB)\n${lines.join("\n")}\n`);
    });
}
