import type { TrackerTokenIds } from "../../src/masking/config.js";

/** Token ids for the one-letter stream language used in tracker and mask tests. */
export const IDS: Required<TrackerTokenIds> = {
  blockStart: 101,
  blockEnd: 102,
  summaryStart: 103,
  summaryEnd: 104,
  imStart: 105,
  assistant: 106,
};

const LETTERS: Record<string, number> = {
  S: IDS.blockStart,
  E: IDS.blockEnd,
  M: IDS.summaryStart,
  N: IDS.summaryEnd,
  I: IDS.imStart,
  A: IDS.assistant,
};

/**
 * "xxSxxEMxN" -> token ids: S block_start, E block_end, M summary_start, N summary_end, I <|im_start|>,
 * A "assistant"; any other character is an ordinary token. Position i is the i-th character.
 */
export function stream(s: string): number[] {
  return [...s].map((c) => LETTERS[c] ?? 7);
}
