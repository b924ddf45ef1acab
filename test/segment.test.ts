import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  blockSizes,
  blocksSatisfyMinTokens,
  cutsToBlocks,
  segmentBlocks,
  segmentBlocksApprox,
  segmentationObjective,
  DEFAULT_SEGMENT_WORK_BUDGET,
  type Block,
  type SegmentOptions,
} from "../src/data/segment.js";
import { estimateSegmentWork, groupSentences, refineCuts } from "../src/data/segment-budget.js";
import { UserError } from "../src/errors.js";
import { xorshiftUniforms } from "./helpers/xorshift.js";

// ---------------------------------------------------------------------------------------------------------------
// Brute force: every one of the 2^(n-1) segmentations, with the same K-range and tie rules as segmentBlocks.
// ---------------------------------------------------------------------------------------------------------------

interface Brute {
  objective: number;
  blocks: Block[];
  feasible: boolean;
  /** K values with a feasible segmentation. */
  feasibleKs: number[];
}

function bruteForce(opts: SegmentOptions): Brute {
  const c = opts.tokenCounts;
  const s = opts.scores;
  const m = opts.minBlockTokens ?? 200;
  const lambda = opts.varianceWeight ?? 0.5;
  const minBlocks = opts.minBlocks ?? 3;
  const n = c.length;
  const T = c.reduce((a, b) => a + b, 0);
  type Cand = { blocks: Block[]; K: number; Q: number; cuts: number[]; cmp: number };
  const cands: Cand[] = [];
  for (let mask = 0; mask < 2 ** (n - 1); mask++) {
    const cuts: number[] = [];
    for (let i = 0; i < n - 1; i++) if (mask & (1 << i)) cuts.push(i);
    const blocks = cutsToBlocks(cuts, n);
    if (!blocksSatisfyMinTokens(c, blocks, m)) continue;
    const sizes = blockSizes(c, blocks);
    const K = blocks.length;
    // Same (S, Q) summation order as the DP (suffix first), so integer inputs give bit-identical comparisons.
    let S = 0;
    for (let k = cuts.length - 1; k >= 0; k--) S = s[cuts[k]] + S;
    let Q = 0;
    for (let k = K - 1; k >= 0; k--) Q = sizes[k] * sizes[k] + Q;
    const cmp = T > 0 ? S / K - (lambda * Math.sqrt(Math.max(0, K * Q - T * T))) / T : S / K;
    cands.push({ blocks, K, Q, cuts, cmp });
  }
  const feasibleKs = [...new Set(cands.map((x) => x.K))].sort((a, b) => a - b);
  const big = cands.filter((x) => x.K >= minBlocks);
  const pool = big.length > 0 ? big : cands;
  if (pool.length === 0) return { objective: 0, blocks: [[0, n - 1]], feasible: false, feasibleKs };
  // Tie rule: fewer blocks, then smaller sum of squares, then lexicographically earliest cuts.
  pool.sort((a, b) => {
    if (a.K !== b.K) return a.K - b.K;
    if (a.Q !== b.Q) return a.Q - b.Q;
    for (let t = 0; t < a.cuts.length; t++) if (a.cuts[t] !== b.cuts[t]) return a.cuts[t] - b.cuts[t];
    return 0;
  });
  let best = pool[0];
  for (const x of pool) if (x.cmp > best.cmp + 1e-12) best = x;
  // The true maximum of the paper's objective over the pool (directly computed), for the objective check.
  let objective = -Infinity;
  for (const x of pool) objective = Math.max(objective, segmentationObjective(c, s, x.blocks, lambda));
  return { objective, blocks: best.blocks, feasible: true, feasibleKs };
}

