/**
 * Boundary agreement between our sentence splitter and the public reference splitter's recorded output.
 * Owns the fixture format (reference boundaries as numbers, never the texts), rebuilding each text from the
 * reference files it names, and the score. It never runs the reference itself (see the fixture's `about`).
 *
 * 1. A boundary is where a sentence after the first starts: the first non-space char, as a UTF-16 offset into
 *    the text the splitter was given (our `spans[i][0]` for i >= 1).
 * 2. Ours and the reference's boundaries are matched one to one when at most `toleranceChars` apart (default
 *    `DEFAULT_BOUNDARY_TOLERANCE_CHARS`); both lists are sorted, so the greedy left-to-right matching is a
 *    maximum matching. Precision = matched / ours, recall = matched / reference, F1 their harmonic mean;
 *    both empty counts as full agreement.
 * 3. A text is used only if its SHA-256 equals the fixture's: a changed reference file is an error, not a
 *    silently different score.
 * 4. Texts: `cot` is the `cot` field of the first JSONL record (the splitter reads inside `<think>`);
 *    `blocks` is the `block` segments of a Memento output joined by a blank line (`BLOCK_JOIN`).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import { UserError } from "../../errors.js";
import { readTextFile } from "../../io/files.js";
import { type SplitOptions, splitSentences } from "../split.js";

/** Two boundaries at most this many chars apart are the same boundary. */
export const DEFAULT_BOUNDARY_TOLERANCE_CHARS = 3;

/** How `blocks` texts join their block segments. */
export const BLOCK_JOIN = "\n\n";

const fixtureTextSchema = z.object({
  name: z.string(),
  file: z.string(),
  text: z.enum(["cot", "blocks"]),
  chars: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sentences: z.number().int().nonnegative(),
  boundaries: z.array(z.number().int().nonnegative()),
});

export const splitFixtureSchema = z.object({
  about: z.string(),
  reference: z.object({ repo: z.string(), path: z.string(), commit: z.string(), tokenCounter: z.string() }),
  texts: z.array(fixtureTextSchema).min(1),
});

export type SplitFixture = z.infer<typeof splitFixtureSchema>;
export type SplitFixtureText = z.infer<typeof fixtureTextSchema>;

export interface BoundaryAgreement {
  /** Boundaries of ours / of the reference / matched within the tolerance. */
  found: number;
  expected: number;
  matched: number;
  precision: number;
  recall: number;
  f1: number;
}

/** Clause 2: one-to-one matching of sorted offsets within `toleranceChars`. */
export function boundaryAgreement(
  found: readonly number[],
  expected: readonly number[],
  toleranceChars = DEFAULT_BOUNDARY_TOLERANCE_CHARS,
): BoundaryAgreement {
  let i = 0;
  let j = 0;
  let matched = 0;
  while (i < found.length && j < expected.length) {
    if (Math.abs(found[i] - expected[j]) <= toleranceChars) {
      matched++;
      i++;
      j++;
    } else if (found[i] < expected[j]) i++;
    else j++;
  }
  return scores(found.length, expected.length, matched);
}

function scores(found: number, expected: number, matched: number): BoundaryAgreement {
  const precision = found === 0 ? (expected === 0 ? 1 : 0) : matched / found;
  const recall = expected === 0 ? (found === 0 ? 1 : 0) : matched / expected;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { found, expected, matched, precision, recall, f1 };
}

/** Reads and checks a fixture file. */
export function loadSplitFixture(path: string): SplitFixture {
  let json: unknown;
  try {
    json = JSON.parse(readTextFile(path));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${path}: not JSON (${(e as Error).message})`);
  }
  const parsed = splitFixtureSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`${path}: not a split fixture (${issue.path.join(".") || "root"}: ${issue.message})`);
  }
  return parsed.data;
}

/** Clause 4: the text a fixture entry was made from, checked against its hash (clause 3). */
export function fixtureText(entry: SplitFixtureText, referenceDir: string): string {
  const path = join(referenceDir, entry.file);
  const raw = readTextFile(path);
  let text: string;
  try {
    if (entry.text === "cot") {
      text = (JSON.parse(raw.split("\n")[0]) as { cot: string }).cot;
    } else {
      const segments = (JSON.parse(raw) as { segments: { type: string; text: string }[] }).segments;
      text = segments
        .filter((s) => s.type === "block")
        .map((s) => s.text)
        .join(BLOCK_JOIN);
    }
  } catch (e) {
    throw new UserError(`${path}: cannot read its ${entry.text} text (${(e as Error).message})`);
  }
  if (typeof text !== "string") throw new UserError(`${path}: has no ${entry.text} text`);
  const sha = createHash("sha256").update(text, "utf8").digest("hex");
  if (sha !== entry.sha256)
    throw new UserError(
      `${path}: its ${entry.text} text differs from the one fixture entry "${entry.name}" was made from`,
    );
  return text;
}

export interface TextComparison extends BoundaryAgreement {
  name: string;
  referenceSentences: number;
  sentences: number;
  /** sentences / referenceSentences. */
  countRatio: number;
}

export interface SplitComparison {
  toleranceChars: number;
  texts: TextComparison[];
  /** Pooled over all texts' boundaries. */
  overall: BoundaryAgreement;
}

/** Splits every fixture text with `splitOpts` and scores it against the reference's boundaries. */
export function compareWithReference(
  fixture: SplitFixture,
  referenceDir: string,
  splitOpts: SplitOptions = {},
  toleranceChars = DEFAULT_BOUNDARY_TOLERANCE_CHARS,
): SplitComparison {
  const texts = fixture.texts.map((entry): TextComparison => {
    const spans = splitSentences(fixtureText(entry, referenceDir), splitOpts).spans;
    const agreement = boundaryAgreement(
      spans.slice(1).map((s) => s[0]),
      entry.boundaries,
      toleranceChars,
    );
    return {
      name: entry.name,
      referenceSentences: entry.sentences,
      sentences: spans.length,
      countRatio: entry.sentences > 0 ? spans.length / entry.sentences : spans.length > 0 ? Infinity : 1,
      ...agreement,
    };
  });
  const sum = (key: "found" | "expected" | "matched") => texts.reduce((acc, t) => acc + t[key], 0);
  return { toleranceChars, texts, overall: scores(sum("found"), sum("expected"), sum("matched")) };
}
