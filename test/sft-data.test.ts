import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readAllRecords } from "../src/data/readers.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { denseMask, mementoPattern, causalPattern } from "../src/masking/masks.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import {
  IGNORE_INDEX,
  STAGE2_MASKING,
  buildSftExample,
  exportRecord,
  exportSft,
  maskFromExport,
  packExamples,
  padBatch,
  lengthBatches,
  renderSftPrompt,
  stagePattern,
  trackerIdsOf,
  type ExportRecord,
} from "../src/train/sft-data.js";
import { generateDataset } from "../src/train/toy-task.js";
import { tempDir } from "./helpers/tmp.js";

const dir = tempDir("memento-sft-");

const tok = toyTokenizer();
const data = generateDataset(11, 20);

describe("SFT examples", () => {
  it("labels mask the prompt and cover every assistant token", () => {
    for (const d of data) {
      const ex = buildSftExample(tok, d.prompt, d.response);
      expect(ex.promptLength).toBe(tok.encode(renderSftPrompt(d.prompt)).length);
      expect(tok.decode(ex.ids.subarray(0, ex.promptLength))).toBe(
        `<|im_start|>user\n${d.prompt}<|im_end|>\n<|im_start|>assistant\n`,
      );
      for (let i = 0; i < ex.ids.length; i++) expect(ex.labels[i]).toBe(i < ex.promptLength ? IGNORE_INDEX : ex.ids[i]);
      expect(ex.ids[ex.ids.length - 1]).toBe(tok.specialTokens.imEnd);
      expect(ex.ids[ex.promptLength]).toBe(tok.specialTokens.thinkStart);
    }
  });

  it("works with the Qwen3 tokenizer too", () => {
    const q = loadTokenizer();
    const d = data[0];
    const ex = buildSftExample(q, d.prompt, d.response);
    expect(q.decode(Array.from(ex.ids))).toBe(
      `<|im_start|>user\n${d.prompt}<|im_end|>\n<|im_start|>assistant\n${d.response}<|im_end|>`,
    );
    expect(ex.ids[ex.promptLength]).toBe(q.specialTokens.thinkStart);
    const p = stagePattern(ex, 2, trackerIdsOf(q));
    expect(Array.from(p.visibleUntil).some((v) => v !== 0x7fffffff)).toBe(true);
  });

  it("stage 1 is causal; stage 2 evicts every block's content after its memento", () => {
    const ex = buildSftExample(tok, data[0].prompt, data[0].response);
    const ids = trackerIdsOf(tok);
    expect(stagePattern(ex, 1, ids)).toEqual(causalPattern(ex.ids.length));
    const p = stagePattern(ex, 2, ids);
    const s = tok.specialTokens;
    const arr = Array.from(ex.ids);
    let bs = -1;
    for (let i = 0; i < arr.length; i++) {
      if (arr[i] === s.blockStart) bs = i;
      if (arr[i] === s.blockEnd) {
        const se = arr.indexOf(s.summaryEnd, i);
        for (let k = bs + 1; k < i; k++) expect(p.visibleUntil[k]).toBe(se);
        expect(p.visibleUntil[bs]).toBe(0x7fffffff);
        expect(p.visibleUntil[i]).toBe(0x7fffffff);
      }
    }
  });

  it("the exported compact mask matches denseMask(mementoPattern(...)) row by row", () => {
    const ids = trackerIdsOf(tok);
    for (const d of data.slice(0, 5)) {
      const ex = buildSftExample(tok, d.prompt, d.response);
      const pattern = mementoPattern(ex.ids, ex.promptLength, ids, { ...STAGE2_MASKING });
      const rec = JSON.parse(JSON.stringify(exportRecord(ex, stagePattern(ex, 2, ids)))) as ExportRecord;
      expect(rec.input_ids).toEqual(Array.from(ex.ids));
      expect(rec.labels).toEqual(Array.from(ex.labels));
      expect(rec.prompt_length).toBe(ex.promptLength);
      expect(rec.memento_visible_until.some((v) => v === -1)).toBe(true);
      expect(maskFromExport(rec)).toEqual(denseMask(pattern));
    }
  });

  it("pads and packs batches with block-diagonal patterns", () => {
    const ids = trackerIdsOf(tok);
    // Short problems (1-2 rounds, 103-178 tokens) so that several share a packed row.
    const exs = generateDataset(11, 6, { minBlocks: 1, maxBlocks: 2 }).map((d) =>
      buildSftExample(tok, d.prompt, d.response),
    );
    const pats = exs.map((e) => stagePattern(e, 2, ids));
    const batches = lengthBatches(exs, 4);
    expect(batches.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    const b = padBatch(exs, { padId: tok.specialTokens.pad!, patterns: pats });
    const L = b.length;
    expect(L).toBe(Math.max(...exs.map((e) => e.ids.length)));
    exs.forEach((e, r) => {
      expect(Array.from(b.ids.subarray(r * L, r * L + e.ids.length))).toEqual(Array.from(e.ids));
      for (let i = e.ids.length; i < L; i++) {
        expect(b.ids[r * L + i]).toBe(tok.specialTokens.pad);
        expect(b.labels[r * L + i]).toBe(IGNORE_INDEX);
      }
    });
    const rows = packExamples(exs, 400, pats);
    expect(rows.flatMap((r) => r.members).sort((a, c) => a - c)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const row of rows) {
      const n = row.pattern.length;
      const dense = denseMask(row.pattern);
      row.members.forEach((m, j) => {
        const own = denseMask(pats[m]);
        const a = row.offsets[j];
        const len = exs[m].ids.length;
        expect(row.positions[a]).toBe(0);
        let mismatches = 0;
        for (let q = 0; q < len; q++) {
          for (let k = 0; k < n; k++) {
            const inside = k >= a && k < a + len;
            if (dense[(a + q) * n + k] !== (inside ? own[q * len + (k - a)] : 0)) mismatches++;
          }
        }
        expect(mismatches).toBe(0);
        expect(rows.length).toBeLessThan(exs.length); // some row really packs several examples
      });
    }
  });
});

describe("SFT export", () => {
  it("writes records, skips and reports long and invalid rows (never truncates)", async () => {
    const input = join(dir, "in.jsonl");
    const rows = generateDataset(12, 6).map((d) => ({ prompt: d.prompt, response: d.response }));
    const lens = rows.map((r) => buildSftExample(tok, r.prompt, r.response).ids.length);
    const max = [...lens].sort((a, b) => a - b)[2];
    const lines = rows.map((r) => JSON.stringify(r));
    lines.push(JSON.stringify({ prompt: "x", response: "<think>\nno blocks closed" }));
    writeFileSync(input, lines.join("\n") + "\n");
    const out = join(dir, "out.jsonl");
    const rep = await exportSft(input, out, { tokenizer: tok, maxTokens: max });
    const keep = lens.filter((n) => n <= max).length;
    expect(rep.read).toBe(7);
    expect(rep.written).toBe(keep);
    expect(rep.skipped.filter((s) => s.reason === "too_long").map((s) => s.tokens)).toEqual(
      lens.filter((n) => n > max),
    );
    expect(rep.skipped.filter((s) => s.reason === "too_long").map((s) => s.line)).toEqual(
      lens.map((n, i) => (n > max ? i + 1 : -1)).filter((i) => i > 0),
    );
    expect(rep.skipped.find((s) => s.reason === "invalid")).toMatchObject({ line: 7 });
    const recs = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as ExportRecord);
    expect(recs.map((r) => r.input_ids.length)).toEqual(lens.filter((n) => n <= max));
    expect(recs.every((r) => r.input_ids.length <= max)).toBe(true);

    const pq = join(dir, "out.parquet");
    const rep2 = await exportSft(input, pq, { tokenizer: tok });
    expect(rep2.written).toBe(6);
    const back = await readAllRecords(pq);
    expect(back.records.length).toBe(6);
    const first = back.records[0] as unknown as ExportRecord;
    const ex = buildSftExample(tok, rows[0].prompt, rows[0].response);
    expect(first.input_ids).toEqual(Array.from(ex.ids));
    expect(first.prompt_length).toBe(ex.promptLength);
    expect(first.memento_visible_until).toEqual(
      exportRecord(ex, stagePattern(ex, 2, trackerIdsOf(tok))).memento_visible_until,
    );
  });

  it("accepts OpenMementos rows", async () => {
    const input = join(dir, "om.jsonl");
    const row = {
      problem: "What is 2+2?",
      response: "<think>\n...</think>\n\n4",
      domain: "math",
      source: "test",
      difficulty: 1,
      sentences: ["We add 2 and 2.", "That gives 4.", "Check: 4-2=2."],
      blocks: [
        [0, 1],
        [2, 2],
      ],
      block_summaries: ["2+2=4.", "Checked."],
    };
    writeFileSync(input, JSON.stringify(row) + "\n");
    const out = join(dir, "om-out.jsonl");
    const rep = await exportSft(input, out, { tokenizer: tok });
    expect(rep.written).toBe(1);
    const rec = JSON.parse(readFileSync(out, "utf8")) as ExportRecord;
    const text = tok.decode(rec.input_ids);
    expect(text).toContain(
      "<|block_start|>We add 2 and 2. That gives 4.<|block_end|>\n<|summary_start|>2+2=4.<|summary_end|>",
    );
    expect(text.endsWith("</think>\n\n4<|im_end|>")).toBe(true);
  });
});
