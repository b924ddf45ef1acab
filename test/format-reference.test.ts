import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type ReferenceTrace,
  approxTokens,
  charLen,
  checkReferenceTrace,
  parseReferenceTrace,
  referenceToResponse,
  responseToReference,
} from "../src/format/reference.js";
import { buildResponse, parseResponse } from "../src/format/response.js";
import { validateResponse } from "../src/format/validate.js";
import { describeWithReference, referencePath } from "./helpers/reference.js";

const FILES = ["memento_output_response.json", "memento_output_code.json", "memento_output_science.json"];

function seg(type: "block" | "summary" | "answer", block_idx: number, text: string) {
  return { type, block_idx, text, char_len: charLen(text), approx_tokens: approxTokens(charLen(text)) };
}

const small: ReferenceTrace = {
  problem: "p",
  problem_source: "unit",
  answer: "4",
  segments: [
    seg("block", 1, "Add 2 and 2."),
    seg("summary", 1, "2+2=4."),
    seg("block", 2, "Check."),
    seg("summary", 2, "ok"),
    seg("answer", 0, "**4**"),
  ],
};

describe("segments JSON <-> response", () => {
  it("renders segments in the canonical layout and reads them back", () => {
    const s = referenceToResponse(small);
    expect(s).toBe(buildResponse({ blocks: ["Add 2 and 2.", "Check."], mementos: ["2+2=4.", "ok"], answer: "**4**" }));
    expect(validateResponse(s).valid).toBe(true);
    expect(responseToReference(s, small)).toEqual(small);
  });

  it("falls back to the top-level answer without an answer segment", () => {
    const t = { ...small, segments: small.segments.slice(0, 4) };
    expect(referenceToResponse(t).endsWith("</think>\n\n4")).toBe(true);
  });

  it("trims texts and counts code points when building segments", () => {
    const s = buildResponse({ blocks: ["  x😀y \n"], mementos: ["\nm "], answer: " A " });
    const t = responseToReference(s, { problem: "p", problem_source: "u", answer: "A" });
    expect(t.segments).toEqual([seg("block", 1, "x😀y"), seg("summary", 1, "m"), seg("answer", 0, "A")]);
    expect(t.segments[0].char_len).toBe(3); // "x😀y" is 4 UTF-16 units
    expect(t).not.toHaveProperty("label");
    expect(responseToReference(s, { problem: "p", problem_source: "u", answer: "A", label: "Math" }).label).toBe(
      "Math",
    );
  });

  it("reports wrong char_len, approx_tokens, order and a missing summary", () => {
    const bad: ReferenceTrace = {
      ...small,
      segments: [
        { ...small.segments[0], char_len: 99 },
        { ...small.segments[1], approx_tokens: 7 },
        seg("summary", 2, "out of order"),
        seg("block", 3, "last"),
      ],
    };
    const issues = checkReferenceTrace(bad);
    expect(issues.map((i) => [i.code, i.segment, i.severity])).toEqual([
      ["char_len_mismatch", 0, "error"],
      ["approx_tokens_mismatch", 1, "warning"],
      ["segment_order", 2, "error"],
      ["segment_order", undefined, "error"],
    ]);
    expect(issues[0].message).toBe("segment 0 (block 1): char_len 99 but the text has 12 characters");
    expect(issues[2].message).toBe("segment 2: expected block 2, found summary 2");
    expect(issues[3].message).toBe("block 3 has no summary segment");
    expect(() => parseReferenceTrace(bad, "f.json")).toThrow(/^f.json: segment 0 \(block 1\): char_len 99/);
    expect(() => parseReferenceTrace({ ...small, segments: [{ type: "note" }] })).toThrow(
      /invalid segments JSON: segments.0.type/,
    );
  });

  it("a malformed trace renders as it stands so the validator can point at it", () => {
    const t = { ...small, segments: [seg("summary", 1, "m"), seg("block", 1, "b")] };
    expect(validateResponse(referenceToResponse(t)).diagnostics.map((d) => d.code)).toEqual([
      "memento_without_block",
      "block_without_memento",
    ]);
  });
});

describeWithReference("reference memento_output_*.json files", () => {
  for (const name of FILES) {
    describe(name, () => {
      const trace = JSON.parse(readFileSync(referencePath(name), "utf8")) as ReferenceTrace;

      it("passes the checks: char_len is the text length, approx_tokens = floor(char_len/4)", () => {
        expect(checkReferenceTrace(trace)).toEqual([]);
        for (const s of trace.segments) {
          expect(s.char_len).toBe(charLen(s.text));
          expect(s.approx_tokens).toBe(Math.floor(s.char_len / 4));
        }
        expect(parseReferenceTrace(trace)).toEqual(trace);
      });

      it("round-trips through a valid Memento response", () => {
        const response = referenceToResponse(trace);
        const result = validateResponse(response);
        expect(result.diagnostics).toEqual([]);
        const parsed = parseResponse(response);
        const nBlocks = trace.segments.filter((s) => s.type === "block").length;
        expect(parsed.blocks).toHaveLength(nBlocks);
        const back = responseToReference(parsed, trace);
        expect(back).toEqual(trace);
        expect(JSON.stringify(back)).toBe(JSON.stringify(trace)); // same key order too
      });
    });
  }
});
