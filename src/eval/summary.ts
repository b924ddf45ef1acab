/**
 * The summary of an evaluation run (results.json) and its plain-text table.
 *
 * Policy:
 * 1. Failed generations are not answers: pass@k and maj@k are over completed generations, `errors` counts the
 *    rest, and a run with no completed generation shows "-" for its accuracy, not 0.
 * 2. k is reported for powers of two up to n, and n (`reportedKs`).
 * 3. Token counts are the server's (`usage`) where it reported them, checked against our replay (usage.ts).
 */
import { majAtK, passAt1, passAtKOverProblems, type VoteProblem } from "./metrics.js";
import type { BenchmarkProblem, Generation, RunSummary } from "./types.js";
import { formatKvBytes } from "./kv-units.js";
import { checkUsage } from "./usage.js";

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** The k values reported: powers of two up to n, and n itself. */
export function reportedKs(n: number): number[] {
  const ks: number[] = [];
  for (let k = 1; k <= n; k *= 2) ks.push(k);
  if (ks[ks.length - 1] !== n) ks.push(n);
  return ks;
}

/**
 * Accuracy and KV of one run. Problems are scored over their completed generations (failed ones are counted
 * apart in `errors`, never as wrong answers); a problem with none completed is left out of pass@k; pass@k and
 * maj@k need k completed generations per problem.
 */
export function summarizeRun(
  label: string,
  problems: readonly BenchmarkProblem[],
  generations: readonly Generation[],
  n: number,
): RunSummary {
  const byProblem = new Map<string, Generation[]>();
  for (const p of problems) byProblem.set(p.id, []);
  for (const g of generations) if (g.status === "ok") byProblem.get(g.problemId)?.push(g);
  const scored = [...byProblem.values()].filter((gs) => gs.length > 0);
  const correctness = scored.map((gs) => gs.map((g) => g.correct === true));
  const p1 = scored.length ? passAt1(correctness) : { value: 0, stderr: 0, problems: 0 };
  const passAtK: Record<string, number> = {};
  const majAtKOut: Record<string, number> = {};
  const votes: VoteProblem[] = scored.map((gs) => ({
    answers: gs.map((g) => g.voteKey ?? null),
    correct: gs.map((g) => g.correct === true),
  }));
  for (const k of reportedKs(n)) {
    const eligible = correctness.filter((c) => c.length >= k);
    if (eligible.length === 0) continue;
    passAtK[String(k)] = passAtKOverProblems(eligible, k).value;
    // Vote keys are already normalised answers: group them as they are.
    majAtKOut[String(k)] = majAtK(
      votes.filter((v) => v.answers.length >= k),
      k,
      { key: (a) => a },
    ).value;
  }
  const ok = generations.filter((g) => g.status === "ok" && g.kv);
  const counted = generations.filter((g) => g.status === "ok" && g.usage && g.usage.completionTokens > 0);
  const usage = checkUsage(generations);
  return {
    label,
    problems: problems.length,
    generations: generations.length,
    completed: generations.filter((g) => g.status === "ok").length,
    errors: generations.filter((g) => g.status === "error").length,
    pass1: p1.value,
    pass1StdErr: p1.stderr,
    passAtK,
    majAtK: majAtKOut,
    meanPeakTokens: mean(ok.map((g) => g.kv!.memento.peakTokens)),
    meanAucTokens: mean(ok.map((g) => g.kv!.memento.aucTokens)),
    meanPeakGB: mean(ok.map((g) => g.kv!.memento.peakGB)),
    meanAucGBxKtok: mean(ok.map((g) => g.kv!.memento.aucGBxKtok)),
    vanillaMeanPeakTokens: mean(ok.map((g) => g.kv!.vanilla.peakTokens)),
    vanillaMeanAucTokens: mean(ok.map((g) => g.kv!.vanilla.aucTokens)),
    meanCompression: mean(ok.map((g) => g.kv!.compression)),
    meanBlocks: mean(ok.map((g) => g.kv!.blocks)),
    ...(counted.length > 0 ? { meanUsageCompletionTokens: mean(counted.map((g) => g.usage!.completionTokens)) } : {}),
    usageMismatches: usage.mismatches,
  };
}

/** A plain-text table of run summaries (one row per run). */
export function formatSummaryTable(summaries: readonly RunSummary[]): string {
  const head = [
    "run",
    "problems",
    "gens",
    "errors",
    "pass@1",
    "± se",
    "maj@n",
    "peak KV tok",
    "AUC tok",
    "peak KV",
    "vanilla peak tok",
    "blocks",
    "compress",
  ];
  const rows = summaries.map((s) => {
    const ks = Object.keys(s.majAtK).map(Number);
    const maj = ks.length ? s.majAtK[String(Math.max(...ks))] : NaN;
    // No completed generation: no accuracy to show (0.0 would read as "all wrong").
    const scored = (s.completed ?? s.generations - s.errors) > 0;
    const kv = (text: string) => (scored ? text : "-");
    return [
      s.label,
      String(s.problems),
      String(s.generations),
      String(s.errors),
      kv((100 * s.pass1).toFixed(1)),
      kv((100 * s.pass1StdErr).toFixed(1)),
      Number.isNaN(maj) ? "-" : (100 * maj).toFixed(1),
      kv(s.meanPeakTokens.toFixed(0)),
      kv(s.meanAucTokens.toFixed(0)),
      kv(formatKvBytes(s.meanPeakGB)),
      kv(s.vanillaMeanPeakTokens.toFixed(0)),
      kv(s.meanBlocks.toFixed(1)),
      kv(s.meanCompression.toFixed(3)),
    ];
  });
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}
