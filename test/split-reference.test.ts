/**
 * Sentence splitting at reference granularity: boundary agreement with the public reference splitter
 * (microsoft/memento `data/pipeline/sentence_split.py`) recorded in test/fixtures/split-reference-boundaries.json.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import {
  DEFAULT_BOUNDARY_TOLERANCE_CHARS,
  boundaryAgreement,
  compareWithReference,
  fixtureText,
  loadSplitFixture,
} from "../src/data/split/compare.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { describeWithReference, referenceDir, repoRoot } from "./helpers/reference.js";

const FIXTURE_PATH = join(repoRoot, "test", "fixtures", "split-reference-boundaries.json");

/** The targets (#19 item 5): per text, F1 >= 0.85 and sentence counts within 15% of the reference's. */
const MIN_F1 = 0.85;
const MAX_COUNT_DEVIATION = 0.15;

describe("boundaryAgreement", () => {
  it("matches boundaries one to one within the tolerance", () => {
    expect(boundaryAgreement([10, 50, 90], [12, 50, 200], 3)).toMatchObject({
      found: 3,
      expected: 3,
      matched: 2,
      precision: 2 / 3,
      recall: 2 / 3,
    });
    // Outside the tolerance nothing matches.
    expect(boundaryAgreement([10], [14], 3).matched).toBe(0);
    // One of ours cannot match two of the reference's.
    expect(boundaryAgreement([10], [9, 11], 3)).toMatchObject({ matched: 1, precision: 1, recall: 0.5 });
    expect(boundaryAgreement([10, 20], [20], DEFAULT_BOUNDARY_TOLERANCE_CHARS).f1).toBeCloseTo(2 / 3, 10);
  });

  it("two empty lists agree fully; one empty list not at all", () => {
    expect(boundaryAgreement([], []).f1).toBe(1);
    expect(boundaryAgreement([5], []).f1).toBe(0);
    expect(boundaryAgreement([], [5]).f1).toBe(0);
  });
});

describe("the fixture", () => {
  it("holds offsets only: sorted, inside each text, one fewer than the reference's sentences", () => {
    const fixture = loadSplitFixture(FIXTURE_PATH);
    expect(fixture.texts.map((t) => t.name)).toEqual(["raw_trace", "response", "code", "science"]);
    for (const t of fixture.texts) {
      expect(t.boundaries).toHaveLength(t.sentences - 1);
      for (let i = 1; i < t.boundaries.length; i++) expect(t.boundaries[i]).toBeGreaterThan(t.boundaries[i - 1]);
      expect(t.boundaries[t.boundaries.length - 1]).toBeLessThan(t.chars);
    }
  });

  it("rejects a file that is not a fixture with a UserError", () => {
    const dir = mkdtempSync(join(tmpdir(), "split-fixture-"));
    const path = join(dir, "f.json");
    writeFileSync(path, JSON.stringify({ about: "x", reference: {}, texts: [] }));
    expect(() => loadSplitFixture(path)).toThrow(UserError);
    writeFileSync(path, "{not json");
    expect(() => loadSplitFixture(path)).toThrow(/not JSON/);
  });
});

describeWithReference("agreement with the reference splitter on the reference texts", () => {
  const fixture = loadSplitFixture(FIXTURE_PATH);

  it("a changed reference text is an error, not a different score", () => {
    const dir = mkdtempSync(join(tmpdir(), "split-ref-"));
    const entry = fixture.texts.find((t) => t.text === "blocks")!;
    const json = JSON.parse(readFileSync(join(referenceDir, entry.file), "utf8")) as { segments: { text: string }[] };
    json.segments[0].text += " Changed.";
    writeFileSync(join(dir, entry.file), JSON.stringify(json));
    expect(() => fixtureText(entry, dir)).toThrow(/differs from the one fixture entry/);
    copyFileSync(join(referenceDir, entry.file), join(dir, entry.file));
    expect(fixtureText(entry, dir)).toHaveLength(entry.chars);
  });

  it(`with the Qwen3 tokenizer (as the pipeline splits): F1 >= ${MIN_F1} and counts within 15% on every text`, () => {
    const tok = loadTokenizer();
    const c = compareWithReference(fixture, referenceDir, { countTokens: (t) => tok.count(t) });
    for (const t of c.texts) {
      console.log(
        `[split-reference] ${t.name}: reference ${t.referenceSentences} sentences, ours ${t.sentences} ` +
          `(${t.countRatio.toFixed(2)}x); P ${t.precision.toFixed(3)} R ${t.recall.toFixed(3)} F1 ${t.f1.toFixed(3)}`,
      );
      expect(t.f1, t.name).toBeGreaterThanOrEqual(MIN_F1);
      expect(Math.abs(t.countRatio - 1), t.name).toBeLessThanOrEqual(MAX_COUNT_DEVIATION);
    }
    expect(c.overall.f1).toBeGreaterThanOrEqual(MIN_F1);
  });

  it("with the built-in token estimate too", () => {
    const c = compareWithReference(fixture, referenceDir);
    for (const t of c.texts) {
      expect(t.f1, t.name).toBeGreaterThanOrEqual(MIN_F1);
      expect(Math.abs(t.countRatio - 1), t.name).toBeLessThanOrEqual(MAX_COUNT_DEVIATION);
    }
  });
});