/** Checks the structural promises of a result. */
function checkResult(opts: SegmentOptions, r: ReturnType<typeof segmentBlocks>): void {
  const n = opts.tokenCounts.length;
  let next = 0;
  for (const [a, b] of r.blocks) {
    expect(a).toBe(next);
    expect(b).toBeGreaterThanOrEqual(a);
    next = b + 1;
  }
  expect(next).toBe(n);
  // The reported objective is exactly what the returned blocks achieve.
  expect(r.objective).toBe(segmentationObjective(opts.tokenCounts, opts.scores, r.blocks, opts.varianceWeight ?? 0.5));
  if (r.feasible) expect(blocksSatisfyMinTokens(opts.tokenCounts, r.blocks, opts.minBlockTokens ?? 200)).toBe(true);
}

const scoreArb = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.integer({ min: 0, max: 6 }).map((x) => x / 2),
  fc.double({ min: 0, max: 3, noNaN: true }),
  fc.double({ min: -1, max: 3, noNaN: true }),
);

function instanceArb(maxN: number, scores: fc.Arbitrary<number> = scoreArb): fc.Arbitrary<SegmentOptions> {
  return fc
    .record({
      n: fc.integer({ min: 1, max: maxN }),
      counts: fc.array(fc.integer({ min: 0, max: 250 }), { minLength: maxN, maxLength: maxN }),
      scores: fc.array(scores, { minLength: maxN, maxLength: maxN }),
      minBlockTokens: fc.constantFrom(0, 50, 100, 200, 300),
      varianceWeight: fc.constantFrom(0, 0.25, 0.5, 1, 2),
      minBlocks: fc.integer({ min: 1, max: 5 }),
    })
    .map(({ n, counts, scores, ...rest }) => ({
      tokenCounts: counts.slice(0, n),
      scores: scores.slice(0, n - 1),
      ...rest,
    }));
}

