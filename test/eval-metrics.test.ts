import { describe, expect, it } from "vitest";
import {
  compareRuns,
  formatComparison,
  majAtK,
  majAtKCurve,
  majAtKProblem,
  majorityVote,
  passAt1,
  passAtK,
  passAtKOverProblems,
  seededRandom,
  standardError,
} from "../src/eval/metrics.js";

function* combos(n: number, k: number, start = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield acc.slice();
    return;
  }
  for (let i = start; i < n; i++) {
    acc.push(i);
    yield* combos(n, k, i + 1, acc);
    acc.pop();
  }
}

function binom(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

describe("pass@k", () => {
  it("matches brute-force enumeration for small n", () => {
    for (let n = 1; n <= 7; n++) {
      for (let c = 0; c <= n; c++) {
        for (let k = 1; k <= n; k++) {
          let hit = 0;
          let total = 0;
          for (const s of combos(n, k)) {
            total++;
            if (s.some((i) => i < c)) hit++; // the first c generations are the correct ones
          }
          expect(passAtK(n, c, k)).toBeCloseTo(hit / total, 12);
        }
      }
    }
  });
  it("hand values and stability for large n", () => {
    expect(passAtK(5, 2, 2)).toBeCloseTo(0.7, 12); // 1 - C(3,2)/C(5,2) = 1 - 3/10
    expect(passAtK(200, 1, 100)).toBeCloseTo(0.5, 12);
    expect(passAtK(64, 0, 8)).toBe(0);
    expect(passAtK(64, 60, 8)).toBe(1);
    const exact = 1 - Number(binom(1000 - 37, 50)) / Number(binom(1000, 50));
    expect(passAtK(1000, 37, 50)).toBeCloseTo(exact, 10);
    expect(() => passAtK(4, 5, 1)).toThrow();
    expect(() => passAtK(4, 1, 5)).toThrow();
  });
  it("pass@1 averages over generations then problems, with the standard error over problems", () => {
    const r = passAt1([
      [true, false],
      [true, true],
      [false, false, false, true],
    ]);
    expect(r.value).toBeCloseTo((0.5 + 1 + 0.25) / 3, 12);
    // values 0.5, 1, 0.25: sample variance 0.291667/2, stderr sqrt(0.145833/3)
    expect(r.stderr).toBeCloseTo(Math.sqrt(0.2916666667 / 2 / 3), 8);
    expect(r.problems).toBe(3);
    expect(standardError([0.7])).toBe(0);
    expect(
      passAtKOverProblems(
        [
          [true, false],
          [false, false],
        ],
        2,
      ).value,
    ).toBeCloseTo(0.5, 12);
    expect(() => passAtKOverProblems([[true]], 2)).toThrow();
  });
});

describe("maj@k", () => {
  const small = { answers: ["A", "A", "B"], correct: [true, true, false] };
  it("hand-computed expectation over subsets and tie-breaks", () => {
    // k=2: {0,1} A wins (1); {0,2} and {1,2} tie A/B (1/2 each) -> (1 + 0.5 + 0.5) / 3
    expect(majAtKProblem(small, 2)).toBeCloseTo(2 / 3, 12);
    expect(majAtKProblem(small, 3)).toBe(1);
    expect(majAtKProblem(small, 1)).toBeCloseTo(2 / 3, 12);
  });
  it("groups equivalent answers by normalised form", () => {
    const p = {
      answers: ["1/2", "0.5", "\\frac13", "1/3", "7", null],
      correct: [true, true, false, false, false, false],
    };
    // all six: 1/2 x2 (correct), 1/3 x2 (wrong), 7 x1, one abstention -> tie 1/2 vs 1/3
    expect(majAtKProblem(p, 6)).toBeCloseTo(0.5, 12);
    const v = majorityVote(p.answers, p.correct, seededRandom(3));
    expect(v.tied).toBe(2);
    expect(v.votes).toBe(2);
    expect(v.expectedCorrect).toBe(0.5);
    // maj@1 equals pass@1 over generations (an abstention counts as wrong)
    expect(majAtKProblem(p, 1)).toBeCloseTo(2 / 6, 12);
  });
  it("'first' mode breaks ties with the seeded PRNG, reproducibly", () => {
    const p = { answers: ["1", "2"], correct: [true, false] };
    const picks = Array.from({ length: 40 }, (_, s) => majAtKProblem(p, 2, { mode: "first", seed: s }));
    expect(new Set(picks)).toEqual(new Set([0, 1]));
    expect(majAtKProblem(p, 2, { mode: "first", seed: 7 })).toBe(majAtKProblem(p, 2, { mode: "first", seed: 7 }));
    expect(majAtKProblem({ answers: ["1", "1", "2"], correct: [true, true, false] }, 2, { mode: "first" })).toBe(1);
  });
  it("sampled expectation agrees with the hypergeometric value and is reproducible", () => {
    // 64 generations: 40 say "5" (correct), 24 say "6". maj@32 = P(X > 16) + P(X = 16) / 2, X ~ Hypergeom(64, 40, 32).
    const answers = [...Array(40).fill("5"), ...Array(24).fill("6")];
    const correct = answers.map((a) => a === "5");
    const total = binom(64, 32);
    let exact = 0;
    for (let x = 16; x <= 32; x++) {
      const px = Number(binom(40, x) * binom(24, 32 - x)) / Number(total);
      exact += x === 16 ? px / 2 : px;
    }
    const est = majAtKProblem({ answers, correct }, 32, { trials: 4000, seed: 11 });
    expect(Math.abs(est - exact)).toBeLessThan(0.02);
    expect(majAtKProblem({ answers, correct }, 32, { trials: 500, seed: 5 })).toBe(
      majAtKProblem({ answers, correct }, 32, { trials: 500, seed: 5 }),
    );
  });
  it("averages over problems and draws a curve", () => {
    const probs = [small, { answers: ["x", "y", "y"], correct: [true, false, false] }];
    // second problem: k=3 -> y wins (0); k=1 -> 1/3
    expect(majAtK(probs, 3).value).toBeCloseTo(0.5, 12);
    const curve = majAtKCurve(probs, [1, 3]);
    expect(curve.map((c) => c.k)).toEqual([1, 3]);
    expect(curve[0].value).toBeCloseTo((2 / 3 + 1 / 3) / 2, 12);
    expect(() => majAtK(probs, 4)).toThrow();
  });
});

describe("compareRuns", () => {
  it("builds Table-1 rows: accuracy delta in points and KV ratios", () => {
    const vanilla = [
      {
        benchmark: "AIME",
        problems: [
          {
            id: "a",
            correct: [true, false],
            kv: [
              { peak: 1000, auc: 5000 },
              { peak: 3000, auc: 7000 },
            ],
          },
          {
            id: "b",
            correct: [false, false],
            kv: [
              { peak: 2000, auc: 6000 },
              { peak: 2000, auc: 6000 },
            ],
          },
          { id: "only-vanilla", correct: [true, true] },
        ],
      },
      { benchmark: "GPQA", problems: [{ id: "g", correct: [true] }] },
    ];
    const memento = [
      {
        benchmark: "AIME",
        problems: [
          {
            id: "b",
            correct: [true, false],
            kv: [
              { peak: 500, auc: 1000 },
              { peak: 700, auc: 2000 },
            ],
          },
          {
            id: "a",
            correct: [true, true],
            kv: [
              { peak: 500, auc: 2000 },
              { peak: 700, auc: 1000 },
            ],
          },
        ],
      },
    ];
    const c = compareRuns(vanilla, memento, { base: "vanilla", other: "memento" });
    expect(c.rows).toHaveLength(1);
    const r = c.rows[0];
    expect(r.problems).toBe(2);
    expect(r.base.accuracy).toBeCloseTo(25, 12); // (0.5 + 0) / 2
    expect(r.other.accuracy).toBeCloseTo(75, 12); // (1 + 0.5) / 2
    expect(r.deltaPoints).toBeCloseTo(50, 12);
    expect(r.deltaStderr).toBeCloseTo(0, 12); // both problems improved by 0.5
    expect(r.base.peakKv).toBe(2000);
    expect(r.other.peakKv).toBe(600);
    expect(r.peakRatio).toBeCloseTo(0.3, 12);
    expect(r.aucRatio).toBeCloseTo(1500 / 6000, 12);
    const table = formatComparison(c);
    expect(table).toContain("| AIME | 2 | 25.0 ± 25.0 | 75.0 ± 25.0 | +50.0 ± 0.0 | 2000.0 | 600.0 | 0.30× |");
  });
});
