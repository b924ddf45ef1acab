/**
 * Stage 0 of the OpenMementos pipeline: seed selection. Maps raw reasoning-trace records (OpenThoughts and the
 * like) to `SeedTrace`s, filters them, tags their domain and deduplicates them.
 *
 * Field mapping (auto-detected unless given; `FieldMapping` keys name a record field, dotted paths allowed):
 *   1. `conversations` / `messages`: `[{from|role, value|content}]`; the problem is the first human/user turn, the
 *      response the first gpt/assistant turn after it (OpenThoughts style).
 *   2. `cot` (+ `problem` | `question` | `prompt` | `input`): the cot is the response; an `answer`/`solution`
 *      field is the answer when the cot has nothing after `</think>` (the reference example).
 *   3. `response` | `generation` | `output` | `completion` (+ the problem fields above).
 *   4. `reasoning` | `thinking` (already without tags) + `answer`.
 *   5. `question` / `answer`: the answer is the response.
 * A response is cut at its think tags (`<think>...</think>`, or OpenThoughts-1's
 * `<|begin_of_thought|>...<|end_of_thought|>`): the reasoning is what is inside, the answer what follows the
 * closing tag. A response that opens a think section and never closes it is dropped (`no_think_end`). One with
 * only a closing tag (the prompt ended with `<think>`) is reasoning up to that tag. One without any tags is
 * all reasoning.
 *
 * Filters (the first one that fails is the record's reason):
 *   `unmapped`     no problem/response fields found (or `conversations` without a user and an assistant turn)
 *   `empty_problem` the problem is empty or whitespace
 *   `no_think_end` the reasoning opens a think section that is never closed (the paper's only stated filter)
 *   `empty_reasoning` nothing inside the think tags
 *   `cjk`          the reasoning contains more than `maxCjk` (default 0) CJK characters (Han, kana, Hangul)
 *   `too_short`    the reasoning is shorter than `minChars` (default 2000) characters, or, when `minTokens`
 *                  is set, than `minTokens` tokens (`countTokens`, default the built-in estimate)
 *   `duplicate_id` a record with the same id but different content was kept before
 * Duplicates (same normalised problem + reasoning as a kept trace) are counted in `report.duplicates`, not in
 * `dropped`. So `read = kept + sum(dropped) + duplicates`.
 *
 * Why 2000 characters: the segmenter needs at least 3 blocks of at least 200 tokens (DEFAULT_MIN_BLOCKS x
 * DEFAULT_MIN_BLOCK_TOKENS = 600 tokens), which is about 2,000 characters of English/LaTeX reasoning at ~3.5
 * characters per token. Characters need no tokenizer, so the filter is fast and deterministic.
 *
 * Domain: the record's `domain` when it is math, code or science (case-insensitive); else the heuristic
 * `detectDomain`: code markers (``` fences, `def `, `#include`, `input()`, `print(`, `public static void`,
 * `std::`, "write a program/function") in the problem or answer -> code; science keywords (chemistry, physics,
 * biology terms) or four options A-D without an E in the problem -> science; else math.
 * Source: the record's `source` field, else `options.source` (the CLI passes the input file name).
 * Id: the record's `id` / `task_id` / `uuid` when present, else `h-` + the first 16 hex digits of the content hash.
 * Content hash: SHA-256 of the normalised problem, a NUL, and the normalised reasoning; normalisation is NFKC,
 * lower case, whitespace runs collapsed to one space, trimmed.
 */
import { createHash } from "node:crypto";
import { estimateTokens } from "./split.js";
import type { Domain, SeedTrace } from "./types.js";
import { UserError } from "../errors.js";
import { THINK_END, THINK_START } from "../format/tokens.js";

export const DEFAULT_MIN_CHARS = 2000;
export const SEED_DOMAINS = ["math", "code", "science"] as const;

