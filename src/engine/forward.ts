/**
 * One engine step's forward pass over the backend: decode rows and prefill chunks of several sequences.
 *
 *  1. A backend with `step` gets them all in one call (on llama.cpp: one llama_decode for the whole step).
 *  2. Any other backend is driven through its base contract: each multi-token chunk by `prefill`, then every
 *     one-token row by one `decode` batch. The results are the same; only the number of calls differs.
 *  3. Results come back in input order: the last token's logits where the input asked for them, else undefined.
 */
import type { Backend, StepInput } from "./types.js";

export async function forwardStep(
  backend: Backend,
  inputs: readonly StepInput[],
): Promise<(Float32Array | undefined)[]> {
  if (inputs.length === 0) return [];
  if (backend.step) return backend.step(inputs);
  const out: (Float32Array | undefined)[] = new Array(inputs.length).fill(undefined);
  const rows: number[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    if (input.tokens.length === 1) {
      rows.push(i);
      continue;
    }
    const positions = Array.from({ length: input.tokens.length }, (_, k) => input.position + k);
    const logits = await backend.prefill(input.seq, input.tokens, positions);
    if (input.logits) out[i] = logits;
  }
  if (rows.length > 0) {
    const logits = await backend.decode(
      rows.map((i) => ({ seq: inputs[i].seq, token: inputs[i].tokens[0], position: inputs[i].position })),
    );
    rows.forEach((i, k) => {
      if (inputs[i].logits) out[i] = logits[k];
    });
  }
  return out;
}
