import { describe, expect, it } from "vitest";
import { BlockTracker, type Eviction } from "../src/masking/tracker.js";
import { resolveMasking, type MaskingConfig } from "../src/masking/config.js";
import { IDS, stream } from "./helpers/stream.js";

/** Runs a stream through a tracker; returns [start, end, trigger] per eviction. */
function run(s: string, config: Partial<MaskingConfig> = {}, promptLength = 0, ids = IDS) {
  const tracker = new BlockTracker(resolveMasking(config), ids);
  const out: [number, number, number][] = [];
  const raw: Eviction[] = [];
  stream(s).forEach((t, i) => {
    for (const ev of tracker.push(t, i < promptLength)) {
      out.push([ev.start, ev.end, ev.trigger]);
      raw.push(ev);
    }
  });
  return { evictions: out, raw, tracker };
}

describe("BlockTracker: eviction ranges", () => {
  //            0123456789
  const one = "xxSxxEMxN";
  it("keepLastNBlocks 0 evicts the block content, keeping delimiters, right at <|summary_end|>", () => {
    expect(run(one).evictions).toEqual([[3, 5, 8]]);
  });
  it("maskDelimiters evicts [block_start, block_end] inclusive", () => {
    expect(run(one, { maskDelimiters: true }).evictions).toEqual([[2, 6, 8]]);
  });
  it("restartMode evicts the delimiters too and asks to recompute from <|summary_start|>", () => {
    const r = run(one, { restartMode: true });
    expect(r.evictions).toEqual([[2, 6, 8]]);
    expect(r.raw[0].recomputeFrom).toBe(6);
  });
  it("restartMode ignores maskDelimiters=false", () => {
    expect(run(one, { restartMode: true, maskDelimiters: false }).evictions).toEqual([[2, 6, 8]]);
  });
  it("keepLastNBlocks -1 never evicts", () => {
    expect(run("SxEMxNSxEMxNSxEMxN", { keepLastNBlocks: -1 }).evictions).toEqual([]);
  });
  it("keepLastNBlocks 0 evicts every completed block at its own summary end", () => {
    //        0         1
    //        0123456789012345678
    const s = "SxxEMxNSxEMxNSxEMN";
    expect(run(s).evictions).toEqual([
      [1, 3, 6],
      [8, 9, 12],
      [14, 15, 17],
    ]);
  });
  it("keepLastNBlocks N keeps the last N blocks and evicts the oldest, one per trigger", () => {
    const s = "SxEMNSxEMNSxEMNSxEMN";
    expect(run(s, { keepLastNBlocks: 1 }).evictions).toEqual([
      [1, 2, 9],
      [6, 7, 14],
      [11, 12, 19],
    ]);
    expect(run(s, { keepLastNBlocks: 2 }).evictions).toEqual([
      [1, 2, 14],
      [6, 7, 19],
    ]);
    expect(run(s, { keepLastNBlocks: 4 }).evictions).toEqual([]);
  });
  it("compactOnSummaryEnd false never evicts at <|summary_end|>", () => {
    expect(run("SxEMNSxEMN", { compactOnSummaryEnd: false }).evictions).toEqual([]);
  });
});

describe("BlockTracker: keepLastBlockForAnswer", () => {
  it("defers each eviction to the next <|block_start|> with keepLastNBlocks 0", () => {
    //        0123456789012
    const s = "SxxEMxNSxEMxN";
    const r = run(s, { keepLastBlockForAnswer: true });
    expect(r.evictions).toEqual([[1, 3, 7]]);
    expect(r.tracker.pendingBlocks).toBe(1); // the last block stays visible for the answer
  });
  it("has no effect when keepLastNBlocks is not 0", () => {
    const s = "SxEMNSxEMNSxEMN";
    expect(run(s, { keepLastBlockForAnswer: true, keepLastNBlocks: 1 }).evictions).toEqual(
      run(s, { keepLastNBlocks: 1 }).evictions,
    );
  });
  it("evicts only the oldest waiting block at a <|block_start|>", () => {
    // Two blocks complete in the prompt (never evicted there), then each generated <|block_start|> evicts one.
    const s = "SxEMNSxEMNSxSx";
    const r = run(s, { keepLastBlockForAnswer: true }, 10);
    expect(r.evictions).toEqual([
      [1, 2, 10],
      [6, 7, 12],
    ]);
  });
});

describe("BlockTracker: prompt tokens", () => {
  it("update state but never trigger eviction; completed prompt blocks wait in the FIFO", () => {
    //        0         1
    //        012345678901234
    const s = "SxEMNSxEMNSxEMN";
    const r = run(s, {}, 10);
    // Two prompt blocks wait; the first generated trigger evicts only the oldest of the three.
    expect(r.evictions).toEqual([[1, 2, 14]]);
    expect(r.tracker.pendingBlocks).toBe(2);
    expect(r.tracker.blocks.map((b) => b.inPrompt)).toEqual([true, true, false]);
  });
  it("a block opened in the prompt can be closed and summarised by the output", () => {
    const r = run("SxxExMN", {}, 3);
    expect(r.evictions).toEqual([[1, 3, 6]]);
  });
});

