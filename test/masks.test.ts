import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { causalPattern, denseMask, isVisible, mementoPattern, visibleKeys, NEVER } from "../src/masking/masks.js";
import { BlockTracker } from "../src/masking/tracker.js";
import { DEFAULT_MASKING, type MaskingConfig } from "../src/masking/config.js";
import { IDS, stream } from "./helpers/stream.js";

/** Every combination of the boolean options, for keepLastNBlocks -1..2. */
function allConfigs(): MaskingConfig[] {
  const out: MaskingConfig[] = [];
  for (const keepLastNBlocks of [-1, 0, 1, 2])
    for (let bits = 0; bits < 32; bits++)
      out.push({
        keepLastNBlocks,
        maskDelimiters: (bits & 1) !== 0,
        requireAssistantSection: (bits & 2) !== 0,
        compactOnSummaryEnd: (bits & 4) !== 0,
        keepLastBlockForAnswer: (bits & 8) !== 0,
        restartMode: (bits & 16) !== 0,
        maxBlockTokens: 0,
      });
  return out;
}

/**
 * The engine's view, written independently of the mask builder: an explicit set of resident positions,
 * snapshotted after each token is added and before the evictions it triggers. In restart mode the rows
 * from `recomputeFrom` to the trigger are recomputed against the cache just after the eviction.
 */
function residentSets(tokens: number[], promptLength: number, config: MaskingConfig): number[][] {
  const tracker = new BlockTracker(config, IDS);
  const resident = new Set<number>();
  const rows: number[][] = [];
  tokens.forEach((t, q) => {
    resident.add(q);
    rows.push([...resident].sort((a, b) => a - b));
    for (const ev of tracker.push(t, q < promptLength)) {
      for (let k = ev.start; k < ev.end; k++) resident.delete(k);
      if (ev.recomputeFrom !== undefined) {
        for (let r = ev.recomputeFrom; r <= q; r++) rows[r] = [...resident].filter((k) => k <= r).sort((a, b) => a - b);
      }
    }
  });
  return rows;
}

/** Random streams biased towards well-formed Memento structure, with noise and chat markers mixed in. */
const tokenStream = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: fc.constant("x") },
      { weight: 2, arbitrary: fc.constantFrom("Sxx", "xE", "MxN", "SxxExMxxN", "SxSxExEMxNMxN") },
      { weight: 1, arbitrary: fc.constantFrom("S", "E", "M", "N", "I", "A", "IA", "IxA") },
    ),
    { maxLength: 40 },
  )
  .map((parts) => stream(parts.join("")));

describe("attention patterns", () => {
  it("Stage 1 is causal", () => {
    const p = causalPattern(5);
    const m = denseMask(p);
    for (let q = 0; q < 5; q++) for (let k = 0; k < 5; k++) expect(m[q * 5 + k]).toBe(k <= q ? 1 : 0);
  });

  it("Stage 2 hides a block from every token after its <|summary_end|>, delimiters kept", () => {
    //                0123456789
    const tokens = stream("pSxxEMyNz");
    const p = mementoPattern(tokens, 1, IDS, DEFAULT_MASKING); // the defaults are Stage 2 with delimiters kept
    expect(visibleKeys(p, 6)).toEqual([0, 1, 2, 3, 4, 5, 6]); // the memento sees its block
    expect(visibleKeys(p, 7)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]); // <|summary_end|> still sees it
    expect(visibleKeys(p, 8)).toEqual([0, 1, 4, 5, 6, 7, 8]); // after: prompt, delimiters, memento
    expect(p.visibleUntil[2]).toBe(7);
    expect(p.visibleUntil[1]).toBe(NEVER);
  });

  it("restart mode rows show the memento recomputed without its block", () => {
    const tokens = stream("pSxxEMyNz");
    const cfg: MaskingConfig = {
      keepLastNBlocks: 0,
      maskDelimiters: false,
      requireAssistantSection: false,
      compactOnSummaryEnd: true,
      keepLastBlockForAnswer: false,
      restartMode: true,
      maxBlockTokens: 0,
    };
    const p = mementoPattern(tokens, 1, IDS, cfg);
    expect(visibleKeys(p, 6)).toEqual([0, 5, 6]);
    expect(visibleKeys(p, 8)).toEqual([0, 5, 6, 7, 8]);
    expect(isVisible(p, 6, 2)).toBe(false);
  });

  it("for every config, every Stage-2 row equals the engine's resident set at that step", () => {
    const configs = allConfigs();
    fc.assert(
      fc.property(tokenStream, fc.nat(), fc.constantFrom(...configs), (tokens, promptSeed, config) => {
        const promptLength = tokens.length === 0 ? 0 : promptSeed % (tokens.length + 1);
        const pattern = mementoPattern(tokens, promptLength, IDS, config);
        const expected = residentSets(tokens, promptLength, config);
        const dense = denseMask(pattern);
        const n = tokens.length;
        for (let q = 0; q < n; q++) {
          const row: number[] = [];
          for (let k = 0; k < n; k++) if (dense[q * n + k]) row.push(k);
          expect(row).toEqual(expected[q]);
        }
      }),
      { numRuns: 600 },
    );
  });

  it("with keepLastNBlocks -1 Stage 2 equals Stage 1", () => {
    const tokens = stream("IASxxEMxNSxEMxN");
    const cfg = allConfigs().find((c) => c.keepLastNBlocks === -1)!;
    expect(denseMask(mementoPattern(tokens, 3, IDS, cfg))).toEqual(denseMask(causalPattern(tokens.length)));
  });
});
