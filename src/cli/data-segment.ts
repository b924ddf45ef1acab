import type { Command } from "commander";
import { segmentBlocks, segmentBlocksApprox } from "../data/segment.js";
import { parseJson, readStdin, writeJson } from "./io.js";
import { commandGroup } from "./group.js";

/**
 * The `data` command group (OpenMementos pipeline steps: `data segment`, `data split`, ...). Returns the group
 * when some other file already created it, else creates it, so every `data` subcommand shares one group
 * whatever the registration order.
 */
export function dataCommand(program: Command): Command {
  return commandGroup(program, "data", "OpenMementos data pipeline steps (sentence split, segmentation, ...)");
}

export interface DataSegmentOptions {
  /** Use the approximate single-best-state DP instead of the exact optimizer (for comparison). */
  approximate?: boolean;
  /** Add DP statistics (states, chain points, largest chain, pruned states). */
  stats?: boolean;
}

/** The JSON value `memento data segment` prints for one stdin text (exported for tests). */
export function dataSegmentOutput(text: string, opts: DataSegmentOptions = {}): Record<string, unknown> {
  const input = parseJson(text, "stdin");
  // segmentBlocks validates the value itself (UserError with a one-line message).
  const r = opts.approximate
    ? segmentBlocksApprox(input as Parameters<typeof segmentBlocksApprox>[0])
    : segmentBlocks(input as Parameters<typeof segmentBlocks>[0]);
  const out: Record<string, unknown> = {
    blocks: r.blocks,
    objective: r.objective,
    exact: r.exact,
    feasible: r.feasible,
  };
  if (opts.stats && r.stats) out.stats = r.stats;
  return out;
}

export function register(program: Command): void {
  dataCommand(program)
    .command("segment")
    .description(
      "split sentences into blocks maximising (1/K)*sum(cut scores) - lambda*std/mean(block tokens): reads ONE JSON object " +
        '{"tokenCounts": number[], "scores": number[] (n-1, between sentences), "minBlockTokens"?: 200, "varianceWeight"?: 0.5, ' +
        '"minBlocks"?: 3} on stdin; prints {"blocks": [[start,end],...] (inclusive sentence indices), "objective", "exact", "feasible"}',
    )
    .option("--approximate", "use the approximate single-best-state DP (for comparison; exact is false)")
    .option("--stats", "add DP statistics")
    .option("--pretty", "indent the JSON output")
    .exitOverride()
    .action(async (opts: DataSegmentOptions & { pretty?: boolean }) => {
      writeJson(dataSegmentOutput(await readStdin(), opts), opts.pretty);
    });
}
