/**
 * The reference Qwen3 transformer on Float32Arrays: forward over a whole sequence under any attention pattern,
 * a hand-written backward, and the shared layer loop the incremental KV cache (kv-cache.ts) runs on.
 *
 *   x = embed[tokens]
 *   per layer:  h = RMSNorm(x);  q,k,v = h Wq^T, h Wk^T, h Wv^T
 *               q,k = RoPE(RMSNorm_head(q)), RoPE(RMSNorm_head(k))     (logical positions, rotate_half)
 *               x = x + Wo · Attention(q, k, v)                         (GQA, scale 1/sqrt(head_dim), masked)
 *               h = RMSNorm(x);  x = x + Wdown (silu(h Wgate^T) * (h Wup^T))
 *   logits = RMSNorm(x) Wlm^T                                           (Wlm = embed when tied)
 *
 * Parameters live in a Map under their Hugging Face names ([out, in] row-major like torch.nn.Linear);
 * gradients come back in a Map with the same names.
 */
import type { CompactAttentionPattern } from "../masking/masks.js";
import { parameterShapes, type Qwen3Config } from "./config.js";
import {
  applyRope,
  crossEntropy,
  linear,
  gatherColumns,
  linearBackward,
  matmulABtTri,
  rmsNorm,
  rmsNormBackward,
  ropeTables,
  Rng,
  scatterAddColumns,
  swiglu,
  swigluBackward,
  transpose,
} from "./ops.js";

/** One layer's weights, referencing the arrays of the parameter map. */
export interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  qNorm: Float32Array;
  kNorm: Float32Array;
  postNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

/** What the backward pass needs from one layer of the forward pass. */
export interface LayerActivations {
  x: Float32Array; // residual stream entering the layer [n, hidden]
  inv1: Float32Array; // 1/rms of the input norm, per row
  h1: Float32Array; // normalised input [n, hidden]
  qRaw: Float32Array; // q before its per-head norm [n, H*D]
  kRaw: Float32Array; // k before its per-head norm [n, KV*D]
  qInv: Float32Array; // 1/rms per (row, head)
  kInv: Float32Array;
  q: Float32Array; // normalised, rotated q
  k: Float32Array; // normalised, rotated k: exactly what a KV cache stores
  v: Float32Array; // [n, KV*D]
  probs: Float32Array[]; // per query head, [n, n] attention probabilities (0 where masked)
  attn: Float32Array; // attention output before o_proj [n, H*D]
  xMid: Float32Array; // residual stream after attention
  inv2: Float32Array;
  h2: Float32Array;
  gate: Float32Array; // [n, intermediate]
  up: Float32Array;
  act: Float32Array; // silu(gate) * up
}

/** Everything `forward` keeps for `backward`. */
export interface ForwardCache {
  tokens: Int32Array;
  positions: Int32Array;
  n: number;
  cos: Float32Array;
  sin: Float32Array;
  layers: LayerActivations[];
  xFinal: Float32Array;
  invFinal: Float32Array;
  hFinal: Float32Array;
}

/**
 * Attention for one layer: gets the rotated q [n, H*D], k and v [n, KV*D] of the rows being computed and
 * returns the attention output [n, H*D]. The full forward masks with a pattern; the KV cache stores k/v in
 * its slots and attends over them.
 */
export type AttentionFn = (
  layer: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  n: number,
  acts?: LayerActivations,
) => Float32Array;

export interface InitOptions {
  seed?: number;
  /** Standard deviation of every matrix (HF initializer_range); default 0.02. */
  std?: number;
  /** Add N(0, normJitter) to the RMSNorm weights (default 0: all ones). Tests use it to exercise them. */
  normJitter?: number;
}

export interface LossAndGrad {
  loss: number;
  /** Number of targets that counted (not -100). */
  count: number;
  grads: Map<string, Float32Array>;
  logits: Float32Array;
}

function toInt32(tokens: Int32Array | ArrayLike<number>): Int32Array {
  return tokens instanceof Int32Array ? tokens : Int32Array.from(tokens as ArrayLike<number>);
}

