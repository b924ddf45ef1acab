/**
 * The reference backend: the project's TypeScript Qwen3 transformer, one evicting KVCache per sequence over a
 * shared model. Resident cells are exact (KVCache.residentTokens). A decode batch runs the layer loop once over
 * all its sequences (each row attending to its own cache); everything is synchronous under the Promise surface.
 */
import { KVCache, type Qwen3Model } from "../../model/index.js";
import type { Backend, DecodeInput, SeqId } from "../types.js";
import { REFERENCE_CAPABILITIES } from "./capabilities.js";

export class ReferenceBackend implements Backend {
  readonly name = "reference";
  /** Every feature: recompute writes anywhere, and all sequences share one budget. */
  readonly capabilities = REFERENCE_CAPABILITIES;
  readonly vocabSize: number;
  readonly maxSequences: number;
  private readonly caches = new Map<SeqId, KVCache>();
  private nextId = 0;

  constructor(
    readonly model: Qwen3Model,
    opts: { maxSequences?: number } = {},
  ) {
    this.vocabSize = model.vocab;
    this.maxSequences = opts.maxSequences ?? Infinity;
  }

  /** Sequences alive. */
  get sequences(): number {
    return this.caches.size;
  }

  /** Cells held over all sequences. */
  get totalResidentTokens(): number {
    let n = 0;
    for (const c of this.caches.values()) n += c.residentTokens;
    return n;
  }

  async allocate(): Promise<SeqId> {
    if (this.caches.size >= this.maxSequences) throw new Error(`no free sequence (${this.maxSequences} in use)`);
    const id = this.nextId++;
    this.caches.set(id, new KVCache(this.model));
    return id;
  }

  async prefill(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new Error("prefill of no tokens");
    const logits = this.cache(seq).prefill(tokens, positions);
    const v = this.vocabSize;
    return logits.slice((tokens.length - 1) * v, tokens.length * v);
  }

  async decode(batch: readonly DecodeInput[]): Promise<Float32Array[]> {
    // One batched layer loop for all sequences (KVCache.stepMany): the weights are read once per step.
    return KVCache.stepMany(
      batch.map((b) => this.cache(b.seq)),
      batch.map((b) => b.token),
      batch.map((b) => b.position),
    );
  }

  async evict(seq: SeqId, start: number, end: number): Promise<number> {
    return this.cache(seq).evict(start, end);
  }

  async recompute(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array> {
    const logits = this.cache(seq).recompute(tokens, positions);
    const v = this.vocabSize;
    return logits.slice((tokens.length - 1) * v, tokens.length * v);
  }

  async free(seq: SeqId): Promise<void> {
    this.caches.delete(seq);
  }

  residentTokens(seq: SeqId): number {
    return this.caches.get(seq)?.residentTokens ?? 0;
  }

  /** Logical positions resident in a sequence (for tests). */
  residentPositions(seq: SeqId): Int32Array {
    return this.cache(seq).residentPositions();
  }

  async close(): Promise<void> {
    this.caches.clear();
  }

  private cache(seq: SeqId): KVCache {
    const c = this.caches.get(seq);
    if (!c) throw new Error(`unknown sequence ${seq}`);
    return c;
  }
}