function randomTrace(rand: () => number, n: number, score: () => number): SegmentOptions {
  return {
    tokenCounts: Array.from({ length: n }, () => 10 + Math.floor(rand() * 141)),
    scores: Array.from({ length: n - 1 }, score),
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe("segmentationObjective", () => {
  it("computes (1/K) * sum of cut scores - lambda * population std / mean", () => {
    // sizes 200, 400: mean 300, population std 100, cv 1/3; one cut with score 3 over K = 2
    const c = [100, 100, 400];
    const s = [1, 3];
    expect(
      segmentationObjective(c, s, [
        [0, 1],
        [2, 2],
      ]),
    ).toBeCloseTo(3 / 2 - 0.5 / 3, 14);
    expect(
      segmentationObjective(
        c,
        s,
        [
          [0, 1],
          [2, 2],
        ],
        2,
      ),
    ).toBeCloseTo(3 / 2 - 2 / 3, 14);
    // three blocks: sizes 100, 100, 400 -> mean 200, std sqrt((100^2+100^2+200^2)/3) = sqrt(20000)
    expect(
      segmentationObjective(c, s, [
        [0, 0],
        [1, 1],
        [2, 2],
      ]),
    ).toBeCloseTo(4 / 3 - (0.5 * Math.sqrt(20000)) / 200, 14);
  });

  it("is 0 for a single block and for an all-zero trace", () => {
    expect(segmentationObjective([5, 7], [3], [[0, 1]])).toBe(0);
    expect(
      segmentationObjective(
        [0, 0],
        [2],
        [
          [0, 0],
          [1, 1],
        ],
      ),
    ).toBe(1); // mean 0: std/mean taken as 0
  });

  it("rejects blocks that do not cover the sentences contiguously", () => {
    expect(() =>
      segmentationObjective(
        [1, 2, 3],
        [0, 0],
        [
          [0, 0],
          [2, 2],
        ],
      ),
    ).toThrow(UserError);
    expect(() => segmentationObjective([1, 2, 3], [0, 0], [[0, 1]])).toThrow(UserError);
    expect(() => segmentationObjective([1, 2, 3], [0, 0], [])).toThrow(UserError);
  });
});

describe("segmentBlocks is exact (vs brute force over all 2^(n-1) segmentations)", () => {
  it("matches the brute-force maximum on random inputs, n <= 12", () => {
    fc.assert(
      fc.property(instanceArb(12), (opts) => {
        const r = segmentBlocks(opts);
        const b = bruteForce(opts);
        // without branch and bound too, so the convex-chain DP itself is checked, not only the pruned search
        const plain = segmentBlocks({ ...opts, branchAndBound: false });
        expect(Math.abs(plain.objective - b.objective)).toBeLessThanOrEqual(1e-9);
        expect(r.exact).toBe(true);
        expect(r.feasible).toBe(b.feasible);
        expect(Math.abs(r.objective - b.objective)).toBeLessThanOrEqual(1e-9);
        checkResult(opts, r);
        // K >= minBlocks whenever some feasible segmentation has that many blocks
        if (b.feasibleKs.some((k) => k >= (opts.minBlocks ?? 3)))
          expect(r.blocks.length).toBeGreaterThanOrEqual(opts.minBlocks ?? 3);
      }),
      { numRuns: 600, seed: 20260101 },
    );
  });

  it("matches the brute-force maximum at n = 14", () => {
    fc.assert(
      fc.property(
        fc.record({
          counts: fc.array(fc.integer({ min: 10, max: 150 }), { minLength: 14, maxLength: 14 }),
          scores: fc.array(scoreArb, { minLength: 13, maxLength: 13 }),
          minBlockTokens: fc.constantFrom(0, 100, 200),
        }),
        ({ counts, scores, minBlockTokens }) => {
          const opts = { tokenCounts: counts, scores, minBlockTokens };
          const r = segmentBlocks(opts);
          const b = bruteForce(opts);
          expect(Math.abs(r.objective - b.objective)).toBeLessThanOrEqual(1e-9);
          expect(
            Math.abs(segmentBlocks({ ...opts, branchAndBound: false }).objective - b.objective),
          ).toBeLessThanOrEqual(1e-9);
          checkResult(opts, r);
        },
      ),
      { numRuns: 40, seed: 7 },
    );
  });

  it("breaks ties like the documented rule (same blocks as the brute force) on integer inputs", () => {
    fc.assert(
      fc.property(instanceArb(10, fc.integer({ min: 0, max: 3 })), (opts) => {
        const r = segmentBlocks(opts);
        expect(r.blocks).toEqual(bruteForce(opts).blocks);
      }),
      { numRuns: 600, seed: 99 },
    );
  });

  it("gives the same answer with branch and bound off", () => {
    fc.assert(
      fc.property(instanceArb(30), (opts) => {
        const a = segmentBlocks(opts);
        const b = segmentBlocks({ ...opts, branchAndBound: false });
        expect(a.blocks).toEqual(b.blocks);
        expect(a.objective).toBe(b.objective);
      }),
      { numRuns: 200, seed: 3 },
    );
  });

  it("is deterministic", () => {
    const rand = xorshiftUniforms(11);
    const opts = randomTrace(rand, 200, () => Math.floor(rand() * 4));
    expect(segmentBlocks(opts)).toEqual(segmentBlocks(opts));
  });
});

describe("segmentBlocks edge cases", () => {
  it("n = 1: one block, objective 0", () => {
    expect(segmentBlocks({ tokenCounts: [500], scores: [] })).toMatchObject({
      blocks: [[0, 0]],
      objective: 0,
      exact: true,
      feasible: true,
    });
    expect(segmentBlocks({ tokenCounts: [10], scores: [] })).toMatchObject({
      blocks: [[0, 0]],
      objective: 0,
      feasible: false,
    });
  });

  it("all sentences tiny (total below minBlockTokens): one block, objective 0, feasible false", () => {
    const r = segmentBlocks({ tokenCounts: [10, 20, 30, 40], scores: [3, 3, 3] });
    expect(r).toMatchObject({ blocks: [[0, 3]], objective: 0, exact: true, feasible: false });
  });

  it("minBlocks not reachable: best feasible segmentation with fewer blocks", () => {
    // K = 2 (cut at score 3, equal halves): 3/2 - 0 = 1.5 beats K = 1 (0)
    expect(segmentBlocks({ tokenCounts: [300, 300], scores: [3], minBlocks: 3 })).toMatchObject({
      blocks: [
        [0, 0],
        [1, 1],
      ],
      objective: 1.5,
      feasible: true,
    });
    // K = 2: 0/2 - 0.5 * (400/600) < 0, so the single block (objective 0) wins the fallback
    expect(segmentBlocks({ tokenCounts: [200, 1000], scores: [0], minBlocks: 3 })).toMatchObject({
      blocks: [[0, 1]],
      objective: 0,
    });
  });

  it("prefers >= minBlocks even when fewer blocks would score higher", () => {
    // K = 2 at the score-3 boundary scores 1.5 - small; K >= 3 must cut at the score-0 boundary too
    const opts = { tokenCounts: [300, 300, 300], scores: [0, 3] };
    const r = segmentBlocks(opts);
    expect(r.blocks).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
    expect(r.objective).toBeCloseTo(1, 14);
    const free = segmentBlocks({ ...opts, minBlocks: 1 });
    expect(free.blocks).toEqual([
      [0, 1],
      [2, 2],
    ]);
    expect(free.objective).toBeCloseTo(1.5 - 0.5 * (150 / 450), 14);
  });

  it("zero-score boundaries: only balance counts, objective <= 0", () => {
    const opts = { tokenCounts: [250, 250, 250, 250, 10], scores: [0, 0, 0, 0] };
    const r = segmentBlocks(opts);
    expect(r.objective).toBeLessThanOrEqual(0);
    expect(Math.abs(r.objective - bruteForce(opts).objective)).toBeLessThanOrEqual(1e-12);
    expect(r.blocks).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
      [3, 4],
    ]);
    // perfectly balanced blocks score exactly 0
    expect(segmentBlocks({ tokenCounts: [100, 100, 100, 100, 100, 100], scores: [0, 0, 0, 0, 0] })).toMatchObject({
      blocks: [
        [0, 1],
        [2, 3],
        [4, 5],
      ],
      objective: 0,
    });
  });

  it("ties: same (S, Q) -> earliest cuts; equal objective -> smaller sum of squares, then fewer blocks", () => {
    // 7 x 100 tokens, min 200, at least 3 blocks: only K = 3, sizes {200, 200, 300} in three orders, all tied
    const r = segmentBlocks({ tokenCounts: [100, 100, 100, 100, 100, 100, 100], scores: [0, 0, 0, 0, 0, 0] });
    expect(r.blocks).toEqual([
      [0, 1],
      [2, 3],
      [4, 6],
    ]);
    // lambda = 0 and all-zero scores: every segmentation scores 0 -> fewest blocks
    expect(
      segmentBlocks({ tokenCounts: [200, 200, 200, 200], scores: [0, 0, 0], varianceWeight: 0, minBlocks: 1 }).blocks,
    ).toEqual([[0, 3]]);
    // lambda = 0, K >= 2: cut 200|600, 400|400, 600|200 all score 0 -> the most balanced one
    expect(
      segmentBlocks({ tokenCounts: [200, 200, 200, 200], scores: [0, 0, 0], varianceWeight: 0, minBlocks: 2 }).blocks,
    ).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  it("the 1/K factor applies to the sum over the K-1 cuts, as stated", () => {
    // four 200-token sentences, every boundary 3: K = 4 scores 9/4, K = 3 scores 6/3 - cv
    const r = segmentBlocks({ tokenCounts: [200, 200, 200, 200], scores: [3, 3, 3] });
    expect(r.blocks.length).toBe(4);
    expect(r.objective).toBe(9 / 4);
  });

  it("minBlockTokens 0 and zero-token sentences are handled", () => {
    const opts = { tokenCounts: [0, 0, 0], scores: [1, 2], minBlockTokens: 0, minBlocks: 1 };
    const r = segmentBlocks(opts);
    // mean 0 -> std/mean = 0; K = 3 (3/3) and K = 2 cutting at score 2 (2/2) tie at 1 -> fewer blocks
    expect(r.blocks).toEqual([
      [0, 1],
      [2, 2],
    ]);
    expect(r.objective).toBe(1);
  });

  it("safety cap: a tiny maxFrontSize still returns a valid segmentation, flagged exact: false when it bites", () => {
    const rand = xorshiftUniforms(5);
    const opts = { ...randomTrace(rand, 120, () => rand() * 3), branchAndBound: false };
    const full = segmentBlocks(opts);
    expect(full.exact).toBe(true);
    expect(full.stats!.maxFront).toBeGreaterThan(2);
    const capped = segmentBlocks({ ...opts, maxFrontSize: 2 });
    expect(capped.exact).toBe(false);
    checkResult(opts, capped);
    expect(capped.objective).toBeLessThanOrEqual(full.objective + 1e-12);
    expect(capped.objective).toBeGreaterThanOrEqual(segmentBlocksApprox(opts).objective);
  });
});

describe("input validation", () => {
  const bad: [string, unknown, RegExp][] = [
    ["wrong scores length", { tokenCounts: [1, 2, 3], scores: [1] }, /scores: .*tokenCounts\.length - 1/],
    ["negative count", { tokenCounts: [1, -2], scores: [1] }, /tokenCounts\.1: must be a finite number >= 0/],
    ["infinite score", { tokenCounts: [1, 2], scores: [Infinity] }, /scores\.0/],
    ["NaN count", { tokenCounts: [NaN], scores: [] }, /tokenCounts\.0/],
    ["empty", { tokenCounts: [], scores: [] }, /tokenCounts: must hold at least one sentence/],
    ["minBlocks 0", { tokenCounts: [1], scores: [], minBlocks: 0 }, /minBlocks: must be >= 1/],
    ["minBlocks 1.5", { tokenCounts: [1], scores: [], minBlocks: 1.5 }, /minBlocks: must be an integer/],
    ["negative lambda", { tokenCounts: [1], scores: [], varianceWeight: -1 }, /varianceWeight/],
    ["unknown key", { tokenCounts: [1], scores: [], minBlockToken: 5 }, /minBlockToken/],
    ["string counts", { tokenCounts: "1,2", scores: [] }, /tokenCounts/],
    ["not an object", [1, 2], /segment input/],
  ];
  for (const [name, input, re] of bad) {
    it(`rejects ${name} with a one-line UserError`, () => {
      let err: unknown;
      try {
        segmentBlocks(input as SegmentOptions);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/^segment input: /);
      expect(msg).toMatch(re);
      expect(msg).not.toContain("\n");
    });
  }
});

describe("exact vs the approximate single-best-state DP", () => {
  it("a small instance where keeping one state per (sentence, K) loses the optimum", () => {
    const opts = {
      tokenCounts: [150, 200, 150, 400, 200, 100, 100, 250, 150, 200],
      scores: [0, 0, 1, 2, 2, 0, 2, 3, 0],
    };
    const exact = segmentBlocks(opts);
    const approx = segmentBlocksApprox(opts);
    expect(exact.objective).toBeCloseTo(bruteForce(opts).objective, 12);
    expect(exact.blocks).toEqual([
      [0, 2],
      [3, 3],
      [4, 6],
      [7, 7],
      [8, 9],
    ]);
    expect(approx.blocks).toEqual([
      [0, 2],
      [3, 3],
      [4, 4],
      [5, 6],
      [7, 7],
      [8, 9],
    ]);
    expect(exact.objective - approx.objective).toBeGreaterThan(9e-4);
  });

  it("is never worse and strictly better on some random traces", () => {
    const rand = xorshiftUniforms(2026);
    // LLM-like score mix: mostly 0/1, some 2/3, some half-integers from averaging two passes
    const score = () => {
      const u = rand();
      const base = u < 0.6 ? 0 : u < 0.85 ? 1 : u < 0.95 ? 2 : 3;
      return rand() < 0.3 ? Math.min(3, base + 0.5) : base;
    };
    let better = 0;
    let maxGap = 0;
    let sumGap = 0;
    const trials = 150;
    for (let t = 0; t < trials; t++) {
      const opts = randomTrace(rand, 40 + Math.floor(rand() * 120), score);
      const e = segmentBlocks(opts);
      const a = segmentBlocksApprox(opts);
      checkResult(opts, a);
      expect(e.objective).toBeGreaterThanOrEqual(a.objective - 1e-12);
      const gap = e.objective - a.objective;
      if (gap > 1e-9) {
        better++;
        sumGap += gap;
        maxGap = Math.max(maxGap, gap);
      }
    }
    console.log(
      `exact vs approximate DP: strictly better on ${better}/${trials} traces, mean gap ${(better ? sumGap / better : 0).toExponential(2)}, max gap ${maxGap.toExponential(2)}`,
    );
    expect(better).toBeGreaterThan(0);
  });
});

describe("runtime on realistic sizes", () => {
  it("n = 400 sentences (10-150 tokens), integer and half-integer scores: exact and fast", () => {
    const rand = xorshiftUniforms(400);
    const kinds: [string, () => number][] = [
      ["integer", () => Math.floor(rand() * 4)],
      ["half-integer", () => Math.floor(rand() * 7) / 2],
      ["real", () => rand() * 3],
    ];
    for (const [name, score] of kinds) {
      const times: number[] = [];
      for (let t = 0; t < 5; t++) {
        const opts = randomTrace(rand, 400, score);
        const t0 = performance.now();
        const r = segmentBlocks(opts);
        times.push(performance.now() - t0);
        expect(r.exact).toBe(true);
        checkResult(opts, r);
      }
      console.log(`n=400 ${name} scores: ${times.map((x) => x.toFixed(0)).join(", ")} ms`);
      expect(Math.max(...times)).toBeLessThan(5000);
    }
  });
});

describe("work budget: exact where it fits, a refined coarse grid beyond, and the output says which", () => {
  const equal = (n: number): SegmentOptions => ({
    tokenCounts: Array.from({ length: n }, () => 25),
    scores: Array.from({ length: n - 1 }, () => 1),
  });

  it("20,000 equal sentences: bounded work, a valid segmentation marked coarse, with its budget", () => {
    const opts = { ...equal(20_000), workBudget: 2_000_000 };
    const t0 = performance.now();
    const r = segmentBlocks(opts);
    const ms = performance.now() - t0;
    expect([r.method, r.exact]).toEqual(["coarse", false]);
    expect(r.budget?.estimatedWork).toBeGreaterThan(1e11); // the exact DP would be hours
    expect(r.budget?.work).toBeLessThanOrEqual(2 * 2_000_000);
    expect(r.budget?.groups).toBeLessThan(20_000);
    checkResult(opts, r);
    expect(r.blocks.length).toBeGreaterThanOrEqual(3);
    expect(ms).toBeLessThan(10_000);
  });

  it("the default budget keeps realistic traces exact: 2,000 sentences of 5-45 tokens are estimated well within it", () => {
    const rand = xorshiftUniforms(2000);
    const opts = { ...randomTrace(rand, 2000, () => Math.floor(rand() * 4)) };
    opts.tokenCounts = opts.tokenCounts.map(() => 5 + Math.floor(rand() * 41));
    expect(estimateSegmentWork(prefix(opts.tokenCounts), 200)).toBeLessThan(0.75 * DEFAULT_SEGMENT_WORK_BUDGET);
    // ...while 20,000 such sentences are estimated far beyond it.
    const big = Array.from({ length: 20_000 }, () => 5 + Math.floor(rand() * 41));
    expect(estimateSegmentWork(prefix(big), 200)).toBeGreaterThan(100 * DEFAULT_SEGMENT_WORK_BUDGET);
  });

  it("when the estimate fits the answer is exact and reports the work it spent", () => {
    const rand = xorshiftUniforms(77);
    const opts = randomTrace(rand, 120, () => Math.floor(rand() * 4));
    const r = segmentBlocks(opts);
    expect([r.method, r.exact]).toEqual(["exact", true]);
    expect(r.budget?.workBudget).toBe(DEFAULT_SEGMENT_WORK_BUDGET);
    expect(r.budget?.work).toBeGreaterThanOrEqual(r.budget?.estimatedWork ?? Infinity);
    expect(r.budget?.groups).toBeUndefined();
  });

  it("a budget below the estimate forces the coarse grid: valid, never above the exact optimum, close to it", () => {
    const rand = xorshiftUniforms(5);
    for (let t = 0; t < 4; t++) {
      const opts = randomTrace(rand, 300, () => Math.floor(rand() * 4));
      const exact = segmentBlocks(opts);
      const coarse = segmentBlocks({ ...opts, workBudget: Math.floor((exact.budget?.estimatedWork ?? 0) / 20) });
      expect([coarse.method, coarse.exact]).toEqual(["coarse", false]);
      checkResult(opts, coarse);
      expect(coarse.objective).toBeLessThanOrEqual(exact.objective + 1e-12);
      expect(coarse.objective).toBeGreaterThan(exact.objective - 0.05 * Math.abs(exact.objective));
    }
  });

  it("the exact solver also stops at the budget when its own DP outgrows the estimate", () => {
    const rand = xorshiftUniforms(9);
    const opts = randomTrace(rand, 200, () => Math.floor(rand() * 4));
    const fits = segmentBlocks(opts);
    const estimate = fits.budget?.estimatedWork ?? 0;
    expect(fits.budget?.work).toBeGreaterThan(estimate);
    // A budget between the estimate and the work actually needed: the estimate fits, the run does not.
    const r = segmentBlocks({ ...opts, workBudget: estimate });
    expect(r.method).toBe("coarse");
    checkResult(opts, r);
  });

  it("local refinement never lowers the objective and keeps every block >= minBlockTokens", () => {
    const rand = xorshiftUniforms(11);
    for (let t = 0; t < 20; t++) {
      const opts = randomTrace(rand, 80, () => Math.floor(rand() * 4));
      const P = prefix(opts.tokenCounts);
      const start = cutsOf(segmentBlocksApprox(opts).blocks);
      const before = segmentationObjective(opts.tokenCounts, opts.scores, cutsToBlocks(start, 80));
      const { cuts } = refineCuts(start, P, opts.scores, 200, 0.5, 6);
      const blocks = cutsToBlocks(cuts, 80);
      expect(segmentationObjective(opts.tokenCounts, opts.scores, blocks)).toBeGreaterThanOrEqual(before - 1e-12);
      expect(blocksSatisfyMinTokens(opts.tokenCounts, blocks, 200)).toBe(true);
    }
  });

  it("groups follow the running token total and cover every sentence once", () => {
    const counts = Array.from({ length: 1000 }, () => 25);
    const groups = groupSentences(
      counts,
      counts.slice(1).map(() => 1),
      100,
    );
    expect(groups.length).toBe(100);
    expect(groups[0][0]).toBe(0);
    expect(groups[groups.length - 1][1]).toBe(999);
    for (let g = 1; g < groups.length; g++) expect(groups[g][0]).toBe(groups[g - 1][1] + 1);
    expect(new Set(groups.map(([a, b]) => b - a + 1))).toEqual(new Set([10]));
  });
});

function prefix(counts: readonly number[]): Float64Array {
  const P = new Float64Array(counts.length + 1);
  for (let i = 0; i < counts.length; i++) P[i + 1] = P[i] + counts[i];
  return P;
}

function cutsOf(blocks: readonly Block[]): number[] {
  return blocks.slice(0, -1).map(([, b]) => b);
}
