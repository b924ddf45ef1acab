/**
 * Incremental decoding with a KV cache that evicts logical ranges physically.
 *
 * The cache is a list of slots, one per resident token, kept sorted by logical position. Every layer stores
 * the token's rotated key and its value in the same slot index, and `positions[slot]` remembers the logical
 * position the token was computed at. Because RoPE is applied before a key is stored, evicting tokens never
 * changes the survivors: `evict(start, end)` just drops the slots in [start, end) and copies the later slots
 * down (what the reference engine does: surviving KV moves into contiguous slots, trailing memory is freed).
 * New tokens keep counting logical positions from where the sequence is, so gaps stay gaps.
 *
 * A row at logical position p attends to exactly the resident slots with position <= p: a prefix of the
 * sorted slot list. That one rule covers prefill (causal among the new rows), step, and the restart-mode
 * `recompute` (a memento's rows see the cache after the eviction plus the recomputed rows before them).
 */
import type { LayerActivations } from "./transformer.js";
import type { Qwen3Model } from "./transformer.js";

export class KVCache {
  readonly model: Qwen3Model;
  /** Per layer, keys and values: [capacity, kvHeads * headDim]. */
  private keys: Float32Array[];
  private values: Float32Array[];
  /** Logical position of each used slot, ascending. */
  private pos: Int32Array;
  private size = 0;
  private peak = 0;
  private next = 0;

  constructor(model: Qwen3Model, initialCapacity = 64) {
    this.model = model;
    const cap = Math.max(1, initialCapacity);
    this.pos = new Int32Array(cap);
    this.keys = model.layers.map(() => new Float32Array(cap * model.kvDim));
    this.values = model.layers.map(() => new Float32Array(cap * model.kvDim));
  }

  /** Slots in use: the resident tokens whose K/V the cache holds. */
  get residentTokens(): number {
    return this.size;
  }

  /** Most slots ever in use at once. */
  get peakResidentTokens(): number {
    return this.peak;
  }

  /** Slots allocated. */
  get capacity(): number {
    return this.pos.length;
  }

  /** The logical position the next `step` takes by default: one past the largest ever appended. */
  get nextPosition(): number {
    return this.next;
  }

  /** KV bytes held by the resident tokens at `bytesPerElement` (4 = float32, 2 = bf16). */
  residentBytes(bytesPerElement = 4): number {
    return this.size * 2 * this.model.layers.length * this.model.kvDim * bytesPerElement;
  }

  /** Logical positions of the resident tokens, ascending (a copy). */
  residentPositions(): Int32Array {
    return this.pos.slice(0, this.size);
  }

  /** Whether the token at logical position p is resident. */
  has(position: number): boolean {
    return this.slotOf(position) >= 0;
  }

  /** The stored (rotated) key of the token at `position` in `layer`, [kvHeads * headDim], or undefined. */
  keyAt(layer: number, position: number): Float32Array | undefined {
    const s = this.slotOf(position);
    const d = this.model.kvDim;
    return s < 0 ? undefined : this.keys[layer].slice(s * d, (s + 1) * d);
  }

  /** The stored value of the token at `position` in `layer`, or undefined. */
  valueAt(layer: number, position: number): Float32Array | undefined {
    const s = this.slotOf(position);
    const d = this.model.kvDim;
    return s < 0 ? undefined : this.values[layer].slice(s * d, (s + 1) * d);
  }

  /** Appends one token at `position` (default `nextPosition`) and returns its logits [vocab]. */
  step(token: number, position: number = this.next): Float32Array {
    return this.prefill([token], Int32Array.of(position));
  }

  /**
   * Appends tokens at strictly increasing logical positions (default: consecutive from `nextPosition`),
   * each attending to the resident tokens before it and to itself, and returns their logits [m, vocab].
   */
  prefill(tokensIn: ArrayLike<number>, positionsIn?: ArrayLike<number>): Float32Array {
    const m = tokensIn.length;
    const tokens = Int32Array.from(tokensIn);
    const positions = new Int32Array(m);
    for (let i = 0; i < m; i++) positions[i] = positionsIn ? positionsIn[i] : this.next + i;
    const last = this.size > 0 ? this.pos[this.size - 1] : -1;
    for (let i = 0; i < m; i++) {
      const prev = i === 0 ? Math.max(last, this.next - 1) : positions[i - 1];
      if (!(positions[i] > prev)) throw new Error(`positions must increase: ${positions[i]} after ${prev}`);
    }
    this.reserve(this.size + m);
    const slots = new Int32Array(m);
    for (let i = 0; i < m; i++) {
      slots[i] = this.size + i;
      this.pos[this.size + i] = positions[i];
    }
    this.size += m;
    this.peak = Math.max(this.peak, this.size);
    if (m > 0) this.next = positions[m - 1] + 1;
    return this.compute(tokens, positions, slots);
  }

