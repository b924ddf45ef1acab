/**
 * `memento data merge DIR... -o OUT`: combines the shard directories of `memento data build --shard K/N` into one
 * OpenMementos dataset with `mergeShards` (src/data/merge.ts), prints the merged set's statistics table to
 * stdout and what it wrote to stderr. Shards of different builds, a missing, repeated or unfinished shard are
 * refused in one line naming what is wrong (exit 2).
 */
import type { Command } from "commander";
import { checkOutputDir } from "../io/files.js";
import { mergeShards } from "../data/merge.js";
import { formatStatsTable } from "../data/stats.js";
import type { OutputSchema } from "../data/writers.js";
import { dataCommand } from "./data-segment.js";
import { choiceOption, pathOption } from "./options.js";

interface MergeCliOptions {
  outputDir: string;
  schema: OutputSchema;
  parquet?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  dataCommand(program)
    .command("merge")
    .description(
      "combine the shard directories of `data build --shard K/N` (all N, each once, same options and input) into " +
        "one dataset, each trace once, sorted by id; writes the dataset, failures, a merged manifest and stats",
    )
    .argument("<dirs...>", "the shard output directories, in any order")
    .addOption(pathOption("-o, --output-dir <dir>", "where the merged dataset goes").makeOptionMandatory())
    .addOption(choiceOption("--schema <s>", "columns of the outputs", ["full", "default"]).default("full"))
    .option("--parquet", "also write openmementos.parquet")
    .option("--json", "print the merged statistics as JSON instead of a table")
    .action(async (dirs: string[], o: MergeCliOptions) => {
      checkOutputDir(o.outputDir, "--output-dir"); // created only once the shards pass their checks
      const summary = await mergeShards({
        shardDirs: dirs,
        outputDir: o.outputDir,
        schema: o.schema,
        parquet: o.parquet,
      });
      const err = process.stderr;
      err.write(
        `merged ${summary.shards.length} shards: ${summary.completed} completed, ${summary.failed} failed ` +
          `(of ${summary.total}; ${summary.selectedTraces} selected)\n`,
      );
      for (const path of summary.outputs) err.write(`wrote ${path}\n`);
      if (o.json) process.stdout.write(JSON.stringify(summary.stats, null, 2) + "\n");
      else process.stdout.write(formatStatsTable(summary.stats).join("\n") + "\n");
    });
}
