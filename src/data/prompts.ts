/**
 * Prompts and answer contracts of the LLM-backed pipeline stages (paper section 3, stages 2 and 4):
 *
 *   score    - rate every boundary inside a window of consecutive sentences, 0-3;
 *   compress - one terse, extractive memento per block (the compressor sees all blocks of the trace);
 *   judge    - score each (block, memento) pair on the six rubric dimensions, with specific feedback;
 *   refine   - rewrite the mementos a judge rejected, using its feedback.
 *
 * The rubric facts (score meanings, the hard rules, the dimension maxima, the 10-20% target) follow the paper;
 * the wording is ours. Every prompt asks for one JSON object only, so it also works without a server-side JSON
 * mode (`response_format: json_object` requires the word "JSON" in the messages, which every prompt has).
 *
 * User messages are rendered in a fixed, easily parsed layout (`[S1] ...` lines, `<block index="1">` sections)
 * so that answers can be checked against the counts they must have. `parse*Answer` validate an answer (JSON
 * syntax, exact counts, integer ranges) and return either the value or a one-paragraph error that is fed back to
 * the model when it is asked once more.
 */
import { z } from "zod";
import { JUDGE_MAX, type JudgeDimensions, type Judgment } from "./types.js";

export type PromptKind = "score" | "compress" | "judge" | "refine";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export const SCORE_SYSTEM_PROMPT = `You rate candidate cut points in a model's step-by-step reasoning. The reasoning will later be cut into blocks at the best-rated points, and each finished block will be replaced by a short note, so a cut belongs where a unit of thought is complete.

You receive a window of consecutive sentences of one reasoning trace, labelled [S1], [S2], and so on. Between each pair of neighbouring sentences there is one boundary: boundary k lies between [Sk] and [Sk+1]. Rate every boundary with an integer from 0 to 3:
0 = the thought runs on across the boundary (the middle of a derivation, an argument, or a list); a cut here would tear it apart.
1 = a weak or minor shift: the next sentence moves on slightly but stays with the same step.
2 = a clear transition: a new sub-step begins, a check or verification starts, or the approach is adjusted.
3 = a major shift: a new approach after an earlier one was dropped, or the start of the final-answer part.

Hard rules, stronger than any other consideration:
- While a calculation or derivation is still in progress, never give 2 or 3 (multi-step calculations stay together with 0 or 1).
- When the sentence before the boundary ends with ":" or "=" (or otherwise announces what comes next, such as "=>"), give 0.
- When the sentence after the boundary begins with "Therefore", "Thus", "Hence" or "So" and carries the same argument on, give 0.
- Give 2 or 3 only where a derivation has finished and the reasoning turns to something else.

Reply with one JSON object and nothing else: {"scores": [...]}, holding exactly one integer per boundary (one fewer than the number of sentences), in boundary order.`;

export const COMPRESS_SYSTEM_PROMPT = `You turn the blocks of a long reasoning trace into mementos: compact records of the reasoning state. Whoever continues the reasoning will see only the mementos of earlier blocks, never the blocks themselves, so each memento must keep everything a later step might rely on, in as few tokens as possible.

You receive the problem and ALL blocks of one trace, in order. Write exactly one memento per block. Each memento:
- opens with the block's outcome (the value obtained, the claim established, or the dead end reached), followed by the supporting details;
- keeps formulas and equations exactly as the block writes them, the numeric values (intermediate and final), definitions and constraints, the methods used, the attempts that were rejected (and why), and the outcome of every check;
- is purely extractive: it states only what the block states. Do not derive anything new, do not fix the block's mistakes, do not solve the problem;
- is terse: clauses separated by semicolons, "name: value" pairs, compact math, no narration such as "the model then considers"; aim for about 10-20% of the block's length;
- covers its own block only; the other blocks are there for context.

Reply with one JSON object and nothing else: {"mementos": ["...", ...]}, holding exactly one string per block, in block order.`;

export const JUDGE_SYSTEM_PROMPT = `You grade mementos: compressed records of the blocks of a reasoning trace. A good memento can stand in for its block completely for whoever continues the reasoning.

For every (block, memento) pair give these integer scores:
- formulas (0-${JUDGE_MAX.formulas}): the block's key formulas and equations appear in the memento verbatim, with complete notation (${JUDGE_MAX.formulas} = all of them; 0 = essential ones missing).
- values (0-${JUDGE_MAX.values}): the block's important intermediate and final numbers are kept.
- methods (0-${JUDGE_MAX.methods}): the approach taken is named explicitly, including attempts that were abandoned.
- validation (0-${JUDGE_MAX.validation}): the outcome of any check or verification in the block is stated (${JUDGE_MAX.validation} when the block has none).
- noHallucination (0-${JUDGE_MAX.noHallucination}): ${JUDGE_MAX.noHallucination} only if the memento asserts nothing the block does not contain and adds no reasoning of its own.
- resultFirst (0-${JUDGE_MAX.resultFirst}): ${JUDGE_MAX.resultFirst} when the memento leads with the block's outcome instead of narrating the process.
Also give "feedback": precise, actionable instructions naming exactly what to add, correct or delete, for example "Add the recurrence a(n)=2a(n-1)+1 and the value a(6)=63; delete the claim that n is prime, which the block never makes." Vague advice such as "add more detail" is useless. If nothing is missing, say so in a few words.

Reply with one JSON object and nothing else: {"judgments": [{"formulas": 0, "values": 0, "methods": 0, "validation": 0, "noHallucination": 0, "resultFirst": 0, "feedback": "..."}, ...]}, holding exactly one judgment per pair, in pair order.`;

