/**
 * `memento data segment`: one segmentation problem on stdin, its blocks as one JSON line on stdout.
 * The output always says how it was solved (`method`) and, for the default solver, the work budget, the
 * estimate and the work spent, so an approximate answer never passes for an exact one.
 */
import type { Command } from "commander";
import { DEFAULT_SEGMENT_WORK_BUDGET, segmentBlocks, segmentBlocksApprox } from "../data/segment.js";
import { UserError } from "../errors.js";
import { parseJson, readStdin, writeJson } from "./io.js";
import { commandGroup } from "./group.js";
import { integerOption } from "./options.js";

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
  /** DP transitions the exact solver may spend (overrides the input's `workBudget`). */
  workBudget?: number;
}

/** The JSON value `memento data segment` prints for one stdin text (exported for tests). */
export function dataSegmentOutput(text: string, opts: DataSegmentOptions = {}): Record<string, unknown> {
  const parsed = parseJson(text, "stdin");
  if (opts.workBudget !== undefined && (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)))
    throw new UserError("segment input: expected a JSON object");
  const input = opts.workBudget !== undefined ? { ...(parsed as object), workBudget: opts.workBudget } : parsed;
  // segmentBlocks validates the value itself (UserError with a one-line message).
  const r = opts.approximate
    ? segmentBlocksApprox(input as Parameters<typeof segmentBlocksApprox>[0])
    : segmentBlocks(input as Parameters<typeof segmentBlocks>[0]);
  const out: Record<string, unknown> = {
    blocks: r.blocks,
    objective: r.objective,
    exact: r.exact,
    feasible: r.feasible,
    method: opts.approximate ? "approximate" : r.method,
  };
  if (r.budget) out.budget = r.budget;
  if (opts.stats && r.stats) out.stats = r.stats;
  return out;
}

export function register(program: Command): void {
  dataCommand(program)
    .command("segment")
    .description(
      "split sentences into blocks maximising (1/K)*sum(cut scores) - lambda*std/mean(block tokens): reads ONE JSON object " +
        '{"tokenCounts": number[], "scores": number[] (n-1, between sentences), "minBlockTokens"?: 200, "varianceWeight"?: 0.5, ' +
        '"minBlocks"?: 3, "workBudget"?: DP transitions} on stdin; prints {"blocks": [[start,end],...] (inclusive sentence ' +
        'indices), "objective", "exact", "feasible", "method": "exact"|"coarse"|"approximate", "budget": {workBudget, ' +
        "estimatedWork, work, groups?}}; exact when the estimated work fits the budget, else a coarse grid refined locally",
    )
    .option("--approximate", "use the approximate single-best-state DP (for comparison; exact is false)")
    .option("--stats", "add DP statistics")
    .addOption(
      integerOption(
        "--work-budget <n>",
        `DP transitions the exact solver may spend before the coarse grid is used (default ${DEFAULT_SEGMENT_WORK_BUDGET})`,
        { min: 1 },
      ),
    )
    .option("--pretty", "indent the JSON output")
    .exitOverride()
    .action(async (opts: DataSegmentOptions & { pretty?: boolean }) => {
      writeJson(dataSegmentOutput(await readStdin(), opts), opts.pretty);
    });
}
