/**
 * GUARD for the llama.cpp backend's reliance on node-llama-cpp internals (pinned 3.22.1): after removing the
 * cells of positions [a, b) with the low-level `removeTokenCellsFromSequence`, the surviving tokens must keep
 * their positions (and rotated keys) and the next token must go in at its LOGICAL position p. Checked
 * numerically against the reference transformer:
 *   - logical: reference cache with [a, b) evicted, next token at p            -> must match llama.cpp;
 *   - shifted: reference cache with the survivors moved down by b - a and the
 *              next token at p - (b - a) (what `eraseContextTokenRanges` does) -> must NOT match.
 * Also: llama.cpp's own per-sequence position range and measured cells after the removal.
 * If an upgrade changes these semantics, this test fails. Skipped when the native binary cannot load.
 */
import { describe, expect, it } from "vitest";
import { llamaCppUnavailableReason, NODE_LLAMA_CPP_VERSION } from "../src/engine/backends/llamacpp.js";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import { Rng } from "../src/model/index.js";
import { exactLlamaCppSuite, peakedToyModel } from "./helpers/llama.js";

const unavailable = await llamaCppUnavailableReason();
if (unavailable) console.warn(`skipping the llama.cpp guard test: ${unavailable}`);

function maxLogitDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe.skipIf(!!unavailable)(
  `llama.cpp low-level eviction keeps logical positions (node-llama-cpp ${NODE_LLAMA_CPP_VERSION})`,
  () => {
    const model = peakedToyModel(9);
    const suite = exactLlamaCppSuite(model, 1, "memento-guard-");

    it("the next token after removing [a, b) is computed at logical position p, not p - (b - a)", async () => {
      const rng = new Rng(4);
      const n = 300; // past the sequence's 256 cells: only possible because the removal frees cells
      const tokens = Array.from({ length: n + 1 }, () => 12 + rng.int(96));
      const a = 20;
      const b = 120;
      const seq = await suite.llama.allocate();
      const ref = new ReferenceBackend(model);
      const logical = await ref.allocate();
      // Fill [0, 200), remove [a, b), then continue to p = n.
      const upto = 200;
      await suite.llama.prefill(
        seq,
        tokens.slice(0, upto),
        tokens.slice(0, upto).map((_, i) => i),
      );
      await ref.prefill(
        logical,
        tokens.slice(0, upto),
        tokens.slice(0, upto).map((_, i) => i),
      );
      expect(await suite.llama.evict(seq, a, b)).toBe(b - a);
      await ref.evict(logical, a, b);
      expect(suite.llama.positionRange(seq)).toEqual({ min: 0, max: upto - 1 }); // nothing moved
      expect(suite.llama.measuredResidentTokens()).toBe(upto - (b - a));
      for (let p = upto; p < n; p++) {
        await suite.llama.decode([{ seq, token: tokens[p], position: p }]);
        await ref.decode([{ seq: logical, token: tokens[p], position: p }]);
      }
      const p = n;
      const got = (await suite.llama.decode([{ seq, token: tokens[p], position: p }]))[0];
      const want = (await ref.decode([{ seq: logical, token: tokens[p], position: p }]))[0];
      // The shifted alternative: survivors renumbered contiguously, as eraseContextTokenRanges would leave them.
      const shiftedRef = new ReferenceBackend(model);
      const shifted = await shiftedRef.allocate();
      const kept = [...tokens.slice(0, a), ...tokens.slice(b, p + 1)];
      const wrong = await shiftedRef.prefill(
        shifted,
        kept,
        kept.map((_, i) => i),
      );
      const dLogical = maxLogitDiff(got, want);
      const dShifted = maxLogitDiff(got, wrong);
      console.log(
        `guard: |logits - logical| = ${dLogical.toExponential(2)}, |logits - shifted| = ${dShifted.toExponential(2)}`,
      );
      expect(dLogical).toBeLessThan(1e-3);
      expect(dShifted).toBeGreaterThan(100 * dLogical);
      expect(dShifted).toBeGreaterThan(1e-2);
      expect(suite.llama.positionRange(seq)).toEqual({ min: 0, max: p });
      expect(suite.llama.residentTokens(seq)).toBe(p + 1 - (b - a));
      expect(suite.llama.measuredResidentTokens()).toBe(p + 1 - (b - a));
      expect(p + 1).toBeGreaterThan(suite.llama.cellsPerSequence);
      await suite.llama.free(seq);
      expect(suite.llama.measuredResidentTokens()).toBe(0);
    }, 120_000);

    it("llama.cpp still refuses a position that does not continue the sequence (restart mode stays unsupported)", async () => {
      const seq = await suite.llama.allocate();
      await suite.llama.prefill(seq, [12, 13, 14, 15, 16], [0, 1, 2, 3, 4]);
      await suite.llama.evict(seq, 1, 3);
      // Backend-level check (before llama.cpp is called):
      await expect(suite.llama.decode([{ seq, token: 17, position: 7 }])).rejects.toThrow(/does not continue/);
      await expect(suite.llama.recompute(seq, [15, 16], [3, 4])).rejects.toThrow(/restart mode is not supported/);
      // Native level: if a future llama.cpp accepts a gap at the tail, restart mode could be supported; flag it.
      const ctx = (
        suite.llama as unknown as {
          ctx: {
            initBatch(n: number): void;
            addToBatch(s: number, p: number, t: Uint32Array, l: Uint32Array): Uint32Array;
            decodeBatch(): Promise<void>;
          };
        }
      ).ctx;
      ctx.initBatch(1);
      ctx.addToBatch(seq, 7, Uint32Array.of(17), new Uint32Array(0));
      await expect(ctx.decodeBatch()).rejects.toThrow();
      expect(suite.llama.positionRange(seq)).toEqual({ min: 0, max: 4 });
      await suite.llama.free(seq);
    }, 60_000);
  },
);
