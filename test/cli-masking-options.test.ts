/**
 * The block-masking flags come from one table (src/cli/masking-options.ts over MASKING_FIELDS): every command
 * that takes them has the same flags, reads the same values into the same settings, and refuses the same values
 * with the same message.
 */
import { join } from "node:path";
import type { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildProgram } from "../src/cli/main.js";
import { maskingFlagNames, maskingFromOptions } from "../src/cli/masking-options.js";
import { UserError } from "../src/errors.js";
import { DEFAULT_MASKING, type MaskingConfig } from "../src/masking/config.js";
import { repoRoot } from "./helpers/reference.js";
import { runInProcess as run } from "./helpers/cli.js";

afterEach(() => vi.restoreAllMocks());

const MASKING_COMMANDS = ["eval run", "rl compare", "rl rollouts", "serve", "trace stats", "train rl", "view"];

function allCommands(cmd: Command, prefix = ""): { path: string; cmd: Command }[] {
  return cmd.commands.flatMap((c) => {
    const path = prefix ? `${prefix} ${c.name()}` : c.name();
    return [{ path, cmd: c }, ...allCommands(c, path)];
  });
}

/** A fresh command (option values live on the command object), by its path under `memento`. */
function freshCommand(path: string): Command {
  const found = allCommands(buildProgram()).find((c) => c.path === path);
  if (!found) throw new Error(`no command ${path}`);
  return found.cmd;
}

/** The masking settings a command reads from `args` (parsed by commander, then maskingFromOptions). */
function readMasking(path: string, args: string[]): Partial<MaskingConfig> {
  const cmd = freshCommand(path);
  const { unknown } = cmd.parseOptions(args);
  expect(unknown, `${path} ${args.join(" ")}`).toEqual([]);
  return maskingFromOptions(cmd.opts());
}

describe("masking flags", () => {
  it("exactly the masking commands have them, all of them", () => {
    const wanted = maskingFlagNames().sort();
    const withAny = allCommands(buildProgram()).filter(({ cmd }) =>
      cmd.options.some((o) => wanted.includes(o.long ?? "")),
    );
    expect(withAny.map((c) => c.path).sort()).toEqual(MASKING_COMMANDS);
    for (const { path, cmd } of withAny) {
      const masking = cmd.options.filter((o) => wanted.includes(o.long ?? ""));
      expect(masking.map((o) => o.long).sort(), path).toEqual(wanted);
      expect(masking.find((o) => o.long === "--keep-last-n-blocks")?.short, path).toBe("-k");
    }
  });

  it.each<[string[], Partial<MaskingConfig>]>([
    [[], {}],
    [["-k", "-1"], { keepLastNBlocks: -1 }],
    [["--keep-last-n-blocks", "-1"], { keepLastNBlocks: -1 }],
    [["--keep-last-n-blocks", "0"], { keepLastNBlocks: 0 }],
    [["--keep", "3"], { keepLastNBlocks: 3 }],
    [["--max-block-tokens", "256"], { maxBlockTokens: 256 }],
    [["--mask-delimiters"], { maskDelimiters: true }],
    [["--no-compact-on-summary-end"], { compactOnSummaryEnd: false }],
    [["--keep-last-block-for-answer"], { keepLastBlockForAnswer: true }],
    [["--restart-mode", "-k", "2"], { restartMode: true, keepLastNBlocks: 2 }],
  ])("every command reads %j the same way", (args, expected) => {
    for (const path of MASKING_COMMANDS) expect(readMasking(path, args), path).toEqual(expected);
  });

  it.each<[string[], RegExp]>([
    [["-k", "-2"], /^--keep-last-n-blocks: expected an integer >= -1, got "-2"$/],
    [["--keep", "x"], /^--keep: expected an integer >= -1, got "x"$/],
    [["--keep-last-n-blocks", "1.5"], /^--keep-last-n-blocks: expected an integer >= -1/],
    [["--max-block-tokens", "-1"], /^--max-block-tokens: expected a non-negative integer, got "-1"$/],
    [["--keep", "1", "-k", "2"], /^give one of --keep-last-n-blocks, --keep, not several$/],
  ])("every command refuses %j with the same message", (args, message) => {
    for (const path of MASKING_COMMANDS) {
      let error: unknown;
      try {
        readMasking(path, args);
      } catch (e) {
        error = e;
      }
      expect(error, path).toBeInstanceOf(UserError);
      expect((error as Error).message, path).toMatch(message);
    }
  });

  it("runServe's raw string options read the same way as the parsed flags", () => {
    expect(maskingFromOptions({ keepLastNBlocks: "-1", maxBlockTokens: "0", restartMode: true })).toEqual({
      keepLastNBlocks: -1,
      maxBlockTokens: 0,
      restartMode: true,
    });
    expect(maskingFromOptions({ compactOnSummaryEnd: DEFAULT_MASKING.compactOnSummaryEnd })).toEqual({});
  });
});

describe("memento trace stats with the shared flags", () => {
  const sample = join(repoRoot, "assets", "sample-response.txt");

  it("-k -1 (vanilla, as serve takes it) keeps every block: no evictions, the peak of full attention", async () => {
    const r = await run(["trace", "stats", sample, "-k", "-1", "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as {
      evictions: number;
      memento: { peakTokens: number };
      vanilla: { peakTokens: number };
    };
    expect(s.evictions).toBe(0);
    expect(s.memento.peakTokens).toBe(s.vanilla.peakTokens);
  });

  it("-k -2 is one line and exit 2", async () => {
    const r = await run(["trace", "stats", sample, "-k", "-2"]);
    expect(r.code).toBe(2);
    expect(r.err).toBe('memento: --keep-last-n-blocks: expected an integer >= -1, got "-2"\n');
  });
});