export const DROP_REASONS = [
  "unmapped",
  "empty_problem",
  "no_think_end",
  "empty_reasoning",
  "cjk",
  "too_short",
  "duplicate_id",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Field names to read; each value is a field name or dotted path in the record. */
export interface FieldMapping {
  id?: string;
  problem?: string;
  /** Full response text (think tags, then the answer). */
  response?: string;
  /** Reasoning only, without think tags. */
  reasoning?: string;
  answer?: string;
  /** Chat turns `[{from|role, value|content}]`. */
  conversations?: string;
  domain?: string;
  source?: string;
  difficulty?: string;
}

export const FIELD_KEYS = [
  "id",
  "problem",
  "response",
  "reasoning",
  "answer",
  "conversations",
  "domain",
  "source",
  "difficulty",
] as const;

export interface SeedOptions {
  fields?: FieldMapping;
  /** Minimum reasoning length in characters (default 2000; 0 disables). */
  minChars?: number;
  /** Minimum reasoning length in tokens (off by default). */
  minTokens?: number;
  countTokens?: (text: string) => number;
  /** CJK characters tolerated in the reasoning (default 0). */
  maxCjk?: number;
  /** Source when the record has none (the CLI passes the input file's base name). Default "unknown". */
  source?: string;
  /** Deduplicate on the content hash (default true). */
  dedupe?: boolean;
}

export interface SeedReport {
  read: number;
  kept: number;
  dropped: Partial<Record<DropReason, number>>;
  duplicates: number;
  /** Up to 20 examples: the duplicate's id and the id of the trace it duplicates. */
  duplicateExamples: { id: string; of: string }[];
  byDomain: Record<string, number>;
  /** Lines the reader skipped (lenient mode); filled in by the caller. */
  skippedLines?: number;
}

export interface SeedResult {
  traces: SeedTrace[];
  report: SeedReport;
}

export type ExtractResult =
  | { ok: true; trace: SeedTrace; hash: string }
  | { ok: false; reason: DropReason; detail: string };

// ---------------------------------------------------------------------------------------------------------------
// Field access
// ---------------------------------------------------------------------------------------------------------------

function getPath(record: Record<string, unknown>, path: string): unknown {
  if (path in record) return record[path];
  let v: unknown = record;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function str(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

function firstField(record: Record<string, unknown>, names: readonly string[]): string | undefined {
  for (const n of names) {
    const s = str(record[n]);
    if (s !== undefined) return s;
  }
  return undefined;
}

const PROBLEM_FIELDS = ["problem", "question", "prompt", "input", "instruction"] as const;
const RESPONSE_FIELDS = ["response", "generation", "output", "completion"] as const;
const REASONING_FIELDS = ["reasoning", "thinking", "reasoning_content"] as const;
const ANSWER_FIELDS = ["answer", "solution", "final_answer"] as const;
const ID_FIELDS = ["id", "task_id", "uuid", "problem_id"] as const;

const USER_ROLES = new Set(["human", "user"]);
const ASSISTANT_ROLES = new Set(["gpt", "assistant", "model"]);

interface RawFields {
  problem?: string;
  response?: string;
  reasoning?: string;
  answer?: string;
}

function fromConversations(v: unknown): RawFields | null {
  if (!Array.isArray(v)) return null;
  let problem: string | undefined;
  let response: string | undefined;
  for (const turn of v) {
    if (turn === null || typeof turn !== "object") continue;
    const t = turn as Record<string, unknown>;
    const role = str(t.from ?? t.role)?.toLowerCase();
    const text = str(t.value ?? t.content);
    if (role === undefined || text === undefined) continue;
    if (problem === undefined) {
      if (USER_ROLES.has(role)) problem = text;
    } else if (ASSISTANT_ROLES.has(role)) {
      response = text;
      break;
    }
  }
  return problem !== undefined && response !== undefined ? { problem, response } : null;
}

/** Picks problem/response/reasoning/answer from a record per the mapping, auto-detecting what it does not name. */
export function mapFields(record: Record<string, unknown>, fields: FieldMapping = {}): RawFields | null {
  const explicit = (key: keyof FieldMapping): string | undefined =>
    fields[key] === undefined ? undefined : str(getPath(record, fields[key]!));
  const out: RawFields = {};
  if (fields.conversations !== undefined) {
    const conv = fromConversations(getPath(record, fields.conversations));
    if (!conv) return null;
    Object.assign(out, conv);
  } else if (fields.response === undefined && fields.reasoning === undefined) {
    // Auto-detection, in the order of the module comment.
    const conv = fromConversations(record.conversations ?? record.messages);
    if (conv) Object.assign(out, conv);
    else if (str(record.cot) !== undefined) out.response = str(record.cot);
    else if (firstField(record, RESPONSE_FIELDS) !== undefined) out.response = firstField(record, RESPONSE_FIELDS);
    else if (firstField(record, REASONING_FIELDS) !== undefined) out.reasoning = firstField(record, REASONING_FIELDS);
    else if (str(record.question) !== undefined && str(record.answer) !== undefined) {
      out.problem = str(record.question);
      out.response = str(record.answer);
    }
  }
  if (fields.response !== undefined) out.response = explicit("response");
  if (fields.reasoning !== undefined) out.reasoning = explicit("reasoning");
  if (fields.problem !== undefined) out.problem = explicit("problem");
  else if (out.problem === undefined) out.problem = firstField(record, PROBLEM_FIELDS);
  if (fields.answer !== undefined) out.answer = explicit("answer");
  else if (out.response === undefined || out.response !== str(record.answer)) {
    // `answer` holds the response itself in question/answer records; only use a separate answer field otherwise.
    out.answer = firstField(record, ANSWER_FIELDS);
  }
  if (out.problem === undefined || (out.response === undefined && out.reasoning === undefined)) return null;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Think tags, CJK, domain, hashing
// ---------------------------------------------------------------------------------------------------------------

const THINK_TAG_PAIRS: readonly (readonly [string, string])[] = [
  [THINK_START, THINK_END],
  ["<|begin_of_thought|>", "<|end_of_thought|>"],
];

export type SplitThink = { ok: true; reasoning: string; answer: string; tagged: boolean } | { ok: false };

/**
 * Cuts a response at its think tags: reasoning inside, answer after the closing tag (leading whitespace and
 * OpenThoughts-1's `<|begin_of_solution|>` wrapper removed). `{ok: false}` when an opening tag is never closed.
 */
export function splitThink(response: string): SplitThink {
  for (const [open, close] of THINK_TAG_PAIRS) {
    const o = response.indexOf(open);
    const c = response.indexOf(close, o === -1 ? 0 : o + open.length);
    if (o === -1 && c === -1) continue;
    if (c === -1) return { ok: false };
    const reasoning = response.slice(o === -1 ? 0 : o + open.length, c);
    let answer = response.slice(c + close.length);
    answer = answer.replace(/^\s*<\|begin_of_solution\|>/, "").replace(/<\|end_of_solution\|>\s*$/, "");
    return { ok: true, reasoning: reasoning.trim(), answer: answer.trim(), tagged: true };
  }
  return { ok: true, reasoning: response.trim(), answer: "", tagged: false };
}

const CJK_RE = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/gu;

/** Number of CJK characters (Han, Hiragana, Katakana, Hangul) in `text`. */
export function countCjk(text: string): number {
  return text.match(CJK_RE)?.length ?? 0;
}

const CODE_RE =
  /```|\bdef \w+\s*\(|#include\s*[<"]|\binput\(\)|\bprint\(|\bpublic static void\b|\bstd::|\bSystem\.out\.|\bconsole\.log\(|\bwrite (?:a|an) (?:python |c\+\+ |java )?(?:program|function|code|script)\b|\bstdin\b|\bstandard input\b/i;
const SCIENCE_RE = new RegExp(
  "\\b(?:" +
    [
      // chemistry
      "molecules?",
      "molecular",
      "atoms?",
      "atomic",
      "ions?",
      "ionic",
      "covalent",
      "compounds?",
      "reactions?",
      "reagents?",
      "catalysts?",
      "oxidation",
      "reduction potential",
      "molarity",
      "molar",
      "moles? of",
      "pka",
      "ph of",
      "acid(?:ic)?",
      "alkaline",
      "isomers?",
      "enthalpy",
      "entropy",
      "titration",
      "organic",
      "benzene",
      "spectroscopy",
      "nmr",
      "chemistry",
      "chemical",
      "electrons?",
      "orbitals?",
      "valence",
      // physics
      "physics",
      "quantum",
      "photons?",
      "momentum",
      "kinetic energy",
      "potential energy",
      "magnetic",
      "electric field",
      "voltage",
      "resistors?",
      "capacitors?",
      "wavelength",
      "frequency of",
      "thermodynamic\\w*",
      "relativistic",
      "nucle(?:us|i|ar)",
      "particles?",
      "gravitational",
      "friction",
      "newtons?",
      "joules?",
      "kelvin",
      "spin",
      "hamiltonian",
      "lagrangian",
      "decay",
      // biology
      "biology",
      "biological",
      "cells?",
      "cellular",
      "proteins?",
      "enzymes?",
      "dna",
      "rna",
      "genes?",
      "genetic",
      "mutations?",
      "chromosomes?",
      "species",
      "organisms?",
      "bacteria",
      "viral",
      "virus",
      "metabolism",
      "mitochondria",
      "neurons?",
      "evolution(?:ary)?",
      "ecology",
      "transcription",
      "translation of mrna",
      "amino acids?",
    ].join("|") +
    ")\\b",
  "i",
);

/** True when the text lists options A, B, C and D (as "A)", "(A)", "A." or "A:" at a line start) and no E. */
function hasFourOptions(text: string): boolean {
  const has = (l: string): boolean => new RegExp(`(?:^|\\n)\\s*(?:\\(${l}\\)|${l}[).:])\\s`).test(text);
  return has("A") && has("B") && has("C") && has("D") && !has("E");
}

/** The documented domain heuristic (see the module comment). */
export function detectDomain(problem: string, answer = ""): Domain {
  if (CODE_RE.test(problem) || CODE_RE.test(answer)) return "code";
  if (SCIENCE_RE.test(problem) || hasFourOptions(problem)) return "science";
  return "math";
}

function normaliseDomain(v: unknown): Domain | null {
  const s = str(v)?.trim().toLowerCase();
  return s !== undefined && (SEED_DOMAINS as readonly string[]).includes(s) ? s : null;
}

/** NFKC, lower case, whitespace runs collapsed, trimmed. */
export function normaliseText(s: string): string {
  return s.normalize("NFKC").toLowerCase().replace(/\s+/g, " ").trim();
}

/** SHA-256 hex of the normalised problem and reasoning. */
export function contentHash(problem: string, reasoning: string): string {
  return createHash("sha256")
    .update(normaliseText(problem))
    .update("\0")
    .update(normaliseText(reasoning))
    .digest("hex");
}

// ---------------------------------------------------------------------------------------------------------------
// Extraction and selection
// ---------------------------------------------------------------------------------------------------------------

/** Maps and filters one record (no deduplication). */
export function extractTrace(record: Record<string, unknown>, options: SeedOptions = {}): ExtractResult {
  const fields = options.fields ?? {};
  const raw = mapFields(record, fields);
  if (!raw) return { ok: false, reason: "unmapped", detail: "no problem and response/reasoning fields found" };
  const problem = raw.problem!.trim();
  if (problem === "") return { ok: false, reason: "empty_problem", detail: "the problem is empty" };

  let reasoning: string;
  let answer: string;
  if (raw.response !== undefined) {
    const cut = splitThink(raw.response);
    if (!cut.ok) return { ok: false, reason: "no_think_end", detail: `the reasoning has no closing ${THINK_END}` };
    reasoning = cut.reasoning;
    answer = cut.answer || (raw.answer?.trim() ?? "");
  } else {
    reasoning = raw.reasoning!.trim();
    answer = raw.answer?.trim() ?? "";
  }
  if (reasoning === "") return { ok: false, reason: "empty_reasoning", detail: "the reasoning is empty" };
  const cjk = countCjk(reasoning);
  if (cjk > (options.maxCjk ?? 0))
    return { ok: false, reason: "cjk", detail: `${cjk} CJK characters in the reasoning` };
  const minChars = options.minChars ?? DEFAULT_MIN_CHARS;
  if (reasoning.length < minChars)
    return { ok: false, reason: "too_short", detail: `${reasoning.length} < ${minChars} characters` };
  if (options.minTokens !== undefined && options.minTokens > 0) {
    const n = (options.countTokens ?? estimateTokens)(reasoning);
    if (n < options.minTokens) return { ok: false, reason: "too_short", detail: `${n} < ${options.minTokens} tokens` };
  }

  const hash = contentHash(problem, reasoning);
  const idValue = fields.id !== undefined ? str(getPath(record, fields.id)) : firstField(record, ID_FIELDS);
  const id = idValue !== undefined && idValue.trim() !== "" ? idValue.trim() : `h-${hash.slice(0, 16)}`;
  const domain =
    normaliseDomain(fields.domain !== undefined ? getPath(record, fields.domain) : record.domain) ??
    detectDomain(problem, answer);
  const sourceValue = str(fields.source !== undefined ? getPath(record, fields.source) : record.source)?.trim();
  const source = sourceValue ? sourceValue : (options.source ?? "unknown");
  const d = fields.difficulty !== undefined ? getPath(record, fields.difficulty) : record.difficulty;
  const difficulty =
    typeof d === "number" && Number.isFinite(d) ? d : typeof d === "string" && d.trim() !== "" ? d.trim() : null;
  return { ok: true, trace: { id, problem, reasoning, answer, domain, source, difficulty }, hash };
}

/**
 * Incremental selector: feed records one at a time (constant memory apart from the id and hash sets), read the
 * report at the end. `selectSeeds` wraps it.
 */
export class SeedSelector {
  readonly report: SeedReport = { read: 0, kept: 0, dropped: {}, duplicates: 0, duplicateExamples: [], byDomain: {} };
  private readonly byHash = new Map<string, string>();
  private readonly ids = new Map<string, string>();

  constructor(private readonly options: SeedOptions = {}) {
    for (const [k, v] of [
      ["minChars", options.minChars],
      ["minTokens", options.minTokens],
      ["maxCjk", options.maxCjk],
    ] as const) {
      if (v !== undefined && !(Number.isInteger(v) && v >= 0))
        throw new UserError(`${k}: expected a non-negative integer, got ${v}`);
    }
  }

  /** Returns the trace when kept, or the reason it was not. */
  add(record: Record<string, unknown>): { trace: SeedTrace } | { reason: DropReason | "duplicate"; detail: string } {
    this.report.read++;
    const r = extractTrace(record, this.options);
    if (!r.ok) return this.drop(r.reason, r.detail);
    const dedupe = this.options.dedupe ?? true;
    const prior = dedupe ? this.byHash.get(r.hash) : undefined;
    if (prior !== undefined) {
      this.report.duplicates++;
      if (this.report.duplicateExamples.length < 20) this.report.duplicateExamples.push({ id: r.trace.id, of: prior });
      return { reason: "duplicate", detail: `same problem and reasoning as ${prior}` };
    }
    const seenHash = this.ids.get(r.trace.id);
    if (seenHash !== undefined && seenHash !== r.hash)
      return this.drop("duplicate_id", `id ${r.trace.id} was already used by a different trace`);
    if (dedupe) this.byHash.set(r.hash, r.trace.id);
    this.ids.set(r.trace.id, r.hash);
    this.report.kept++;
    this.report.byDomain[r.trace.domain] = (this.report.byDomain[r.trace.domain] ?? 0) + 1;
    return { trace: r.trace };
  }

  private drop(reason: DropReason, detail: string): { reason: DropReason; detail: string } {
    this.report.dropped[reason] = (this.report.dropped[reason] ?? 0) + 1;
    return { reason, detail };
  }
}

/** Selects seed traces from records (an array, iterable or async iterable such as `readRecords(...)` mapped). */
export async function selectSeeds(
  records: Iterable<Record<string, unknown>> | AsyncIterable<Record<string, unknown>>,
  options: SeedOptions = {},
): Promise<SeedResult> {
  const selector = new SeedSelector(options);
  const traces: SeedTrace[] = [];
  for await (const rec of records) {
    const r = selector.add(rec);
    if ("trace" in r) traces.push(r.trace);
  }
  return { traces, report: selector.report };
}

/** Human-readable report, one line per item (`dropped <reason>: N` for each reason that occurred). */
export function formatSeedReport(report: SeedReport): string[] {
  const lines = [`read: ${report.read}`, `kept: ${report.kept}`];
  for (const reason of DROP_REASONS)
    if (report.dropped[reason]) lines.push(`dropped ${reason}: ${report.dropped[reason]}`);
  lines.push(`duplicates: ${report.duplicates}`);
  for (const ex of report.duplicateExamples.slice(0, 5)) lines.push(`  duplicate ${ex.id} of ${ex.of}`);
  if (report.skippedLines) lines.push(`skipped lines: ${report.skippedLines}`);
  const domains = Object.keys(report.byDomain).sort();
  for (const d of domains) {
    const pct = report.kept ? ((100 * report.byDomain[d]) / report.kept).toFixed(1) : "0.0";
    lines.push(`domain ${d}: ${report.byDomain[d]} (${pct}%)`);
  }
  return lines;
}

/** Parses `--field key=path` values into a mapping; throws a UserError on an unknown key or a malformed pair. */
export function parseFieldMapping(pairs: readonly string[]): FieldMapping {
  const out: FieldMapping = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0 || eq === p.length - 1) throw new UserError(`--field: expected KEY=FIELD, got "${p}"`);
    const key = p.slice(0, eq).trim();
    const value = p.slice(eq + 1).trim();
    if (!(FIELD_KEYS as readonly string[]).includes(key))
      throw new UserError(`--field: unknown key "${key}" (expected one of ${FIELD_KEYS.join(", ")})`);
    out[key as keyof FieldMapping] = value;
  }
  if (out.response !== undefined && out.reasoning !== undefined)
    throw new UserError("--field: response and reasoning are mutually exclusive");
  if (out.conversations !== undefined && (out.response !== undefined || out.reasoning !== undefined)) {
    throw new UserError("--field: conversations excludes response and reasoning");
  }
  return out;
}
