/**
 * A model whose logits outnumber its tokenizer's ids (the toy's embedding is padded from 108 to 112 rows) never
 * has a padded id sampled: such an id decodes to nothing, and an RL run at temperature 1.0 once drew one and
 * died ("unknown token id 110"). The recorded log-probabilities stay the raw model's (RL's pi_old is the
 * trainer's log_softmax over every logit).
 */
import { describe, expect, it } from "vitest";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import { createEngine } from "../src/engine/engine.js";
import type { DecodeInput, SeqId } from "../src/engine/types.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { randomModel } from "./helpers/random-model.js";

const PADDED_ID = 110;

/** The reference backend with one padded id made the likeliest token everywhere. */
class PaddedFavouriteBackend extends ReferenceBackend {
  private boost(l: Float32Array): Float32Array {
    l[PADDED_ID] = 30;
    return l;
  }
  override async prefill(seq: SeqId, tokens: readonly number[], positions: readonly number[]) {
    return this.boost(await super.prefill(seq, tokens, positions));
  }
  override async decode(batch: readonly DecodeInput[]) {
    return (await super.decode(batch)).map((l) => this.boost(l));
  }
  override async recompute(seq: SeqId, tokens: readonly number[], positions: readonly number[]) {
    return this.boost(await super.recompute(seq, tokens, positions));
  }
}

describe("engine: padded logits", () => {
  it("never samples an id the tokenizer lacks; log-probabilities stay the raw model's", async () => {
    const tok = toyTokenizer();
    const backend = new PaddedFavouriteBackend(randomModel({ seed: 5 }));
    expect(backend.vocabSize).toBeGreaterThan(tok.vocabSize);
    const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 10_000 });
    const prompt = tok.encode("<|im_start|>user\ns=1234 k=4<|im_end|>\n<|im_start|>assistant\n");
    const results = await Promise.all(
      [1, 2, 3, 4].map((seed) =>
        engine
          .submit({
            promptTokens: prompt,
            sampling: { temperature: 1, topP: 1, topK: 0, minP: 0, maxTokens: 60, seed },
            logprobs: 0,
          })
          .result(),
      ),
    );
    for (const r of results) {
      expect(r.finishReason).not.toBe("error");
      expect(r.tokens.length).toBeGreaterThan(0);
      expect(Math.max(...r.tokens)).toBeLessThan(tok.vocabSize);
      // The padded id holds nearly all the raw probability mass, so every drawn token's raw log pi is far below 0.
      for (const lp of r.logprobs ?? []) expect(lp).toBeLessThan(-10);
    }
  });
});
