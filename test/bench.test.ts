import { describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";

// Benchmarks are not timed tests: these only keep `memento bench` working and its numbers well-formed.
describe("memento bench (smoke)", () => {
  it("tracker reports per-token costs and a same-run baseline", () => {
    const r = runCli(["bench", "tracker", "--tokens", "20000", "--repeats", "1", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.tokens).toBeGreaterThanOrEqual(20000);
    for (const k of ["trackerNsPerToken", "baselineNsPerToken", "simulateMs", "trackerOverBaseline"]) expect(j[k]).toBeGreaterThan(0);
  });
  it("data reports split, segmentation and build rates", () => {
    const r = runCli(["bench", "data", "--traces", "2", "--repeats", "1", "--reference", "/nonexistent", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.traces).toBe(2);
    expect(j.meanObjectiveGain).toBeGreaterThanOrEqual(0);
    for (const k of ["splitMs", "naiveSplitMs", "segmentMs", "approxSegmentMs", "buildTracesPerSecond"]) expect(j[k]).toBeGreaterThan(0);
  });
});
