import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  type ParsedResponse,
  buildResponse,
  decomposeResponse,
  isMarkerSegment,
  parseResponse,
  renderResponse,
  renderSegments,
} from "../src/format/response.js";
import {
  BLOCK_END,
  BLOCK_START,
  FORMAT_MARKERS,
  SUMMARY_END,
  SUMMARY_START,
  THINK_END,
  THINK_START,
} from "../src/format/tokens.js";
import { responseParts } from "./helpers/arbitraries.js";

const B = BLOCK_START;
const BE = BLOCK_END;
const S = SUMMARY_START;
const SE = SUMMARY_END;

/** Invariants every parse must satisfy, whatever the input. */
function checkInvariants(p: ParsedResponse, s: string): void {
  expect(renderSegments(p.segments)).toBe(s);
  let pos = 0;
  for (const seg of p.segments) {
    expect(seg.start).toBe(pos);
    expect(seg.end).toBeGreaterThan(seg.start);
    expect(s.slice(seg.start, seg.end)).toBe(seg.text);
    if (!isMarkerSegment(seg)) {
      // No text segment may contain a complete marker (the scan would have found it).
      for (const m of FORMAT_MARKERS) expect(seg.text.includes(m)).toBe(false);
    }
    pos = seg.end;
  }
  expect(pos).toBe(s.length);
  for (const b of p.blocks) {
    expect(s.slice(b.open.start, b.open.end)).toBe(BLOCK_START);
    expect(b.content.start).toBe(b.open.end);
    expect(b.text).toBe(s.slice(b.content.start, b.content.end));
    if (b.close) {
      expect(s.slice(b.close.start, b.close.end)).toBe(BLOCK_END);
      expect(b.content.end).toBe(b.close.start);
    }
    if (b.mementoIndex !== null) expect(p.mementos[b.mementoIndex].blockIndex).toBe(b.index);
  }
  for (const m of p.mementos) {
    expect(s.slice(m.open.start, m.open.end)).toBe(SUMMARY_START);
    expect(m.text).toBe(s.slice(m.content.start, m.content.end));
    if (m.close) expect(s.slice(m.close.start, m.close.end)).toBe(SUMMARY_END);
    if (m.blockIndex !== null) expect(p.blocks[m.blockIndex].mementoIndex).toBe(m.index);
  }
  if (p.answer) expect(p.answer.text).toBe(s.slice(p.thinkEnd!.end));
}

describe("parseResponse on a well-formed response", () => {
  const s = `<think>\n${B}first block${BE}\n${S}m1${SE}\n${B}second\nblock${BE}  \n${S}m2${SE}\n</think>\n\nThe answer is 4.`;
  const p = parseResponse(s);

  it("finds blocks, mementos and the answer with exact offsets", () => {
    expect(p.blocks.map((b) => b.text)).toEqual(["first block", "second\nblock"]);
    expect(p.mementos.map((m) => m.text)).toEqual(["m1", "m2"]);
    expect(p.mementos.map((m) => m.blockIndex)).toEqual([0, 1]);
    expect(p.blocks.map((b) => b.mementoIndex)).toEqual([0, 1]);
    expect(p.thinkStart).toEqual({ start: 0, end: 7 });
    expect(p.blocks[0].open).toEqual({ start: 8, end: 8 + B.length });
    expect(p.blocks[0].content).toEqual({ start: 8 + B.length, end: 8 + B.length + "first block".length });
    expect(p.answer?.text).toBe("\n\nThe answer is 4.");
    expect(s.slice(p.answer!.start)).toBe("\n\nThe answer is 4.");
    expect(p.implicitThink).toBe(false);
    checkInvariants(p, s);
  });

  it("keeps the whitespace between markers as gap segments", () => {
    const gaps = p.segments.filter((g) => g.kind === "gap").map((g) => g.text);
    expect(gaps).toEqual(["\n", "\n", "\n", "  \n", "\n"]);
    expect(p.segments.every((g) => !isMarkerSegment(g) || g.effect === "ok")).toBe(true);
    expect(renderResponse(p)).toBe(s);
  });

  it("labels text by region", () => {
    expect(parseResponse(`hi${THINK_START}x${B}y${BE}${S}z${SE}${THINK_END}a`).segments.map((g) => g.kind)).toEqual([
      "preamble",
      "think_start",
      "gap",
      "block_start",
      "block_text",
      "block_end",
      "summary_start",
      "memento_text",
      "summary_end",
      "think_end",
      "answer",
    ]);
  });

  it("ignores near-miss markers and other angle brackets", () => {
    const t = `<think>${B}a < b, <|block_en|>, <thinking>, </thin>, <|summary|>${BE}`;
    const q = parseResponse(t);
    expect(q.blocks).toHaveLength(1);
    expect(q.blocks[0].text).toBe("a < b, <|block_en|>, <thinking>, </thin>, <|summary|>");
    expect(q.blocks[0].close).not.toBeNull();
  });
});

