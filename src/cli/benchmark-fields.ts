/**
 * `--field KEY=NAME` (repeatable): how a benchmark file's columns map to our problem fields, shared by the commands
 * that read benchmarks (`eval run`, `rl rollouts`). Unmapped keys are found by the usual names (eval/benchmark.ts).
 */
import { UserError } from "../errors.js";
import type { BenchmarkFields } from "../eval/benchmark.js";

const FIELD_KEYS = ["id", "prompt", "answer", "kind", "options", "tests", "subject"] as const;

export const FIELD_OPTION_FLAGS = "--field <key=name...>";
export const FIELD_OPTION_HELP = "benchmark field mapping, e.g. --field prompt=question --field answer=solution";

/** The `--field` values as a mapping; a malformed pair is a one-line UserError. */
export function parseFields(pairs: readonly string[]): BenchmarkFields {
  const out: BenchmarkFields = {};
  for (const p of pairs) {
    const m = /^([a-z]+)=(.+)$/.exec(p);
    if (!m || !(FIELD_KEYS as readonly string[]).includes(m[1]))
      throw new UserError(`--field: expected KEY=NAME with KEY one of ${FIELD_KEYS.join(", ")}, got "${p}"`);
    out[m[1] as (typeof FIELD_KEYS)[number]] = m[2];
  }
  return out;
}
