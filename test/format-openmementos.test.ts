import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  type OpenMementosRow,
  checkOpenMementosRow,
  checkRowConsistency,
  parseOpenMementosRow,
  responseToRow,
  rowBlockTexts,
  rowToResponse,
} from "../src/format/openmementos.js";
import { parseResponse } from "../src/format/response.js";
import { BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START } from "../src/format/tokens.js";
import { validateResponse } from "../src/format/validate.js";

const meta = { problem: "What is 2+2?", domain: "math", source: "test", difficulty: 3 };

function row(over: Partial<OpenMementosRow> = {}): OpenMementosRow {
  const base: OpenMementosRow = {
    ...meta,
    response: "",
    sentences: ["We add.", "2+2 = 4.", "Check: 4-2 = 2.", "Good."],
    blocks: [
      [0, 1],
      [2, 3],
    ],
    block_summaries: ["2+2=4.", "Checked."],
  };
  const r = { ...base, ...over };
  if (!over.response) r.response = rowToResponse({ ...r, response: "<think></think>\n\n4" });
  return r;
}

describe("OpenMementos row schema", () => {
  it("accepts a valid row", () => {
    expect(checkOpenMementosRow(row())).toEqual([]);
  });

  it("reports gaps, overlaps, bad order, out of range and uncovered sentences", () => {
    const issue = (blocks: [number, number][], extra: Partial<OpenMementosRow> = {}) =>
      checkOpenMementosRow({ ...row(), blocks, ...extra });
    expect(
      issue([
        [1, 1],
        [2, 3],
      ]),
    ).toEqual([
      { path: "blocks.0.0", message: "block 0 starts at sentence 1; the first block must start at sentence 0" },
    ]);
    expect(
      issue([
        [0, 0],
        [2, 3],
      ])[0].message,
    ).toBe("block 1 starts at sentence 2 but block 0 ends at 0: sentences 1..1 are in no block");
    expect(
      issue([
        [0, 2],
        [2, 3],
      ])[0].message,
    ).toMatch(/block 1 starts at sentence 2, overlapping block 0 which ends at 2/);
    expect(
      issue([
        [0, 1],
        [2, 4],
      ])[0],
    ).toEqual({
      path: "blocks.1.1",
      message: "block 1 ends at sentence 4 but there are only 4 sentences (ranges are inclusive)",
    });
    expect(
      issue([
        [0, 1],
        [2, 1],
      ])[0].message,
    ).toMatch(/end before start/);
    expect(
      issue(
        [
          [0, 1],
          [2, 2],
        ],
        { block_summaries: ["a", "b"] },
      )[0].message,
    ).toBe("blocks cover sentences 0..2 but there are 4 sentences (the last 1 are in no block)");
    expect(checkOpenMementosRow({ ...row(), block_summaries: ["only one"] })).toEqual([
      { path: "block_summaries", message: "1 block_summaries for 2 blocks (need exactly one per block)" },
    ]);
  });

  it("reports shape errors with their path", () => {
    const bad = { ...row(), difficulty: 2.5 } as unknown;
    expect(checkOpenMementosRow(bad)[0].path).toBe("difficulty");
    expect(() => parseOpenMementosRow({ ...row(), blocks: [[0]] }, "data.jsonl:3")).toThrow(
      /^data.jsonl:3: invalid OpenMementos row: blocks.0/,
    );
  });
});

describe("row <-> response", () => {
  it("joins each block's sentences with a space, in the canonical layout", () => {
    const r = row();
    expect(rowBlockTexts(r)).toEqual(["We add. 2+2 = 4.", "Check: 4-2 = 2. Good."]);
    expect(rowToResponse(r)).toBe(
      `<think>\n${BLOCK_START}We add. 2+2 = 4.${BLOCK_END}\n${SUMMARY_START}2+2=4.${SUMMARY_END}\n` +
        `${BLOCK_START}Check: 4-2 = 2. Good.${BLOCK_END}\n${SUMMARY_START}Checked.${SUMMARY_END}\n</think>\n\n4`,
    );
    expect(rowToResponse(r, { joiner: "\n", answer: "four" })).toMatch(/We add\.\n2\+2 = 4\..*\n\nfour$/s);
    expect(validateResponse(rowToResponse(r)).valid).toBe(true);
  });

  it("rejects an invalid row before converting", () => {
    expect(() => rowToResponse({ ...row(), blocks: [[0, 3]] })).toThrow(/block_summaries/);
  });

  it("responseToRow recovers the sentence ranges and summaries", () => {
    const r = row();
    const back = responseToRow(r.response, r.sentences, meta);
    expect(back).toEqual(r);
    // Whitespace differences between sentences (newline joiner) do not matter.
    const nl = rowToResponse(r, { joiner: "\n\n" });
    expect(responseToRow(nl, r.sentences, meta).blocks).toEqual(r.blocks);
  });

  it("responseToRow reports sentences that do not match the blocks", () => {
    const r = row();
    expect(() => responseToRow(r.response, ["We add.", "2+2 = 5.", "Check: 4-2 = 2.", "Good."], meta)).toThrow(
      /block 0: sentence 1 does not continue/,
    );
    expect(() => responseToRow(r.response, r.sentences.slice(0, 3), meta)).toThrow(/block 1: the sentences run out/);
    expect(() => responseToRow(r.response, [...r.sentences, "Extra."], meta)).toThrow(/sentence 4 is in no block/);
  });

  it("row -> response -> row is the identity (property)", () => {
    const sentence = fc.stringMatching(/^[A-Za-z0-9=+.,:;()]{1,8}( [A-Za-z0-9=+.]{1,6}){0,3}$/);
    const rows = fc
      .array(fc.array(sentence, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 5 })
      .chain((groups) =>
        fc
          .array(fc.stringMatching(/^[a-z ]{1,10}$/), { minLength: groups.length, maxLength: groups.length })
          .map((sums) => {
            const sentences = groups.flat();
            const blocks: [number, number][] = [];
            let i = 0;
            for (const g of groups) {
              blocks.push([i, i + g.length - 1]);
              i += g.length;
            }
            return { sentences, blocks, sums };
          }),
      );
    fc.assert(
      fc.property(rows, ({ sentences, blocks, sums }) => {
        const r0 = { ...meta, response: "<think></think>\n\nA", sentences, blocks, block_summaries: sums };
        const response = rowToResponse(r0);
        const r1 = responseToRow(response, sentences, meta);
        expect(r1.blocks).toEqual(blocks);
        expect(r1.block_summaries).toEqual(sums);
        expect(rowToResponse(r1)).toBe(response);
      }),
      { numRuns: 300 },
    );
  });
});

describe("checkRowConsistency", () => {
  it("is empty for a consistent row", () => {
    expect(checkRowConsistency(row())).toEqual([]);
  });

  it("flags a response whose blocks or mementos disagree with the row", () => {
    const r = row();
    const edited = r.response.replace("Good.", "Bad.").replace("Checked.", "Unchecked.");
    expect(checkRowConsistency({ ...r, response: edited }).map((i) => i.message)).toEqual([
      "block 1 of the response differs from sentences 2..3",
      "memento 1 of the response differs from block_summaries[1]",
    ]);
    const fewer = `<think>${BLOCK_START}We add. 2+2 = 4.${BLOCK_END}${SUMMARY_START}2+2=4.${SUMMARY_END}</think>4`;
    expect(checkRowConsistency({ ...r, response: fewer })[0].message).toBe("response has 1 blocks but the row lists 2");
    expect(parseResponse(fewer).blocks).toHaveLength(1);
  });
});
