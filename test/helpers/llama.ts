/**
 * Shared pieces of the llama.cpp backend tests: the peaked random model they compare, its GGUF export with the
 * toy tokenizer, and the softmax-distance and argmax they measure logits with.
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { LlamaCppBackend } from "../../src/engine/backends/llamacpp.js";
import { exportModelToGguf } from "../../src/model/gguf.js";
import { Qwen3Model, toyConfig } from "../../src/model/index.js";
import type { Backend } from "../../src/engine/types.js";
import { toyTokenizer } from "../../src/train/char-tokenizer.js";
import { tempDir } from "./tmp.js";

/** The cross-backend model: std 0.2 gives peaked distributions, so position or kernel errors would show. */
export function peakedToyModel(seed: number): Qwen3Model {
  return Qwen3Model.random(toyConfig({ vocab_size: 112 }), { seed, std: 0.2, normJitter: 0.1 });
}

/** Writes `model` with the toy tokenizer to the GGUF file `path`. */
export function exportToyGguf(model: Qwen3Model, path: string): void {
  const tok = toyTokenizer();
  exportModelToGguf(
    model,
    { json: tok.toTokenizerJson(), config: tok.toTokenizerConfig() as Record<string, unknown> },
    path,
  );
}

/** A llama.cpp backend in the configuration that matches the reference transformer (F32 KV, no flash attention). */
export function exactLlamaCpp(modelPath: string, sequences: number): Promise<LlamaCppBackend> {
  return LlamaCppBackend.create({
    modelPath,
    sequences,
    cellsPerSequence: 256,
    threads: 1,
    verifyCells: true,
    kvCacheType: "F32",
    flashAttention: false,
  });
}

/** The GGUF file of a suite's model and the exact llama.cpp backend over it (set before the suite's tests run). */
export interface LlamaCppSuite {
  path: string;
  llama: LlamaCppBackend;
}

/** Registers hooks that export `model` to a temporary GGUF and open it with exactLlamaCpp for the suite. */
export function exactLlamaCppSuite(model: Qwen3Model, sequences: number, dirPrefix: string): LlamaCppSuite {
  const suite = { path: join(tempDir(dirPrefix), "toy.gguf") } as LlamaCppSuite;
  beforeAll(async () => {
    exportToyGguf(model, suite.path);
    suite.llama = await exactLlamaCpp(suite.path, sequences);
  }, 120_000);
  afterAll(() => suite.llama?.close());
  return suite;
}

/** Decodes token `t` at position `p` in each of `refSeqs` on `ref` and of `llSeqs` on `llama`: both logit lists. */
export async function decodeOnBoth(
  ref: Backend,
  llama: Backend,
  refSeqs: number[],
  llSeqs: number[],
  t: number,
  p: number,
): Promise<[Float32Array[], Float32Array[]]> {
  const refLogits = await ref.decode(refSeqs.map((seq) => ({ seq, token: t, position: p })));
  const llLogits = await llama.decode(llSeqs.map((seq) => ({ seq, token: t, position: p })));
  return [refLogits, llLogits];
}

/**
 * Feeds `prompt`, then `completion` token by token, to a fresh sequence on `ref` and on `llama`, evicting each block
 * on both at its `<|summary_end|>` (the freed counts must agree): the largest maxProbDiff of any step.
 */
export async function maxStreamProbDiff(
  ref: Backend,
  llama: Backend,
  prompt: number[],
  completion: number[],
): Promise<number> {
  const S = toyTokenizer().specialTokens;
  const r = await ref.allocate();
  const l = await llama.allocate();
  const pos = prompt.map((_, i) => i);
  let worst = maxProbDiff(await ref.prefill(r, prompt, pos), await llama.prefill(l, prompt, pos));
  let start = -1;
  let end = -1;
  for (let p = prompt.length; p < prompt.length + completion.length; p++) {
    const t = completion[p - prompt.length];
    const [[x], [y]] = await decodeOnBoth(ref, llama, [r], [l], t, p);
    worst = Math.max(worst, maxProbDiff(x, y));
    if (t === S.blockStart) start = p;
    if (t === S.blockEnd) end = p;
    if (t === S.summaryEnd) expect(await llama.evict(l, start + 1, end)).toBe(await ref.evict(r, start + 1, end));
  }
  return worst;
}

/** Checks pairs of logits against a tolerance, keeping the largest maxProbDiff seen and the number of pairs. */
export class ProbDiffs {
  worst = 0;
  compared = 0;
  constructor(private readonly tolerance: number) {}

  /** Compares one pair: their maxProbDiff must be within the tolerance. */
  readonly compare = (x: Float32Array, y: Float32Array): void => {
    const d = maxProbDiff(x, y);
    this.worst = Math.max(this.worst, d);
    this.compared++;
    expect(d).toBeLessThanOrEqual(this.tolerance);
  };
}

/** Softmax of `logits`, in float64. */
export function softmax(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of logits) m = Math.max(m, x);
  const p = new Float64Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += p[i] = Math.exp(logits[i] - m);
  for (let i = 0; i < p.length; i++) p[i] /= s;
  return p;
}

/** max_i |softmax(a)_i - softmax(b)_i|. */
export function maxProbDiff(a: Float32Array, b: Float32Array): number {
  const pa = softmax(a);
  const pb = softmax(b);
  let d = 0;
  for (let i = 0; i < pa.length; i++) d = Math.max(d, Math.abs(pa[i] - pb[i]));
  return d;
}

/** The index of the largest logit (the first on ties). */
export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