describe("BlockTracker: assistant section", () => {
  it("ignores markers before <|im_start|>assistant, including at the assistant position", () => {
    //        0         1         2
    //        0123456789012345678901
    const s = "SxEMNIuserxIAxSxxEMxN";
    const r = run(s, { requireAssistantSection: true }, 14);
    expect(r.tracker.blocks.map((b) => b.start)).toEqual([14]);
    expect(r.evictions).toEqual([[15, 17, 20]]);
  });
  it("needs 'assistant' within 2 positions of <|im_start|>", () => {
    const near = run("IxASxEMN", { requireAssistantSection: true });
    expect(near.tracker.assistantStarted).toBe(true);
    expect(near.evictions).toEqual([[4, 5, 7]]);
    const far = run("IxxASxEMN", { requireAssistantSection: true });
    expect(far.tracker.assistantStarted).toBe(false);
    expect(far.evictions).toEqual([]);
  });
  it("remembers only the last <|im_start|>", () => {
    expect(run("IxxIASxEMN", { requireAssistantSection: true }).tracker.assistantStarted).toBe(true);
  });
  it("'assistant' before any <|im_start|> does not open the section", () => {
    expect(run("ASxEMN", { requireAssistantSection: true }).evictions).toEqual([]);
  });
  it("is switched off when the tokenizer has no <|im_start|>/assistant ids", () => {
    const { imStart: _a, assistant: _b, ...noChat } = IDS;
    const r = run("SxEMN", { requireAssistantSection: true }, 0, noChat as typeof IDS);
    expect(r.evictions).toEqual([[1, 2, 4]]);
  });
  it("opening the section in the prompt then generating works like the engine's chat prompts", () => {
    const s = "IuserxIASxxEMxN";
    expect(run(s, { requireAssistantSection: true }, 8).evictions).toEqual([[9, 11, 14]]);
  });
});

describe("BlockTracker: malformed streams", () => {
  it("ignores <|block_end|> with no open block", () => {
    expect(run("ExSxEMN").evictions).toEqual([[3, 4, 6]]);
  });
  it("ignores <|summary_start|> with no ended block and <|summary_end|> with no open memento", () => {
    expect(run("MxNSxxMxN").evictions).toEqual([]); // block never ended: the memento attaches nowhere
    expect(run("NSxEN").evictions).toEqual([]);
  });
  it("a second memento for the same block attaches nowhere", () => {
    const r = run("SxEMNMxN", { keepLastNBlocks: -1 });
    expect(r.tracker.blocks[0].summaryStart).toBe(3);
    expect(r.tracker.pendingBlocks).toBe(1);
  });
  it("nested blocks: the inner block ends first; the memento attaches to the most recent ended block", () => {
    //        0123456789012
    const s = "SxSxxExEMNMN";
    const r = run(s, { keepLastNBlocks: 0 });
    // At the first memento both blocks have ended; it attaches to the most recently *created* one (the inner).
    expect(r.tracker.blocks.map((b) => [b.start, b.end, b.summaryStart])).toEqual([
      [0, 7, 10],
      [2, 5, 8],
    ]);
    expect(r.evictions).toEqual([
      [3, 5, 9],
      [1, 7, 11],
    ]);
  });
  it("an unclosed block is never evicted", () => {
    expect(run("SxxxxMxN").evictions).toEqual([]);
  });
  it("a memento attaches to the most recently created ended block, leaving an earlier unsummarised one alone", () => {
    //        0123456789
    const s = "SxESxEMxN";
    const r = run(s);
    // The memento attaches to the most recently created ended block (start 3).
    expect(r.evictions).toEqual([[4, 5, 8]]);
  });
});

describe("BlockTracker: maxBlockTokens", () => {
  it("asks for <|block_end|> once the open block holds maxBlockTokens content tokens", () => {
    const tracker = new BlockTracker(resolveMasking({ maxBlockTokens: 3 }), IDS);
    const seen: boolean[] = [];
    for (const t of stream("Sxxxx")) {
      tracker.push(t);
      seen.push(tracker.mustEndBlock());
    }
    expect(seen).toEqual([false, false, false, true, true]);
    tracker.push(IDS.blockEnd);
    expect(tracker.mustEndBlock()).toBe(false);
  });
  it("is off by default and outside blocks", () => {
    const tracker = new BlockTracker(resolveMasking({}), IDS);
    for (const t of stream("Sxxxxxxxxxxxxxxxxxxx")) tracker.push(t);
    expect(tracker.mustEndBlock()).toBe(false);
    const limited = new BlockTracker(resolveMasking({ maxBlockTokens: 1 }), IDS);
    for (const t of stream("xxxxx")) limited.push(t);
    expect(limited.mustEndBlock()).toBe(false);
  });
});
