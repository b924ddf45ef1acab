import { describe, expect, it } from "vitest";
import { benchEngine } from "../src/bench/engine.js";

describe("bench engine (small)", () => {
  it("replays the same requests with and without eviction under one budget and reports the ratios", async () => {
    const r = await benchEngine({
      requests: 4,
      synthetic: true,
      model: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1 },
    });
    expect(r.source).toBe("synthetic");
    expect(r.memento.completionTokens).toBe(r.vanilla.completionTokens);
    expect(r.memento.peakKvTokens).toBeLessThanOrEqual(r.kvBudgetTokens);
    expect(r.vanilla.peakKvTokens).toBeLessThanOrEqual(r.kvBudgetTokens);
    // With eviction more requests fit: more of them per step, so fewer batched steps for the same tokens.
    expect(r.vanilla.preemptions).toBeGreaterThan(0);
    expect(r.stepsRatio).toBeGreaterThan(1.2);
    expect(r.memento.meanConcurrency).toBeGreaterThan(r.vanilla.meanConcurrency);
    for (const t of r.traces) expect(t.simulatedPeakVanilla / t.simulatedPeakMemento).toBeGreaterThan(2);
    expect(Number.isFinite(r.throughputRatio) && Number.isFinite(r.completionTimeRatio)).toBe(true);
  }, 180_000); // a few seconds on a quiet machine; generous for a loaded CI runner
});