export const REFINE_SYSTEM_PROMPT = `You repair mementos: compressed records of the blocks of a reasoning trace that must be able to replace their blocks completely. A judge found each memento below lacking and explained why.

For every item you receive the block, its current memento and the judge's feedback. Write a new memento for that block that settles every point of the feedback while keeping to the memento rules: the block's outcome first; formulas verbatim; intermediate and final values; methods and rejected attempts; outcomes of checks; nothing the block does not state and no new reasoning; terse notation (semicolons, "name: value", compact math), about 10-20% of the block's length.

Reply with one JSON object and nothing else: {"mementos": ["...", ...]}, holding exactly one string per item, in item order.`;

export const SYSTEM_PROMPTS: Readonly<Record<PromptKind, string>> = Object.freeze({
  score: SCORE_SYSTEM_PROMPT,
  compress: COMPRESS_SYSTEM_PROMPT,
  judge: JUDGE_SYSTEM_PROMPT,
  refine: REFINE_SYSTEM_PROMPT,
});

/** Which stage a system prompt belongs to (undefined for a foreign prompt). */
export function promptKindOf(systemPrompt: string): PromptKind | undefined {
  for (const kind of Object.keys(SYSTEM_PROMPTS) as PromptKind[]) {
    if (SYSTEM_PROMPTS[kind] === systemPrompt) return kind;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// User messages

/** Throws unless every block comes with its memento: what judgeMementos requires of its arguments. */
export function checkJudgeInput(blocks: readonly string[], mementos: readonly string[]): void {
  if (blocks.length !== mementos.length)
    throw new Error(`judge: ${blocks.length} blocks but ${mementos.length} mementos`);
}

/** `[S1] first sentence` lines; a sentence's own line breaks are kept. */
export function buildScoreMessages(sentences: readonly string[]): ChatMessage[] {
  const n = sentences.length;
  const lines = sentences.map((s, i) => `[S${i + 1}] ${s}`);
  const user =
    `The window has ${n} sentences, so there are ${n - 1} boundaries to rate ` +
    `(boundary k lies between [Sk] and [Sk+1]).\n\n${lines.join("\n")}\n\n` +
    `Reply with {"scores": [...]} holding exactly ${n - 1} integers from 0 to 3.`;
  return [
    { role: "system", content: SCORE_SYSTEM_PROMPT },
    { role: "user", content: user },
  ];
}

function section(tag: string, index: number, text: string): string {
  return `<${tag} index="${index}">\n${text}\n</${tag}>`;
}

export function buildCompressMessages(problem: string, blocks: readonly string[]): ChatMessage[] {
  const n = blocks.length;
  const user =
    `<problem>\n${problem}\n</problem>\n\nThe trace has ${n} block${n === 1 ? "" : "s"}.\n\n` +
    blocks.map((b, i) => section("block", i + 1, b)).join("\n\n") +
    `\n\nReply with {"mementos": [...]} holding exactly ${n} string${n === 1 ? "" : "s"}, one per block, in order.`;
  return [
    { role: "system", content: COMPRESS_SYSTEM_PROMPT },
    { role: "user", content: user },
  ];
}

export function buildJudgeMessages(blocks: readonly string[], mementos: readonly string[]): ChatMessage[] {
  if (blocks.length !== mementos.length)
    throw new Error(`judge: ${blocks.length} blocks but ${mementos.length} mementos`);
  const n = blocks.length;
  const pairs = blocks.map((b, i) => `${section("block", i + 1, b)}\n${section("memento", i + 1, mementos[i])}`);
  const user =
    `There ${n === 1 ? "is 1 pair" : `are ${n} pairs`} to grade.\n\n${pairs.join("\n\n")}\n\n` +
    `Reply with {"judgments": [...]} holding exactly ${n} judgment${n === 1 ? "" : "s"}, one per pair, in order.`;
  return [
    { role: "system", content: JUDGE_SYSTEM_PROMPT },
    { role: "user", content: user },
  ];
}

export interface RefineItem {
  block: string;
  memento: string;
  feedback: string;
}

export function buildRefineMessages(items: readonly RefineItem[]): ChatMessage[] {
  const n = items.length;
  const parts = items.map(
    (it, i) =>
      `${section("block", i + 1, it.block)}\n${section("memento", i + 1, it.memento)}\n` +
      section("feedback", i + 1, it.feedback),
  );
  const user =
    `There ${n === 1 ? "is 1 item" : `are ${n} items`} to repair.\n\n${parts.join("\n\n")}\n\n` +
    `Reply with {"mementos": [...]} holding exactly ${n} string${n === 1 ? "" : "s"}, one per item, in order.`;
  return [
    { role: "system", content: REFINE_SYSTEM_PROMPT },
    { role: "user", content: user },
  ];
}

/** The message appended (after the model's own bad answer) when an answer is asked for once more. */
export function buildReaskMessage(error: string): ChatMessage {
  return {
    role: "user",
    content: `That reply cannot be used: ${error}\nReply again with only the corrected JSON object, following the instructions exactly.`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Answer validation

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * The JSON object in a reply: the whole reply, or (without a JSON mode, models sometimes wrap it) the content of
 * a ```json fence, or the span from the first "{" to the last "}".
 */
export function extractJson(text: string): ParseResult<unknown> {
  const trimmed = text.trim();
  const candidates: string[] = [trimmed];
  const fence = /```(?:json)?\s*\n?([\s\S]*?)```/i.exec(trimmed);
  if (fence) candidates.push(fence[1].trim());
  const first = trimmed.indexOf("{");
  const last = trimmed.lastIndexOf("}");
  if (first >= 0 && last > first) candidates.push(trimmed.slice(first, last + 1));
  let firstError = "";
  for (const c of candidates) {
    try {
      return { ok: true, value: JSON.parse(c) };
    } catch (e) {
      if (!firstError) firstError = (e as Error).message;
    }
  }
  const preview = trimmed.length > 80 ? `${trimmed.slice(0, 80)}...` : trimmed;
  return {
    ok: false,
    error: `the reply is not a JSON object (${firstError || "empty reply"}; it starts with ${JSON.stringify(preview)}).`,
  };
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

function validate<T>(text: string, schema: z.ZodType<T>): ParseResult<T> {
  const json = extractJson(text);
  if (!json.ok) return json;
  const r = schema.safeParse(json.value);
  if (!r.success)
    return { ok: false, error: `the JSON does not match the required shape (${describeIssues(r.error)}).` };
  return { ok: true, value: r.data };
}

const intIn = (max: number) => z.number().int().min(0).max(max);

export function scoreAnswerSchema(sentenceCount: number) {
  const k = Math.max(0, sentenceCount - 1);
  return z.object({
    scores: z.array(intIn(3)).length(k, `expected exactly ${k} scores (one per boundary)`),
  });
}

export function parseScoreAnswer(text: string, sentenceCount: number): ParseResult<number[]> {
  const r = validate(text, scoreAnswerSchema(sentenceCount));
  return r.ok ? { ok: true, value: r.value.scores } : r;
}

const nonEmpty = z.string().refine((s) => s.trim().length > 0, "a memento must not be empty");

export function mementoAnswerSchema(count: number) {
  return z.object({
    mementos: z.array(nonEmpty).length(count, `expected exactly ${count} mementos`),
  });
}

export function parseMementoAnswer(text: string, count: number): ParseResult<string[]> {
  const r = validate(text, mementoAnswerSchema(count));
  return r.ok ? { ok: true, value: r.value.mementos.map((m) => m.trim()) } : r;
}

const judgmentSchema = z.object({
  formulas: intIn(JUDGE_MAX.formulas),
  values: intIn(JUDGE_MAX.values),
  methods: intIn(JUDGE_MAX.methods),
  validation: intIn(JUDGE_MAX.validation),
  noHallucination: intIn(JUDGE_MAX.noHallucination),
  resultFirst: intIn(JUDGE_MAX.resultFirst),
  feedback: z.string(),
});

export function judgeAnswerSchema(count: number) {
  return z.object({
    judgments: z.array(judgmentSchema).length(count, `expected exactly ${count} judgments`),
  });
}

/** Sum of the six dimensions (0-10). */
export function judgmentScore(d: JudgeDimensions): number {
  return d.formulas + d.values + d.methods + d.validation + d.noHallucination + d.resultFirst;
}

export function toJudgment(d: JudgeDimensions, feedback: string): Judgment {
  const dimensions: JudgeDimensions = {
    formulas: d.formulas,
    values: d.values,
    methods: d.methods,
    validation: d.validation,
    noHallucination: d.noHallucination,
    resultFirst: d.resultFirst,
  };
  return { score: judgmentScore(dimensions), dimensions, feedback: feedback.trim() };
}

export function parseJudgeAnswer(text: string, count: number): ParseResult<Judgment[]> {
  const r = validate(text, judgeAnswerSchema(count));
  return r.ok ? { ok: true, value: r.value.judgments.map((j) => toJudgment(j, j.feedback)) } : r;
}
