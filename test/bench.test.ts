import { describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";

/** Runs `memento bench ARGS --json`, which must succeed, and returns its parsed report. */
function benchJson(args: string[]) {
  const r = runCli(["bench", ...args, "--json"]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

// Benchmarks are not timed tests: these only keep `memento bench` working and its numbers well-formed.
describe("memento bench (smoke)", () => {
  it("tracker reports per-token costs and a same-run baseline", () => {
    const j = benchJson(["tracker", "--tokens", "20000", "--repeats", "1"]);
    expect(j.tokens).toBeGreaterThanOrEqual(20000);
    for (const k of ["trackerNsPerToken", "baselineNsPerToken", "simulateMs", "trackerOverBaseline"])
      expect(j[k]).toBeGreaterThan(0);
  });
  it("data reports split, segmentation and build rates", () => {
    const j = benchJson(["data", "--traces", "2", "--repeats", "1", "--reference", "/nonexistent"]);
    expect(j.traces).toBe(2);
    expect(j.meanObjectiveGain).toBeGreaterThanOrEqual(0);
    for (const k of ["splitMs", "naiveSplitMs", "segmentMs", "approxSegmentMs", "buildTracesPerSecond"])
      expect(j[k]).toBeGreaterThan(0);
  });
  it("sampler reports per-token costs next to a full sort that draws the same tokens", () => {
    const j = benchJson(["sampler", "--vocab", "3000", "--tokens", "3", "--repeats", "1"]);
    expect(j.vocab).toBe(3000);
    for (const c of j.cases) {
      expect(c.agreement).toBe(1);
      expect(c.msMin).toBeGreaterThan(0);
      expect(c.fullSortMsMin).toBeGreaterThan(0);
    }
  });
});