  /**
   * One decode step for several sequences at once: appends `tokens[b]` at `positions[b]` to `caches[b]` and
   * returns each row's logits [vocab]. The layer loop runs once over all rows (one matmul per weight instead of
   * one per sequence: the weights are read once per step, not once per sequence); each row attends only to its
   * own cache, exactly as its own `step` would (results equal up to float rounding of the batched matmuls).
   */
  static stepMany(caches: readonly KVCache[], tokens: ArrayLike<number>, positions: ArrayLike<number>): Float32Array[] {
    const B = caches.length;
    if (B === 0) return [];
    const model = caches[0].model;
    if (tokens.length !== B || positions.length !== B) throw new Error(`${tokens.length} tokens for ${B} caches`);
    if (new Set(caches).size !== B) throw new Error("stepMany: a cache appears twice");
    const slots = new Int32Array(B);
    const bounds = new Int32Array(B);
    caches.forEach((c, b) => {
      if (c.model !== model) throw new Error("stepMany: caches of different models");
      const p = positions[b];
      const last = c.size > 0 ? c.pos[c.size - 1] : -1;
      if (!(p > Math.max(last, c.next - 1)))
        throw new Error(`positions must increase: ${p} after ${Math.max(last, c.next - 1)}`);
      c.reserve(c.size + 1);
      slots[b] = c.size;
      c.pos[c.size] = p;
      c.size++;
      c.peak = Math.max(c.peak, c.size);
      c.next = p + 1;
      bounds[b] = c.size;
    });
    const { qDim, kvDim, vocab } = model;
    let scores = new Float64Array(64);
    const attention = (layer: number, q: Float32Array, k: Float32Array, v: Float32Array, rows: number) => {
      const out = new Float32Array(rows * qDim);
      for (let b = 0; b < rows; b++) {
        const c = caches[b];
        const K = c.keys[layer];
        const V = c.values[layer];
        K.set(k.subarray(b * kvDim, (b + 1) * kvDim), slots[b] * kvDim);
        V.set(v.subarray(b * kvDim, (b + 1) * kvDim), slots[b] * kvDim);
        const nk = bounds[b];
        if (scores.length < nk) scores = new Float64Array(nk * 2);
        attendRow(out, q, b, K, V, nk, model, scores);
      }
      return out;
    };
    const logits = model.run(Int32Array.from(tokens), Int32Array.from(positions), attention);
    return caches.map((_, b) => logits.slice(b * vocab, (b + 1) * vocab));
  }

  /**
   * Removes every resident token with logical position in [start, end) and compacts the slots. Returns how
   * many slots were freed. Positions of the survivors (and of later tokens) do not change.
   */
  evict(start: number, end: number): number {
    const lo = this.lowerBound(start);
    const hi = this.lowerBound(end);
    const removed = hi - lo;
    if (removed <= 0) return 0;
    const d = this.model.kvDim;
    for (let l = 0; l < this.keys.length; l++) {
      this.keys[l].copyWithin(lo * d, hi * d, this.size * d);
      this.values[l].copyWithin(lo * d, hi * d, this.size * d);
    }
    this.pos.copyWithin(lo, hi, this.size);
    this.size -= removed;
    return removed;
  }

  /**
   * Restart mode: recomputes the K/V of the tokens at the given logical positions (ascending; usually a
   * memento, from its `<|summary_start|>` to the trigger) against the cache as it is now. Row p attends to
   * the resident tokens with position <= p, taking the recomputed K/V of the rows before it. Resident
   * positions get their slots overwritten; a position that is not resident is computed (its logits are
   * returned) but stored nowhere and seen by no other row. Returns the recomputed rows' logits [m, vocab].
   */
  recompute(tokensIn: ArrayLike<number>, positionsIn: ArrayLike<number>): Float32Array {
    const m = tokensIn.length;
    if (positionsIn.length !== m) throw new Error(`${positionsIn.length} positions for ${m} tokens`);
    const tokens = Int32Array.from(tokensIn);
    const positions = Int32Array.from(positionsIn);
    const slots = new Int32Array(m);
    for (let i = 0; i < m; i++) {
      if (i > 0 && !(positions[i] > positions[i - 1])) throw new Error("recompute positions must increase");
      slots[i] = this.slotOf(positions[i]);
    }
    return this.compute(tokens, positions, slots);
  }