describe("parseResponse on malformed input (lenient)", () => {
  it("records a nested block on a stack and closes the innermost first", () => {
    const s = `<think>${B}outer ${B}inner${BE} tail${BE}`;
    const p = parseResponse(s);
    expect(p.blocks.map((b) => [b.text, b.depth])).toEqual([
      [`outer ${B}inner${BE} tail`, 0],
      ["inner", 1],
    ]);
    const nested = p.segments.find((g) => isMarkerSegment(g) && g.effect === "nested");
    expect(nested?.start).toBe(s.indexOf(B, 8));
    checkInvariants(p, s);
  });

  it("ends unclosed blocks and mementos at </think> or at the end", () => {
    const p = parseResponse(`<think>${B}never closed</think>answer`);
    expect(p.blocks[0].close).toBeNull();
    expect(p.blocks[0].text).toBe("never closed");
    expect(p.answer?.text).toBe("answer");
    const q = parseResponse(`<think>${B}b${BE}${S}cut off`);
    expect(q.mementos[0].close).toBeNull();
    expect(q.mementos[0].text).toBe("cut off");
    expect(q.mementos[0].blockIndex).toBe(0);
    expect(q.thinkEnd).toBeNull();
    expect(q.answer).toBeNull();
  });

  it("a marker other than summary_end ends an open memento", () => {
    const s = `<think>${B}b${BE}${S}memento${B}next${BE}`;
    const p = parseResponse(s);
    expect(p.mementos[0].close).toBeNull();
    expect(p.mementos[0].text).toBe("memento");
    expect(p.blocks[1].text).toBe("next");
  });

  it("orphan mementos get blockIndex null with the reason on the marker", () => {
    const effects = (s: string) =>
      parseResponse(s)
        .segments.filter((g) => isMarkerSegment(g) && g.kind === "summary_start")
        .map((g) => isMarkerSegment(g) && g.effect);
    expect(effects(`<think>${S}x${SE}`)).toEqual(["no_closed_block"]);
    expect(effects(`<think>${B}b${S}x${SE}${BE}`)).toEqual(["block_open"]);
    expect(effects(`<think>${B}b${BE}${S}x${SE}${S}y${SE}`)).toEqual(["ok", "block_has_memento"]);
    expect(parseResponse(`<think>${B}b${BE}${S}x${SE}${S}y${SE}`).mementos.map((m) => m.blockIndex)).toEqual([0, null]);
  });

  it("enters the thinking section implicitly when <think> is omitted", () => {
    const p = parseResponse(`\n${B}b${BE}\n${S}m${SE}\n</think>\n\nA`);
    expect(p.thinkStart).toBeNull();
    expect(p.implicitThink).toBe(true);
    expect(p.blocks[0].text).toBe("b");
    expect(p.segments[0].kind).toBe("preamble");
  });

  it("markers after </think> and a second <think> have no structural effect", () => {
    const p = parseResponse(`<think><think>${B}b${BE}${S}m${SE}</think>ans ${B}x${BE}</think>`);
    expect(p.blocks).toHaveLength(1);
    expect(p.answer?.text).toBe(`ans ${B}x${BE}</think>`);
    const effects = p.segments.filter(isMarkerSegment).map((g) => g.effect);
    expect(effects).toEqual([
      "ok",
      "duplicate",
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "after_think_end",
      "after_think_end",
      "after_think_end",
    ]);
  });
});

