import { performance } from "node:perf_hooks";
import { BlockTracker } from "../masking/tracker.js";
import { resolveMasking } from "../masking/config.js";
import { simulateKv } from "../kv/simulate.js";
import { QWEN3_MEMENTO_IDS, syntheticMementoStream } from "./synthetic.js";

export interface TrackerBenchResult {
  tokens: number;
  repeats: number;
  /** Best-of-repeats nanoseconds per token for the tracker alone. */
  trackerNsPerToken: number;
  /** Baseline in the same run: a loop that reads each token and compares it with the four marker ids. */
  baselineNsPerToken: number;
  /** Best-of-repeats wall time of one full `simulateKv` (tracker + KV ledger) on the stream, in ms. */
  simulateMs: number;
  simulateTokens: number;
  trackerOverBaseline: number;
}

function best(repeats: number, fn: () => void): number {
  let min = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    if (dt < min) min = dt;
  }
  return min;
}

/**
 * Measures the block tracker's cost per token on a Memento-shaped stream, next to a baseline loop measured
 * in the same run, and the time `memento kv simulate` spends on a trace of `simulateTokens` tokens.
 */
export function benchTracker(tokens = 1_000_000, repeats = 7, simulateTokens = 32_768): TrackerBenchResult {
  const { tokens: stream, promptLength } = syntheticMementoStream(tokens, 7);
  const config = resolveMasking({ keepLastNBlocks: 0, requireAssistantSection: true });
  const ids = QWEN3_MEMENTO_IDS;
  let sink = 0;

  const baselineMs = best(repeats, () => {
    for (let i = 0; i < stream.length; i++) {
      const t = stream[i];
      if (t === ids.blockStart || t === ids.blockEnd || t === ids.summaryStart || t === ids.summaryEnd) sink++;
    }
  });
  const trackerMs = best(repeats, () => {
    const tracker = new BlockTracker(config, ids);
    for (let i = 0; i < stream.length; i++) sink += tracker.push(stream[i], i < promptLength).length;
  });

  const sim = syntheticMementoStream(simulateTokens, 11);
  const simulateMs = best(repeats, () => {
    sink += simulateKv(sim.tokens, sim.promptLength, ids, config).peakTokens;
  });
  if (sink === -1) console.log(sink); // keep the loops observable

  const n = stream.length;
  return {
    tokens: n,
    repeats,
    trackerNsPerToken: (trackerMs * 1e6) / n,
    baselineNsPerToken: (baselineMs * 1e6) / n,
    simulateMs,
    simulateTokens: sim.tokens.length,
    trackerOverBaseline: trackerMs / baselineMs,
  };
}
