import { dirname, join } from "node:path";
import { statSync } from "node:fs";
import type { Command } from "commander";
import { collectStats, formatStatsTable, renderStatsHtml, type DatasetStats } from "../data/stats.js";
import { writeFileAtomic } from "../data/writers.js";
import { checkOutputFile } from "../io/files.js";
import { dataCommand } from "./data-segment.js";
import { pathOption } from "./options.js";

export interface DataStatsOptions {
  html?: string;
  json?: boolean;
}

/** The default HTML path: DIR/stats.html for a directory, next to the file for a file. */
export function defaultHtmlPath(path: string): string {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    /* collectStats reports the error */
  }
  return join(isDir ? path : dirname(path), "stats.html");
}

/** `memento data stats DIR`: prints the table (or JSON) to stdout, writes the HTML report; returns the stats. */
export async function runDataStats(
  path: string,
  opts: DataStatsOptions = {},
  out: (s: string) => void = (s) => process.stdout.write(s),
): Promise<{ stats: DatasetStats; htmlPath: string }> {
  if (opts.html !== undefined) checkOutputFile(opts.html, "--html");
  const { stats, values } = await collectStats(path);
  const htmlPath = opts.html ?? defaultHtmlPath(path);
  writeFileAtomic(htmlPath, renderStatsHtml(stats, values));
  if (opts.json) out(JSON.stringify(stats, null, 2) + "\n");
  else out(formatStatsTable(stats).join("\n") + `\nwrote ${htmlPath}\n`);
  return { stats, htmlPath };
}

export function register(program: Command): void {
  dataCommand(program)
    .command("stats")
    .description(
      "per-domain statistics of a pipeline output (DIR of .parquet or .jsonl files, or one file): samples, blocks per sample, " +
        "block and memento chars, compression ratio (median, p10, p90), judge pass rates from meta; writes a self-contained " +
        "HTML report with Figure-3-style histograms",
    )
    .argument("<dir>", "output directory (or a single .jsonl/.parquet file)")
    .addOption(pathOption("--html <file>", "HTML report path (default DIR/stats.html)"))
    .option("--json", "print the statistics as JSON instead of a table")
    .action(async (dir: string, opts: DataStatsOptions) => {
      await runDataStats(dir, opts);
    });
}
