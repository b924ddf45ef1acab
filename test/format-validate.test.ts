import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { buildResponse } from "../src/format/response.js";
import { BLOCK_END, BLOCK_START, FORMAT_MARKERS, SUMMARY_END, SUMMARY_START } from "../src/format/tokens.js";
import { LineIndex, formatDiagnostic, validateResponse, type Diagnostic } from "../src/format/validate.js";
import { responseParts } from "./helpers/arbitraries.js";

const B = BLOCK_START;
const BE = BLOCK_END;
const S = SUMMARY_START;
const SE = SUMMARY_END;

const errors = (s: string, allowMissingThinkStart = false): Diagnostic[] =>
  validateResponse(s, { allowMissingThinkStart }).diagnostics.filter((d) => d.severity === "error");
const codes = (s: string, allow = false): string[] => errors(s, allow).map((d) => d.code);

describe("validateResponse: valid responses", () => {
  it("accepts the canonical layout", () => {
    const r = validateResponse(buildResponse({ blocks: ["a", "b"], mementos: ["x", "y"], answer: "42" }));
    expect(r.diagnostics).toEqual([]);
    expect(r.valid).toBe(true);
  });

  it("accepts any whitespace between markers", () => {
    const s = `  <think> \n\t${B}a${BE}\n\n \r\n${S}x${SE}  ${B}b${BE}${S}y${SE}\n\n</think>`;
    expect(validateResponse(s).diagnostics).toEqual([]);
  });

  it("accepts a missing leading <think> only with the option", () => {
    const s = `\n${B}a${BE}\n${S}x${SE}\n</think>\n\nA`;
    expect(codes(s)).toEqual(["missing_think_start"]);
    expect(validateResponse(s, { allowMissingThinkStart: true }).diagnostics).toEqual([]);
    // The option still accepts a response that has <think>.
    expect(validateResponse(`<think>${s}`, { allowMissingThinkStart: true }).diagnostics).toEqual([]);
  });

  it("every built response is valid (property)", () => {
    const text = fc
      .string({ maxLength: 20 })
      .filter((s) => /\S/.test(s) && FORMAT_MARKERS.every((m) => !s.includes(m)));
    const parts = responseParts(text, 1, 5);
    fc.assert(
      fc.property(parts, (p) => {
        expect(validateResponse(buildResponse(p)).diagnostics).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("validateResponse: each problem, with its position", () => {
  it("unclosed block", () => {
    const s = `<think>\n${B}never closed\n</think>ans`;
    const [d] = errors(s);
    expect(d).toMatchObject({ code: "unclosed_block", offset: 8, line: 2, column: 1 });
    expect(d.message).toMatch(/block 1 is never closed.*before <\/think>/);
  });

  it("unclosed block at end of text also reports the missing </think>", () => {
    expect(codes(`<think>${B}abc`)).toEqual(["unclosed_block", "missing_think_end"]);
    const d = errors(`<think>${B}abc`)[1];
    expect(d.offset).toBe(`<think>${B}abc`.length);
  });

  it("block_end without block", () => {
    const s = `<think>${B}a${BE}${S}x${SE}\n  ${BE}</think>`;
    const [d] = errors(s);
    expect(d).toMatchObject({ code: "block_end_without_block", offset: s.lastIndexOf(BE), line: 2, column: 3 });
  });

  it("memento without a block: at the start, inside an open block, and a second memento", () => {
    expect(codes(`<think>${S}x${SE}</think>`)).toEqual(["memento_without_block"]);
    const inBlock = `<think>${B}a${S}x${SE}${BE}</think>`;
    expect(codes(inBlock)).toContain("memento_without_block");
    expect(errors(inBlock).find((d) => d.code === "memento_without_block")?.message).toMatch(/inside block 1/);
    const twice = `<think>${B}a${BE}${S}x${SE}\n${S}y${SE}</think>`;
    const [d] = errors(twice);
    expect(d).toMatchObject({ code: "memento_without_block", offset: twice.lastIndexOf(S), line: 2, column: 1 });
    expect(d.message).toMatch(/already has a memento/);
  });

  it("nested block", () => {
    const s = `<think>${B}outer ${B}inner${BE}${S}x${SE} more${BE}${S}y${SE}</think>`;
    const ds = errors(s);
    expect(ds[0]).toMatchObject({ code: "nested_block", offset: s.indexOf(B, 8) });
    expect(ds[0].message).toMatch(/block 1 is still open/);
  });

  it("unclosed memento, ended by another marker or by the end", () => {
    const s = `<think>${B}a${BE}${S}memento\n${B}b${BE}${S}y${SE}</think>`;
    const [d] = errors(s);
    expect(d).toMatchObject({ code: "unclosed_memento", offset: s.indexOf(S) });
    expect(d.message).toMatch(/memento 1 is never closed \(no <\|summary_end\|> before <\|block_start\|>\)/);
    expect(codes(`<think>${B}a${BE}${S}cut`)).toEqual(["unclosed_memento", "missing_think_end"]);
  });

  it("summary_end without memento", () => {
    expect(codes(`<think>${B}a${BE}${S}x${SE}${SE}</think>`)).toEqual(["summary_end_without_memento"]);
  });

  it("a closed block without a memento", () => {
    const s = `<think>${B}a${BE}\n${B}b${BE}${S}y${SE}</think>`;
    expect(errors(s)).toMatchObject([{ code: "block_without_memento", offset: s.indexOf(BE) + BE.length }]);
  });

  it("text outside blocks inside <think>", () => {
    const first = `<think>\n  stray\n${B}a${BE}${S}x${SE}</think>`;
    expect(errors(first)).toMatchObject([
      { code: "text_outside_block", offset: first.indexOf("stray"), line: 2, column: 3 },
    ]);
    expect(errors(first)[0].message).toMatch(/\(between <think> and the first block\): "stray"/);
    const between = `<think>${B}a${BE}${S}x${SE} oops ${B}b${BE}${S}y${SE}</think>`;
    expect(errors(between)).toMatchObject([{ code: "text_outside_block", offset: between.indexOf("oops") }]);
    expect(errors(between)[0].message).toMatch(/after a memento/);
    expect(codes(`<think>${B}a${BE} x ${S}m${SE}</think>`)).toEqual(["text_outside_block"]);
    expect(codes(`<think>${B}a${BE}${S}m${SE}tail</think>`)).toEqual(["text_outside_block"]);
  });

  it("text before <think>; and before the first block when <think> is omitted", () => {
    expect(codes(`hello <think>${B}a${BE}${S}m${SE}</think>`)).toEqual(["text_before_think"]);
    expect(codes(`hello ${B}a${BE}${S}m${SE}</think>`, true)).toEqual(["text_outside_block"]);
  });

  it("missing </think>", () => {
    const s = `<think>${B}a${BE}${S}m${SE}\n`;
    expect(errors(s)).toMatchObject([{ code: "missing_think_end", offset: s.length, line: 2, column: 1 }]);
  });

  it("markers after </think>", () => {
    const s = `<think>${B}a${BE}${S}m${SE}</think>\n\nanswer ${B}x${BE}\n</think>`;
    const ds = errors(s);
    expect(ds.map((d) => d.code)).toEqual([
      "marker_after_think_end",
      "marker_after_think_end",
      "marker_after_think_end",
    ]);
    expect(ds[0]).toMatchObject({ offset: s.indexOf(B, 20), line: 3, column: 8 });
  });

  it("duplicated <think>", () => {
    const s = `<think>\n<think>${B}a${BE}${S}m${SE}</think>`;
    expect(errors(s)).toMatchObject([{ code: "duplicate_think_start", offset: 8, line: 2, column: 1 }]);
  });

  it("plain text is neither started nor closed", () => {
    expect(codes("just an answer")).toEqual(["missing_think_start", "missing_think_end"]);
  });

  it("warnings do not make a response invalid", () => {
    const r = validateResponse(`<think>${B} ${BE}${S}${SE}</think>`);
    expect(r.valid).toBe(true);
    expect(r.diagnostics.map((d) => [d.code, d.severity])).toEqual([
      ["empty_block", "warning"],
      ["empty_memento", "warning"],
    ]);
    expect(validateResponse("<think>\n</think>\n\nx").diagnostics.map((d) => d.code)).toEqual(["no_blocks"]);
  });

  it("diagnostics come sorted by offset and never throw on arbitrary input (property)", () => {
    const soup = fc
      .array(fc.oneof(fc.constantFrom(...FORMAT_MARKERS), fc.string({ maxLength: 8 }), fc.constant("\n")), {
        maxLength: 30,
      })
      .map((a) => a.join(""));
    fc.assert(
      fc.property(soup, fc.boolean(), (s, allow) => {
        const ds = validateResponse(s, { allowMissingThinkStart: allow }).diagnostics;
        for (let i = 1; i < ds.length; i++) expect(ds[i].offset).toBeGreaterThanOrEqual(ds[i - 1].offset);
        for (const d of ds) {
          expect(d.offset).toBeGreaterThanOrEqual(0);
          expect(d.offset).toBeLessThanOrEqual(s.length);
          const before = s.slice(0, d.offset).split("\n");
          expect(d.line).toBe(before.length);
          expect(d.column).toBe(before[before.length - 1].length + 1);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("LineIndex and formatDiagnostic", () => {
  it("maps offsets to 1-based line:column", () => {
    const idx = new LineIndex("ab\ncd\n\nx");
    expect(idx.position(0)).toEqual({ line: 1, column: 1 });
    expect(idx.position(2)).toEqual({ line: 1, column: 3 });
    expect(idx.position(3)).toEqual({ line: 2, column: 1 });
    expect(idx.position(6)).toEqual({ line: 3, column: 1 });
    expect(idx.position(8)).toEqual({ line: 4, column: 2 });
  });

  it("formats one line", () => {
    const [d] = errors(`<think>${B}x`);
    expect(formatDiagnostic(d)).toBe("1:8: unclosed_block: block 1 is never closed (no <|block_end|> at end of text)");
  });
});