function defaultPositions(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

export class Qwen3Model {
  readonly config: Qwen3Config;
  /** Parameters under their Hugging Face names; the typed views below share these arrays. */
  readonly params: Map<string, Float32Array>;
  readonly embed: Float32Array;
  readonly finalNorm: Float32Array;
  /** The output head: the embedding itself when `tie_word_embeddings`. */
  readonly lmHead: Float32Array;
  readonly layers: LayerWeights[];

  readonly hidden: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly qDim: number;
  readonly kvDim: number;
  readonly vocab: number;
  readonly inter: number;

  constructor(config: Qwen3Config, params: Map<string, Float32Array>) {
    this.config = config;
    this.hidden = config.hidden_size;
    this.heads = config.num_attention_heads;
    this.kvHeads = config.num_key_value_heads;
    this.headDim = config.head_dim;
    this.qDim = this.heads * this.headDim;
    this.kvDim = this.kvHeads * this.headDim;
    this.vocab = config.vocab_size;
    this.inter = config.intermediate_size;
    for (const [name, shape] of parameterShapes(config)) {
      const t = params.get(name);
      const size = shape.reduce((a, b) => a * b, 1);
      if (!t) throw new Error(`missing parameter ${name}`);
      if (t.length !== size)
        throw new Error(`parameter ${name} has ${t.length} values, expected ${size} (${shape.join("x")})`);
    }
    this.params = params;
    const get = (name: string) => params.get(name) as Float32Array;
    this.embed = get("model.embed_tokens.weight");
    this.finalNorm = get("model.norm.weight");
    this.lmHead = config.tie_word_embeddings ? this.embed : get("lm_head.weight");
    this.layers = [];
    for (let i = 0; i < config.num_hidden_layers; i++) {
      const p = `model.layers.${i}.`;
      this.layers.push({
        inputNorm: get(`${p}input_layernorm.weight`),
        q: get(`${p}self_attn.q_proj.weight`),
        k: get(`${p}self_attn.k_proj.weight`),
        v: get(`${p}self_attn.v_proj.weight`),
        o: get(`${p}self_attn.o_proj.weight`),
        qNorm: get(`${p}self_attn.q_norm.weight`),
        kNorm: get(`${p}self_attn.k_norm.weight`),
        postNorm: get(`${p}post_attention_layernorm.weight`),
        gate: get(`${p}mlp.gate_proj.weight`),
        up: get(`${p}mlp.up_proj.weight`),
        down: get(`${p}mlp.down_proj.weight`),
      });
    }
  }

  /**
   * Seeded random initialisation (one mulberry32 stream, tensors drawn in `parameterShapes` order):
   * embedding, q/k/v/gate/up and an untied lm_head ~ N(0, std); o_proj and down_proj ~ N(0, std / sqrt(2 L))
   * (GPT-2 style scaling of the projections that write into the residual stream); RMSNorm weights 1
   * (+ N(0, normJitter) if asked).
   */
  static random(config: Qwen3Config, opts: InitOptions = {}): Qwen3Model {
    const rng = new Rng(opts.seed ?? 0);
    const std = opts.std ?? 0.02;
    const jitter = opts.normJitter ?? 0;
    const residualStd = std / Math.sqrt(2 * config.num_hidden_layers);
    const params = new Map<string, Float32Array>();
    for (const [name, shape] of parameterShapes(config)) {
      const t = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (shape.length === 1) {
        for (let i = 0; i < t.length; i++) t[i] = 1 + (jitter > 0 ? jitter * rng.normal() : 0);
      } else {
        const s = name.endsWith("o_proj.weight") || name.endsWith("down_proj.weight") ? residualStd : std;
        for (let i = 0; i < t.length; i++) t[i] = s * rng.normal();
      }
      params.set(name, t);
    }
    return new Qwen3Model(config, params);
  }

  /** Builds a model from named tensors (copied). Extra tensors are ignored; a tied lm_head is ignored. */
  static fromTensorMap(
    config: Qwen3Config,
    tensors: Map<string, { shape?: number[]; data: Float32Array } | Float32Array>,
  ): Qwen3Model {
    const params = new Map<string, Float32Array>();
    for (const [name, shape] of parameterShapes(config)) {
      const entry = tensors.get(name);
      if (!entry) throw new Error(`checkpoint lacks ${name}`);
      const data = entry instanceof Float32Array ? entry : entry.data;
      if (!(entry instanceof Float32Array) && entry.shape && entry.shape.join("x") !== shape.join("x")) {
        throw new Error(`${name}: shape ${entry.shape.join("x")}, expected ${shape.join("x")}`);
      }
      params.set(name, Float32Array.from(data));
    }
    return new Qwen3Model(config, params);
  }

  /** The parameters as named tensors with shapes (sharing the arrays), in HF order; no lm_head when tied. */
  toTensorMap(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, shape] of parameterShapes(this.config))
      out.set(name, { shape, data: this.params.get(name) as Float32Array });
    return out;
  }

  /** A deep copy (same config, copied parameters). */
  clone(): Qwen3Model {
    const params = new Map<string, Float32Array>();
    for (const [k, v] of this.params) params.set(k, Float32Array.from(v));
    return new Qwen3Model(this.config, params);
  }

  /**
   * The layer loop shared by the full forward and the KV cache: embeds `tokens`, runs every layer with
   * `attention` deciding what each row sees, and returns the logits [n, vocab]. With `save`, the activations
   * the backward pass needs are recorded.
   */
  run(tokens: Int32Array, positions: Int32Array, attention: AttentionFn, save?: ForwardCache): Float32Array {
    const n = tokens.length;
    const { hidden: hd, heads: H, kvHeads: KV, headDim: D, qDim, kvDim, inter, vocab } = this;
    const eps = this.config.rms_norm_eps;
    let x = new Float32Array(n * hd);
    for (let t = 0; t < n; t++) {
      const id = tokens[t];
      if (id < 0 || id >= vocab) throw new RangeError(`token ${id} at ${t} is outside the vocabulary (${vocab})`);
      x.set(this.embed.subarray(id * hd, (id + 1) * hd), t * hd);
    }
    const { cos, sin } = ropeTables(positions, D, this.config.rope_theta);
    for (let l = 0; l < this.layers.length; l++) {
      const W = this.layers[l];
      const h1 = new Float32Array(n * hd);
      const inv1 = new Float32Array(n);
      rmsNorm(h1, inv1, x, W.inputNorm, n, hd, eps);
      const qRaw = linear(h1, W.q, n, hd, qDim);
      const kRaw = linear(h1, W.k, n, hd, kvDim);
      const v = linear(h1, W.v, n, hd, kvDim);
      const q = new Float32Array(n * qDim);
      const k = new Float32Array(n * kvDim);
      const qInv = new Float32Array(n * H);
      const kInv = new Float32Array(n * KV);
      rmsNorm(q, qInv, qRaw, W.qNorm, n * H, D, eps);
      rmsNorm(k, kInv, kRaw, W.kNorm, n * KV, D, eps);
      applyRope(q, cos, sin, n, H, D);
      applyRope(k, cos, sin, n, KV, D);
      const acts: LayerActivations | undefined = save
        ? {
            x,
            inv1,
            h1,
            qRaw,
            kRaw,
            qInv,
            kInv,
            q,
            k,
            v,
            probs: [],
            attn: q,
            xMid: x,
            inv2: inv1,
            h2: h1,
            gate: q,
            up: q,
            act: q,
          }
        : undefined;
      const attn = attention(l, q, k, v, n, acts);
      const o = linear(attn, W.o, n, qDim, hd);
      const xMid = new Float32Array(n * hd);
      for (let i = 0; i < xMid.length; i++) xMid[i] = x[i] + o[i];
      const h2 = new Float32Array(n * hd);
      const inv2 = new Float32Array(n);
      rmsNorm(h2, inv2, xMid, W.postNorm, n, hd, eps);
      const gate = linear(h2, W.gate, n, hd, inter);
      const up = linear(h2, W.up, n, hd, inter);
      const act = new Float32Array(n * inter);
      swiglu(act, gate, up);
      const down = linear(act, W.down, n, inter, hd);
      const xOut = new Float32Array(n * hd);
      for (let i = 0; i < xOut.length; i++) xOut[i] = xMid[i] + down[i];
      if (save && acts) {
        Object.assign(acts, { attn, xMid, inv2, h2, gate, up, act });
        save.layers.push(acts);
      }
      x = xOut;
    }
    const hFinal = new Float32Array(n * hd);
    const invFinal = new Float32Array(n);
    rmsNorm(hFinal, invFinal, x, this.finalNorm, n, hd, eps);
    const logits = linear(hFinal, this.lmHead, n, hd, vocab);
    if (save) Object.assign(save, { xFinal: x, invFinal, hFinal, cos, sin });
    return logits;
  }

  /**
   * Forward over a whole sequence. Query q attends to key k iff the pattern allows it
   * (k <= q && viewAt[q] <= visibleUntil[k]); softmax runs over the visible keys only (a row with none
   * outputs zeros). `positions` are the logical RoPE positions, 0..n-1 by default.
   */
  forward(
    tokensIn: Int32Array | ArrayLike<number>,
    pattern: CompactAttentionPattern,
    positionsIn?: Int32Array,
  ): { logits: Float32Array; cache: ForwardCache } {
    const tokens = toInt32(tokensIn);
    const n = tokens.length;
    if (pattern.length !== n) throw new Error(`pattern length ${pattern.length} != ${n} tokens`);
    const positions = positionsIn ?? defaultPositions(n);
    if (positions.length !== n) throw new Error(`${positions.length} positions for ${n} tokens`);
    const cache: ForwardCache = {
      tokens,
      positions,
      n,
      cos: new Float32Array(0),
      sin: new Float32Array(0),
      layers: [],
      xFinal: new Float32Array(0),
      invFinal: new Float32Array(0),
      hFinal: new Float32Array(0),
    };
    const attention: AttentionFn = (_l, q, k, v, rows, acts) => this.maskedAttention(q, k, v, rows, pattern, acts);
    const logits = this.run(tokens, positions, attention, cache);
    return { logits, cache };
  }

  /**
   * Masked multi-head attention over a full sequence; records the probabilities in `acts.probs`.
   * Per head: S = Q K^T (lower triangle only), masked softmax row by row, O = P V (rows summed up to the
   * diagonal), all through the tiled matmul on contiguous per-head copies of q, k, v.
   */
  private maskedAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    n: number,
    pattern: CompactAttentionPattern,
    acts?: LayerActivations,
  ): Float32Array {
    const { heads: H, headDim: D, qDim, kvDim } = this;
    const group = H / this.kvHeads;
    const scale = 1 / Math.sqrt(D);
    const out = new Float32Array(n * qDim);
    const { visibleUntil, viewAt } = pattern;
    const qh = new Float32Array(n * D);
    const kh = new Float32Array(n * D);
    const vh = new Float32Array(n * D);
    const vhT = new Float32Array(D * n);
    const oh = new Float32Array(n * D);
    const scores = new Float32Array(n * n);
    for (let g = 0; g < this.kvHeads; g++) {
      gatherColumns(kh, k, n, kvDim, g * D, D);
      gatherColumns(vh, v, n, kvDim, g * D, D);
      transpose(vhT, vh, n, D);
      for (let h = g * group; h < (g + 1) * group; h++) {
        gatherColumns(qh, q, n, qDim, h * D, D);
        matmulABtTri(scores, qh, kh, n, D, n, "lower");
        const probs = new Float32Array(n * n);
        for (let t = 0; t < n; t++) {
          const view = viewAt[t];
          const row = t * n;
          let max = -Infinity;
          for (let s = 0; s <= t; s++) {
            if (visibleUntil[s] >= view && scores[row + s] > max) max = scores[row + s];
          }
          if (max === -Infinity) continue; // no visible key: zero output, zero probabilities
          let sum = 0;
          for (let s = 0; s <= t; s++) {
            if (visibleUntil[s] < view) continue;
            const e = Math.exp((scores[row + s] - max) * scale);
            probs[row + s] = e;
            sum += e;
          }
          const inv = 1 / sum;
          for (let s = 0; s <= t; s++) probs[row + s] *= inv;
        }
        matmulABtTri(oh, probs, vhT, n, n, D, "prefix");
        scatterAddColumns(out, oh, n, qDim, h * D, D);
        if (acts) acts.probs.push(probs);
      }
    }
    return out;
  }

  /**
   * Backward of `forward`: given d(loss)/d(logits) [n, vocab], returns the gradient of every parameter
   * (same names as `params`; a tied head's gradient is added to the embedding's).
   */
  backward(cache: ForwardCache, dlogits: Float32Array): Map<string, Float32Array> {
    const { n } = cache;
    const { hidden: hd, heads: H, kvHeads: KV, headDim: D, qDim, kvDim, inter, vocab } = this;
    const grads = new Map<string, Float32Array>();
    for (const [name, t] of this.params) grads.set(name, new Float32Array(t.length));
    const g = (name: string) => grads.get(name) as Float32Array;
    const gEmbed = g("model.embed_tokens.weight");
    const gHead = this.config.tie_word_embeddings ? gEmbed : g("lm_head.weight");

    const dh = linearBackward(dlogits, cache.hFinal, this.lmHead, gHead, n, hd, vocab);
    let dx = new Float32Array(n * hd);
    rmsNormBackward(dx, g("model.norm.weight"), dh, cache.xFinal, cache.invFinal, this.finalNorm, n, hd);

    for (let l = this.layers.length - 1; l >= 0; l--) {
      const W = this.layers[l];
      const A = cache.layers[l];
      const p = `model.layers.${l}.`;
      // MLP block: xOut = xMid + down(silu(gate(h2)) * up(h2)), h2 = norm(xMid)
      const dact = linearBackward(dx, A.act, W.down, g(`${p}mlp.down_proj.weight`), n, inter, hd);
      const dgate = new Float32Array(n * inter);
      const dup = new Float32Array(n * inter);
      swigluBackward(dgate, dup, dact, A.gate, A.up);
      const dh2 = linearBackward(dgate, A.h2, W.gate, g(`${p}mlp.gate_proj.weight`), n, hd, inter);
      linearBackward(dup, A.h2, W.up, g(`${p}mlp.up_proj.weight`), n, hd, inter, dh2);
      rmsNormBackward(dh2, g(`${p}post_attention_layernorm.weight`), dh2, A.xMid, A.inv2, W.postNorm, n, hd);
      const dxMid = dx;
      for (let i = 0; i < dxMid.length; i++) dxMid[i] += dh2[i];
      // Attention block: xMid = x + o(attn(q, k, v))
      const dattn = linearBackward(dxMid, A.attn, W.o, g(`${p}self_attn.o_proj.weight`), n, qDim, hd);
      const dq = new Float32Array(n * qDim);
      const dk = new Float32Array(n * kvDim);
      const dv = new Float32Array(n * kvDim);
      this.attentionBackward(dq, dk, dv, dattn, A, n);
      applyRope(dq, cache.cos, cache.sin, n, H, D, true);
      applyRope(dk, cache.cos, cache.sin, n, KV, D, true);
      rmsNormBackward(dq, g(`${p}self_attn.q_norm.weight`), dq, A.qRaw, A.qInv, W.qNorm, n * H, D);
      rmsNormBackward(dk, g(`${p}self_attn.k_norm.weight`), dk, A.kRaw, A.kInv, W.kNorm, n * KV, D);
      const dh1 = linearBackward(dq, A.h1, W.q, g(`${p}self_attn.q_proj.weight`), n, hd, qDim);
      linearBackward(dk, A.h1, W.k, g(`${p}self_attn.k_proj.weight`), n, hd, kvDim, dh1);
      linearBackward(dv, A.h1, W.v, g(`${p}self_attn.v_proj.weight`), n, hd, kvDim, dh1);
      rmsNormBackward(dh1, g(`${p}input_layernorm.weight`), dh1, A.x, A.inv1, W.inputNorm, n, hd);
      for (let i = 0; i < dxMid.length; i++) dxMid[i] += dh1[i];
      dx = dxMid;
    }
    for (let t = 0; t < n; t++) {
      const base = cache.tokens[t] * hd;
      for (let i = 0; i < hd; i++) gEmbed[base + i] += dx[t * hd + i];
    }
    return grads;
  }

  /**
   * Backward of the masked attention, from the stored probabilities, per head:
   * dP = dO V^T, dS = P (dP - rowsum(P dP)) / sqrt(D), dQ = dS K, dK += dS^T Q, dV += P^T dO.
   */
  private attentionBackward(
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    dout: Float32Array,
    A: LayerActivations,
    n: number,
  ): void {
    const { heads: H, headDim: D, qDim, kvDim } = this;
    const group = H / this.kvHeads;
    const scale = 1 / Math.sqrt(D);
    const qh = new Float32Array(n * D);
    const qhT = new Float32Array(D * n);
    const kh = new Float32Array(n * D);
    const khT = new Float32Array(D * n);
    const vh = new Float32Array(n * D);
    const doh = new Float32Array(n * D);
    const dohT = new Float32Array(D * n);
    const dqh = new Float32Array(n * D);
    const dkh = new Float32Array(n * D);
    const dvh = new Float32Array(n * D);
    const dp = new Float32Array(n * n);
    const tmpT = new Float32Array(n * n);
    for (let g = 0; g < this.kvHeads; g++) {
      gatherColumns(kh, A.k, n, kvDim, g * D, D);
      gatherColumns(vh, A.v, n, kvDim, g * D, D);
      transpose(khT, kh, n, D);
      dkh.fill(0);
      dvh.fill(0);
      for (let h = g * group; h < (g + 1) * group; h++) {
        const probs = A.probs[h];
        gatherColumns(qh, A.q, n, qDim, h * D, D);
        gatherColumns(doh, dout, n, qDim, h * D, D);
        matmulABtTri(dp, doh, vh, n, D, n, "lower");
        const ds = new Float32Array(n * n);
        for (let t = 0; t < n; t++) {
          const row = t * n;
          let dot = 0;
          for (let s = 0; s <= t; s++) dot += probs[row + s] * dp[row + s];
          for (let s = 0; s <= t; s++) {
            const pr = probs[row + s];
            if (pr !== 0) ds[row + s] = pr * (dp[row + s] - dot) * scale;
          }
        }
        matmulABtTri(dqh, ds, khT, n, n, D, "prefix");
        scatterAddColumns(dq, dqh, n, qDim, h * D, D);
        transpose(tmpT, ds, n, n);
        transpose(qhT, qh, n, D);
        matmulABtTri(dkh, tmpT, qhT, n, n, D, "suffix", true);
        transpose(tmpT, probs, n, n);
        transpose(dohT, doh, n, D);
        matmulABtTri(dvh, tmpT, dohT, n, n, D, "suffix", true);
      }
      scatterAddColumns(dk, dkh, n, kvDim, g * D, D);
      scatterAddColumns(dv, dvh, n, kvDim, g * D, D);
    }
  }

  /**
   * Mean cross-entropy over the targets that are not -100 (targets[t] is the token expected after
   * tokens[t]), and the gradient of every parameter. With `weights`, the mean is weighted (token t counts
   * weights[t] times) and `count` is the weight sum.
   */
  lossAndGrad(
    tokens: Int32Array | ArrayLike<number>,
    targets: Int32Array | ArrayLike<number>,
    pattern: CompactAttentionPattern,
    positions?: Int32Array,
    weights?: Float32Array,
  ): LossAndGrad {
    const { logits, cache } = this.forward(tokens, pattern, positions);
    if (targets.length !== cache.n) throw new Error(`${targets.length} targets for ${cache.n} tokens`);
    const dlogits = new Float32Array(logits.length);
    const { loss, count } = crossEntropy(logits, targets, cache.n, this.vocab, dlogits, weights);
    const grads = this.backward(cache, dlogits);
    return { loss, count, grads, logits };
  }

  /** Logits [n, vocab] of a whole sequence under `pattern`, keeping nothing for a backward (inference). */
  logits(
    tokens: Int32Array | ArrayLike<number>,
    pattern: CompactAttentionPattern,
    positions?: Int32Array,
  ): Float32Array {
    const tk = toInt32(tokens);
    if (pattern.length !== tk.length) throw new Error(`pattern length ${pattern.length} != ${tk.length} tokens`);
    const positionsOr = positions ?? defaultPositions(tk.length);
    return this.run(tk, positionsOr, (_l, q, k, v, rows) => this.maskedAttention(q, k, v, rows, pattern));
  }

  /** Mean cross-entropy only (no backward). */
  loss(
    tokens: Int32Array | ArrayLike<number>,
    targets: Int32Array | ArrayLike<number>,
    pattern: CompactAttentionPattern,
    positions?: Int32Array,
  ): number {
    const n = toInt32(tokens).length;
    return crossEntropy(this.logits(tokens, pattern, positions), targets, n, this.vocab).loss;
  }
}
