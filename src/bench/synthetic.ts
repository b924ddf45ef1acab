import type { TrackerTokenIds } from "../masking/config.js";

/** Qwen3 ids of the Memento markers as our tokenizer assigns them (after the 26 existing added tokens). */
export const QWEN3_MEMENTO_IDS: Required<TrackerTokenIds> = {
  blockStart: 151669,
  blockEnd: 151670,
  summaryStart: 151671,
  summaryEnd: 151672,
  imStart: 151644,
  assistant: 77091,
};

/** Deterministic xorshift PRNG so benchmarks and fixtures are reproducible. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

/**
 * A Memento-shaped token stream of about `length` tokens: a chat prompt, then blocks of ~`blockTokens`
 * ordinary tokens each closed by a memento of ~`mementoTokens`, then an answer. Shapes follow the paper's
 * OpenMementos averages (block ~1,150 tokens, memento ~194) by default.
 */
export function syntheticMementoStream(
  length: number,
  seed = 1,
  ids: Required<TrackerTokenIds> = QWEN3_MEMENTO_IDS,
  blockTokens = 1150,
  mementoTokens = 194,
  promptTokens = 120,
): { tokens: Int32Array; promptLength: number } {
  const rand = xorshift(seed);
  const out: number[] = [ids.imStart, 872];
  const ordinary = () => 1000 + Math.floor(rand() * 100_000);
  while (out.length < promptTokens - 2) out.push(ordinary());
  out.push(ids.imStart, ids.assistant);
  const promptLength = out.length;
  out.push(151667); // <think>
  while (out.length < length - 50) {
    out.push(ids.blockStart);
    const b = Math.max(1, Math.round(blockTokens * (0.5 + rand())));
    for (let i = 0; i < b; i++) out.push(ordinary());
    out.push(ids.blockEnd, ids.summaryStart);
    const m = Math.max(1, Math.round(mementoTokens * (0.5 + rand())));
    for (let i = 0; i < m; i++) out.push(ordinary());
    out.push(ids.summaryEnd);
  }
  out.push(151668); // </think>
  while (out.length < length) out.push(ordinary());
  return { tokens: Int32Array.from(out.slice(0, Math.max(length, promptLength))), promptLength };
}