  /** Frees everything (positions restart at 0). */
  clear(): void {
    this.size = 0;
    this.next = 0;
  }

  /**
   * Runs the model on rows whose K/V go to `slots` (-1: not stored). In each layer the new K/V are written
   * first, then row i attends to the slot prefix with position <= positions[i].
   */
  private compute(tokens: Int32Array, positions: Int32Array, slots: Int32Array): Float32Array {
    const model = this.model;
    const { qDim, kvDim } = model;
    const m = tokens.length;
    const bounds = new Int32Array(m);
    for (let i = 0; i < m; i++) bounds[i] = this.lowerBound(positions[i] + 1);
    let scores = new Float64Array(Math.max(1, this.size));
    const attention = (
      layer: number,
      q: Float32Array,
      k: Float32Array,
      v: Float32Array,
      rows: number,
      _acts?: LayerActivations,
    ) => {
      const K = this.keys[layer];
      const V = this.values[layer];
      for (let i = 0; i < rows; i++) {
        const s = slots[i];
        if (s < 0) continue;
        K.set(k.subarray(i * kvDim, (i + 1) * kvDim), s * kvDim);
        V.set(v.subarray(i * kvDim, (i + 1) * kvDim), s * kvDim);
      }
      const out = new Float32Array(rows * qDim);
      if (scores.length < this.size) scores = new Float64Array(this.size);
      for (let i = 0; i < rows; i++) {
        const nk = bounds[i];
        attendRow(out, q, i, K, V, nk, model, scores);
      }
      return out;
    };
    return model.run(tokens, positions, attention);
  }

  /** First slot whose position is >= p. */
  private lowerBound(p: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.pos[mid] < p) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private slotOf(p: number): number {
    const s = this.lowerBound(p);
    return s < this.size && this.pos[s] === p ? s : -1;
  }

  private reserve(n: number): void {
    if (n <= this.pos.length) return;
    let cap = this.pos.length;
    while (cap < n) cap *= 2;
    const d = this.model.kvDim;
    const grow = (a: Float32Array) => {
      const b = new Float32Array(cap * d);
      b.set(a.subarray(0, this.size * d));
      return b;
    };
    this.keys = this.keys.map(grow);
    this.values = this.values.map(grow);
    const p = new Int32Array(cap);
    p.set(this.pos.subarray(0, this.size));
    this.pos = p;
  }
}

/**
 * Attention of query row `row` over the first `nk` cached slots, every head (grouped-query: head h reads KV head
 * h / (H / KV)), softmax in float64, added into `out` [rows, H*D]. `scores` is scratch of at least nk entries.
 */
function attendRow(
  out: Float32Array,
  q: Float32Array,
  row: number,
  K: Float32Array,
  V: Float32Array,
  nk: number,
  model: Pick<Qwen3Model, "heads" | "kvHeads" | "headDim" | "qDim" | "kvDim">,
  scores: Float64Array,
): void {
  if (nk === 0) return;
  const { heads: H, headDim: D, qDim, kvDim } = model;
  const group = H / model.kvHeads;
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < H; h++) {
    const qOff = row * qDim + h * D;
    const kvOff = Math.floor(h / group) * D;
    let max = -Infinity;
    for (let s = 0; s < nk; s++) {
      const kOff = s * kvDim + kvOff;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[qOff + d] * K[kOff + d];
      dot *= scale;
      scores[s] = dot;
      if (dot > max) max = dot;
    }
    let sum = 0;
    for (let s = 0; s < nk; s++) {
      const e = Math.exp(scores[s] - max);
      scores[s] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let s = 0; s < nk; s++) {
      const p = scores[s] * inv;
      const vOff = s * kvDim + kvOff;
      for (let d = 0; d < D; d++) out[qOff + d] += p * V[vOff + d];
    }
  }
}
