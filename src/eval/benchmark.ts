import { readRecords } from "../data/readers.js";
import { UserError } from "../errors.js";
import type { AnswerKind, BenchmarkProblem } from "./types.js";

/** Which record field holds what; unset fields are auto-detected from common Hugging Face exports. */
export interface BenchmarkFields {
  id?: string;
  prompt?: string;
  answer?: string;
  kind?: string;
  options?: string;
  tests?: string;
  subject?: string;
}

const CANDIDATES: Required<Record<keyof BenchmarkFields, string[]>> = {
  id: ["id", "problem_id", "question_id", "task_id", "unique_id", "ID"],
  prompt: ["prompt", "problem", "question", "Question", "input", "question_content"],
  answer: ["answer", "expected_answer", "Answer", "label", "correct_answer", "target"],
  kind: ["kind", "type"],
  options: ["options", "choices"],
  tests: ["tests", "test_cases", "public_test_cases", "input_output"],
  subject: ["subject", "domain", "category", "source"],
};

/** Instructions appended to each problem, by kind. Ours, in the style reasoning models are evaluated with. */
export const DEFAULT_INSTRUCTIONS: Readonly<Record<AnswerKind, string>> = Object.freeze({
  math: "Reason step by step and put your final answer within \\boxed{}.",
  choice: "Reason step by step, then give the letter of the correct option as your final answer.",
  code: "Write a complete program that reads from standard input and writes to standard output, in one ```python code block.",
});

function pick(record: Record<string, unknown>, explicit: string | undefined, key: keyof BenchmarkFields): unknown {
  if (explicit !== undefined) return record[explicit];
  for (const name of CANDIDATES[key]) if (record[name] !== undefined && record[name] !== null) return record[name];
  return undefined;
}

function parseTests(value: unknown, where: string): { input: string; output: string }[] | undefined {
  if (value === undefined) return undefined;
  let v = value;
  if (typeof v === "string") {
    try {
      v = JSON.parse(v);
    } catch {
      throw new UserError(`${where}: tests field is a string but not JSON`);
    }
  }
  // {inputs: [...], outputs: [...]} (APPS style) or [{input, output}] (LiveCodeBench style).
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as { inputs?: unknown[]; outputs?: unknown[] };
    if (Array.isArray(o.inputs) && Array.isArray(o.outputs))
      return o.inputs.map((inp, i) => ({ input: String(inp), output: String(o.outputs![i] ?? "") }));
  }
  if (Array.isArray(v))
    return v.map((t) => ({
      input: String((t as { input?: unknown }).input ?? ""),
      output: String((t as { output?: unknown }).output ?? ""),
    }));
  throw new UserError(`${where}: tests must be [{input, output}] or {inputs, outputs}`);
}

/** Maps one benchmark record to a problem; `index` is its position, used as id when the record has none. */
export function toProblem(
  record: Record<string, unknown>,
  index: number,
  fields: BenchmarkFields = {},
  where = "record",
): BenchmarkProblem {
  const prompt = pick(record, fields.prompt, "prompt");
  if (typeof prompt !== "string" || !prompt.trim()) {
    throw new UserError(`${where}: no problem text (set --field prompt=NAME; tried ${CANDIDATES.prompt.join(", ")})`);
  }
  const tests = parseTests(pick(record, fields.tests, "tests"), where);
  const rawAnswer = pick(record, fields.answer, "answer");
  const answer = rawAnswer === undefined || rawAnswer === null ? "" : String(rawAnswer);
  const options = pick(record, fields.options, "options");
  const explicitKind = pick(record, fields.kind, "kind");
  let kind: AnswerKind;
  if (explicitKind === "math" || explicitKind === "choice" || explicitKind === "code") kind = explicitKind;
  else if (tests && tests.length > 0) kind = "code";
  else if (/^\(?[A-Da-d]\)?$/.test(answer.trim()) || Array.isArray(options)) kind = "choice";
  else kind = "math";
  if (kind !== "code" && !answer.trim()) throw new UserError(`${where}: no reference answer (set --field answer=NAME)`);
  let text = prompt.trim();
  if (Array.isArray(options))
    text += "\n\n" + options.map((o, i) => `${String.fromCharCode(65 + i)}) ${String(o)}`).join("\n");
  const id = pick(record, fields.id, "id");
  const subject = pick(record, fields.subject, "subject");
  return {
    id: id === undefined ? String(index) : String(id),
    prompt: text,
    answer: kind === "choice" ? answer.trim().replace(/[()]/g, "").toUpperCase() : answer,
    kind,
    ...(tests ? { tests } : {}),
    ...(typeof subject === "string" ? { subject } : {}),
  };
}

/** The text sent as the user message: the problem plus the instruction for its kind (or a template). */
export function renderPrompt(problem: BenchmarkProblem, template?: string): string {
  if (template) return template.replaceAll("{problem}", problem.prompt);
  return `${problem.prompt}\n\n${DEFAULT_INSTRUCTIONS[problem.kind]}`;
}

/** Reads a JSONL or Parquet benchmark; ids must be unique (resume keys on them). */
export async function loadBenchmark(
  path: string,
  fields: BenchmarkFields = {},
  limit?: number,
): Promise<BenchmarkProblem[]> {
  const problems: BenchmarkProblem[] = [];
  const seen = new Set<string>();
  for await (const { record, index, line } of readRecords(path)) {
    if (limit !== undefined && problems.length >= limit) break;
    const where = `${path}:${line ?? index + 1}`;
    const p = toProblem(record as Record<string, unknown>, index, fields, where);
    if (seen.has(p.id)) throw new UserError(`${where}: duplicate problem id "${p.id}"`);
    seen.add(p.id);
    problems.push(p);
  }
  if (problems.length === 0) throw new UserError(`${path}: no problems`);
  return problems;
}