describe("render(parse(s)) === s (property)", () => {
  const pieces = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...FORMAT_MARKERS) },
    { weight: 1, arbitrary: fc.constantFrom("<", "<|", "<|block", "</think", "|>", ">", "<t", "\n", " ", "\n\n") },
    { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 6 }) },
  );
  const markerSoup = fc.array(pieces, { maxLength: 40 }).map((a) => a.join(""));

  it("holds for arbitrary strings", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200, unit: "binary" }), (s) => checkInvariants(parseResponse(s), s)),
      { numRuns: 500 },
    );
  });

  it("holds for random marker/text sequences, including malformed ones", () => {
    fc.assert(
      fc.property(markerSoup, (s) => checkInvariants(parseResponse(s), s)),
      { numRuns: 2000 },
    );
  });

  it("holds for markers split or glued at random positions", () => {
    const glued = fc
      .tuple(fc.array(fc.constantFrom(...FORMAT_MARKERS), { maxLength: 12 }), fc.nat(), fc.nat())
      .map(([ms, a, b]) => {
        const s = ms.join("");
        const i = s.length ? a % s.length : 0;
        const j = s.length ? b % s.length : 0;
        return s.slice(0, Math.min(i, j)) + s.slice(Math.max(i, j)); // cut a random piece out
      });
    fc.assert(
      fc.property(glued, (s) => checkInvariants(parseResponse(s), s)),
      { numRuns: 1000 },
    );
  });
});

describe("buildResponse", () => {
  it("uses the documented canonical layout", () => {
    expect(buildResponse({ blocks: ["b1", "b2"], mementos: ["m1", "m2"], answer: "42" })).toBe(
      `<think>\n${B}b1${BE}\n${S}m1${SE}\n${B}b2${BE}\n${S}m2${SE}\n</think>\n\n42`,
    );
    expect(buildResponse({ blocks: [], mementos: [], answer: "x" })).toBe("<think>\n</think>\n\nx");
    expect(buildResponse({ blocks: ["b"], mementos: ["m"], answer: "" }, { omitThinkStart: true })).toBe(
      `${B}b${BE}\n${S}m${SE}\n</think>\n\n`,
    );
  });

  it("rejects mismatched counts and parts containing markers", () => {
    expect(() => buildResponse({ blocks: ["a"], mementos: [], answer: "" })).toThrow(/1 blocks but 0 mementos/);
    expect(() => buildResponse({ blocks: [`a${BE}b`], mementos: ["m"], answer: "" })).toThrow(
      /block 1 contains the format marker <\|block_end\|>/,
    );
    expect(() => buildResponse({ blocks: ["a"], mementos: ["m"], answer: `x${THINK_END}` })).toThrow(/answer contains/);
  });

  it("parse/decompose invert it exactly (property)", () => {
    const text = fc.string({ maxLength: 30 }).filter((s) => FORMAT_MARKERS.every((m) => !s.includes(m)));
    const parts = responseParts(text, 0, 6);
    fc.assert(
      fc.property(parts, (p) => {
        const s = buildResponse(p);
        const parsed = parseResponse(s);
        expect(decomposeResponse(parsed)).toEqual(p);
        expect(buildResponse(decomposeResponse(parsed))).toBe(s);
        checkInvariants(parsed, s);
      }),
      { numRuns: 500 },
    );
  });
});

describe("performance", () => {
  it("parses a 100K-character response in a few milliseconds", () => {
    const block = "Let x = 3 < 4 so that a<b and <c>; then we compute the sum again. ".repeat(40);
    const parts = { blocks: [] as string[], mementos: [] as string[], answer: "done" };
    while (buildResponse(parts).length < 100_000) {
      parts.blocks.push(block);
      parts.mementos.push("memento: x = 3.");
    }
    const s = buildResponse(parts);
    expect(s.length).toBeGreaterThanOrEqual(100_000);
    for (let i = 0; i < 5; i++) parseResponse(s); // warm up
    const runs = 20;
    const t0 = performance.now();
    let p: ParsedResponse | null = null;
    for (let i = 0; i < runs; i++) p = parseResponse(s);
    const ms = (performance.now() - t0) / runs;
    expect(p!.blocks).toHaveLength(parts.blocks.length);
    expect(ms).toBeLessThan(10);
  });

  it("stays linear on pathological input (many '<' and many markers)", () => {
    const lt = "<".repeat(200_000);
    const markers = `${B}${BE}`.repeat(10_000);
    const t0 = performance.now();
    expect(parseResponse(lt).segments).toHaveLength(1);
    expect(parseResponse(markers).blocks).toHaveLength(10_000);
    expect(performance.now() - t0).toBeLessThan(500);
  });
});
