/**
 * One entry point for answer checking: math (extraction + equivalence), multiple choice (last letter),
 * code (run the last fenced program against tests).
 */

import { UserError } from "../errors.js";
import { extractAnswer, extractChoice, lastBoxed, type CodeLanguage } from "./extract.js";
import { isEquivalent, type EquivalenceOptions } from "./equivalence.js";
import { runResponseCode, type CodeRunOptions, type CodeRunResult, type CodeTest } from "./code-runner.js";

export type CheckKind = "math" | "choice" | "code";

export interface CheckOptions {
  kind: CheckKind;
  /** Required for kind "code". */
  tests?: readonly CodeTest[];
  /** Option letters for kind "choice". Default "ABCD". */
  letters?: string;
  /** Kind "math": symbolic comparison settings (default: worker, 5 s per check). */
  equivalence?: EquivalenceOptions;
  /** Kind "code": sandbox limits, and the language of an unlabelled block. */
  code?: CodeRunOptions & { language?: CodeLanguage };
}

export interface CheckResult {
  correct: boolean;
  /** The extracted answer (letter, math string, or program source); null when nothing was found. */
  extracted: string | null;
  /** How it was extracted and judged, e.g. "boxed/numeric", "answer_phrase", "python". */
  method: string;
  detail: string;
  /** Kind "code": the full run. */
  code?: CodeRunResult;
}

function referenceLetter(reference: string, letters: string): string {
  const t = reference.trim();
  const m = /^[([]?\s*([A-Za-z])\s*[)\]]?\.?$/.exec(t);
  if (m && letters.toUpperCase().includes(m[1].toUpperCase())) return m[1].toUpperCase();
  const c = extractChoice(t, letters);
  if (c.answer) return c.answer;
  throw new UserError(
    `multiple-choice reference is not one of the letters ${letters}: ${JSON.stringify(reference.slice(0, 80))}`,
  );
}

/** Judge one response against its reference. */
export async function checkAnswer(response: string, reference: string, options: CheckOptions): Promise<CheckResult> {
  switch (options.kind) {
    case "math": {
      const ex = extractAnswer(response);
      const ref = /\\(?:boxed|fbox)(?![a-zA-Z])/.test(reference) ? (lastBoxed(reference) ?? reference) : reference;
      if (ex.method === "empty") return { correct: false, extracted: null, method: "empty", detail: "no answer found" };
      const eq = await isEquivalent(ex.answer, ref, options.equivalence);
      return { correct: eq.equal, extracted: ex.answer, method: `${ex.method}/${eq.method}`, detail: eq.detail };
    }
    case "choice": {
      const letters = options.letters ?? "ABCD";
      const want = referenceLetter(reference, letters);
      const got = extractChoice(response, letters);
      if (!got.answer)
        return {
          correct: false,
          extracted: null,
          method: "none",
          detail: `no letter ${letters} found; reference ${want}`,
        };
      return {
        correct: got.answer === want,
        extracted: got.answer,
        method: got.method,
        detail: `${got.answer} vs ${want}`,
      };
    }
    case "code": {
      const tests = options.tests;
      if (!tests || tests.length === 0) throw new UserError("code checking needs at least one test ({input, output})");
      const r = await runResponseCode(response, tests, options.code);
      const counts = new Map<string, number>();
      for (const v of r.verdicts) counts.set(v, (counts.get(v) ?? 0) + 1);
      const summary = [...counts].map(([v, n]) => `${v} ${n}`).join(", ");
      return {
        correct: r.total > 0 && r.passed === r.total,
        extracted: r.program?.code ?? null,
        method: r.program ? r.language : "none",
        detail: r.program ? `${r.passed}/${r.total} tests passed (${summary})` : "no code block found",
        code: r,
      };
    }
    default:
      throw new UserError(`unknown check kind: ${String((options as { kind: unknown }).kind)}`);
  }
}
