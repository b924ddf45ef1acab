import fc from "fast-check";
import type { ResponseParts } from "../../src/format/response.js";

/** Response parts (n blocks, their n mementos and an answer, n from minBlocks to maxBlocks) drawn from `text`. */
export function responseParts(
  text: fc.Arbitrary<string>,
  minBlocks: number,
  maxBlocks: number,
): fc.Arbitrary<ResponseParts> {
  return fc.integer({ min: minBlocks, max: maxBlocks }).chain((n) =>
    fc.record({
      blocks: fc.array(text, { minLength: n, maxLength: n }),
      mementos: fc.array(text, { minLength: n, maxLength: n }),
      answer: text,
    }),
  );
}
