import { afterEach, describe, expect, it, vi } from "vitest";
import { Command } from "commander";
import { UserError } from "../src/errors.js";

let stdinText = "";
vi.mock("../src/cli/io.js", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../src/cli/io.js")>();
  return { ...actual, readStdin: async () => stdinText };
});

const { dataCommand, dataSegmentOutput, register } = await import("../src/cli/data-segment.js");
const { DEFAULT_SEGMENT_WORK_BUDGET } = await import("../src/data/segment.js");

function program(): Command {
  const p = new Command("memento").exitOverride();
  register(p);
  return p;
}

async function runCli(input: string, args: string[] = []): Promise<string> {
  stdinText = input;
  let out = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program().parseAsync(["node", "memento", "data", "segment", ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}

afterEach(() => {
  stdinText = "";
});

describe("memento data segment", () => {
  it("reads one JSON object on stdin and prints {blocks, objective, exact, feasible}", async () => {
    const out = await runCli(JSON.stringify({ tokenCounts: [300, 300, 300], scores: [0, 3], minBlocks: 1 }));
    expect(out.endsWith("\n")).toBe(true);
    const v = JSON.parse(out);
    expect(v.blocks).toEqual([
      [0, 1],
      [2, 2],
    ]);
    expect(v.objective).toBeCloseTo(1.5 - 0.5 / 3, 14);
    expect(v.exact).toBe(true);
    expect(v.feasible).toBe(true);
    expect(out.split("\n").length).toBe(2); // one line
  });

  it("uses the defaults (minBlockTokens 200, lambda 0.5, minBlocks 3)", async () => {
    const v = JSON.parse(await runCli(JSON.stringify({ tokenCounts: [300, 300, 300], scores: [0, 3] })));
    expect(v.blocks).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
  });

  it("--approximate, --stats and --pretty", async () => {
    const input = JSON.stringify({
      tokenCounts: [150, 200, 150, 400, 200, 100, 100, 250, 150, 200],
      scores: [0, 0, 1, 2, 2, 0, 2, 3, 0],
    });
    const exact = JSON.parse(await runCli(input, ["--stats"]));
    const approx = JSON.parse(await runCli(input, ["--approximate"]));
    expect(exact.stats.states).toBeGreaterThan(0);
    expect(approx.exact).toBe(false);
    expect(exact.objective).toBeGreaterThan(approx.objective);
    expect(await runCli(input, ["--pretty"])).toContain('\n  "blocks"');
  });

  it("says how it solved: exact with its work budget by default, coarse when --work-budget is below the estimate", async () => {
    const input = JSON.stringify({
      tokenCounts: Array.from({ length: 60 }, (_, i) => 40 + ((i * 37) % 90)),
      scores: Array.from({ length: 59 }, (_, i) => (i * 7) % 4),
    });
    const exact = JSON.parse(await runCli(input));
    expect([exact.method, exact.exact, exact.budget.workBudget]).toEqual(["exact", true, DEFAULT_SEGMENT_WORK_BUDGET]);
    const coarse = JSON.parse(await runCli(input, ["--work-budget", "100"]));
    expect([coarse.method, coarse.exact, coarse.budget.workBudget]).toEqual(["coarse", false, 100]);
    expect(coarse.budget.groups).toBeLessThan(60);
    expect(coarse.budget.estimatedWork).toBeGreaterThan(100);
    expect(coarse.objective).toBeLessThanOrEqual(exact.objective);
    expect(JSON.parse(await runCli(input, ["--approximate"])).method).toBe("approximate");
    await expect(runCli(input, ["--work-budget", "0"])).rejects.toThrow(/--work-budget/);
  });

  it("bad input is a one-line UserError", () => {
    expect(() => dataSegmentOutput("{oops")).toThrow(UserError);
    expect(() => dataSegmentOutput("{oops")).toThrow(/^stdin: invalid JSON/);
    expect(() => dataSegmentOutput(JSON.stringify({ tokenCounts: [1, 2], scores: [] }))).toThrow(
      /^segment input: scores: must have exactly tokenCounts\.length - 1 entries/,
    );
  });

  it("dataCommand returns the existing `data` group or creates one", () => {
    const p = new Command("memento");
    const existing = p.command("data");
    expect(dataCommand(p)).toBe(existing);
    const q = new Command("memento");
    const created = dataCommand(q);
    expect(created.name()).toBe("data");
    expect(dataCommand(q)).toBe(created);
    register(q);
    expect(q.commands.filter((c) => c.name() === "data")).toHaveLength(1);
    expect(created.commands.map((c) => c.name())).toContain("segment");
  });
});
