/**
 * Hand-written float32 kernels for the reference transformer: matrix multiply, RMSNorm, RoPE, SiLU, softmax,
 * cross-entropy, each with its backward. Everything works on flat row-major Float32Arrays and writes into
 * caller-provided outputs, so the hot loops allocate nothing per element. Accumulations run in JS numbers
 * (float64) and are rounded to float32 once, on store.
 */

/**
 * out[M,N] = A[M,K] · B[N,K]^T  (or += with `accumulate`).
 *
 * The one matmul everything else is built on: both operands are read along contiguous rows (dot products),
 * so `y = x W^T` for a PyTorch-layout weight W [out,in] is `matmulABt(y, x, W, n, in, out)`, and the backward
 * products use transposed copies (see `linearBackward`). The micro-kernel computes a 2x4 tile per pass over K:
 * 6 loads feed 8 multiply-adds, with eight independent accumulators that stay in registers.
 */
export function matmulABt(
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  M: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  const pairs = M & ~1;
  if (pairs < M) rowABt(out, a, b, M - 1, K, N, accumulate); // odd last row (and decoding's M = 1)
  for (let i = 0; i < pairs; i += 2) {
    const a0 = i * K;
    const a1 = a0 + K;
    const o0 = i * N;
    const o1 = o0 + N;
    for (let j = 0; j < N; j += 4) {
      // Tail columns are clamped to the last row of B and their results discarded.
      const b0 = j * K;
      const b1 = (j + 1 < N ? j + 1 : N - 1) * K;
      const b2 = (j + 2 < N ? j + 2 : N - 1) * K;
      const b3 = (j + 3 < N ? j + 3 : N - 1) * K;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0;
      let s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      for (let k = 0; k < K; k++) {
        const x0 = a[a0 + k];
        const x1 = a[a1 + k];
        const w0 = b[b0 + k];
        const w1 = b[b1 + k];
        const w2 = b[b2 + k];
        const w3 = b[b3 + k];
        s00 += x0 * w0;
        s01 += x0 * w1;
        s02 += x0 * w2;
        s03 += x0 * w3;
        s10 += x1 * w0;
        s11 += x1 * w1;
        s12 += x1 * w2;
        s13 += x1 * w3;
      }
      const cols = Math.min(N - j, 4);
      if (accumulate) {
        out[o0 + j] += s00;
        if (cols > 1) out[o0 + j + 1] += s01;
        if (cols > 2) out[o0 + j + 2] += s02;
        if (cols > 3) out[o0 + j + 3] += s03;
        out[o1 + j] += s10;
        if (cols > 1) out[o1 + j + 1] += s11;
        if (cols > 2) out[o1 + j + 2] += s12;
        if (cols > 3) out[o1 + j + 3] += s13;
      } else {
        out[o0 + j] = s00;
        if (cols > 1) out[o0 + j + 1] = s01;
        if (cols > 2) out[o0 + j + 2] = s02;
        if (cols > 3) out[o0 + j + 3] = s03;
        out[o1 + j] = s10;
        if (cols > 1) out[o1 + j + 1] = s11;
        if (cols > 2) out[o1 + j + 2] = s12;
        if (cols > 3) out[o1 + j + 3] = s13;
      }
    }
  }
}

/** Row i of out = a[i] · B^T, 1x4 tiles (the odd row of `matmulABt`). */
function rowABt(
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  i: number,
  K: number,
  N: number,
  accumulate: boolean,
): void {
  const a0 = i * K;
  const o0 = i * N;
  let j = 0;
  for (; j + 4 <= N; j += 4) {
    const b0 = j * K;
    const b1 = b0 + K;
    const b2 = b1 + K;
    const b3 = b2 + K;
    let s0 = 0,
      s1 = 0,
      s2 = 0,
      s3 = 0;
    for (let k = 0; k < K; k++) {
      const x = a[a0 + k];
      s0 += x * b[b0 + k];
      s1 += x * b[b1 + k];
      s2 += x * b[b2 + k];
      s3 += x * b[b3 + k];
    }
    if (accumulate) {
      out[o0 + j] += s0;
      out[o0 + j + 1] += s1;
      out[o0 + j + 2] += s2;
      out[o0 + j + 3] += s3;
    } else {
      out[o0 + j] = s0;
      out[o0 + j + 1] = s1;
      out[o0 + j + 2] = s2;
      out[o0 + j + 3] = s3;
    }
  }
  for (; j < N; j++) {
    const b0 = j * K;
    let s0 = 0;
    for (let k = 0; k < K; k++) s0 += a[a0 + k] * b[b0 + k];
    if (accumulate) out[o0 + j] += s0;
    else out[o0 + j] = s0;
  }
}

/**
 * Triangular variants of `matmulABt` for causal attention, where A or the result is triangular:
 * - "lower":  out[i,j] is computed for j <= i only (tiles may also write a few entries just above the
 *             diagonal; callers ignore them). Used for scores Q K^T.
 * - "prefix": A[i,k] = 0 for k > i, so row i sums k <= i only (P V, dS K).
 * - "suffix": A[i,k] = 0 for k < i, so row i sums k >= i only (P^T dO, dS^T Q).
 */
export function matmulABtTri(
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  M: number,
  K: number,
  N: number,
  mode: "lower" | "prefix" | "suffix",
  accumulate = false,
): void {
  const lower = mode === "lower";
  for (let i = 0; i < M; i += 2) {
    const two = i + 1 < M;
    const a0 = i * K;
    const a1 = two ? a0 + K : a0;
    const o0 = i * N;
    const o1 = o0 + N;
    const kLo = mode === "suffix" ? i : 0;
    const kHi = mode === "prefix" ? Math.min(K, i + 2) : K;
    const jHi = lower ? Math.min(N, i + 2) : N;
    for (let j = 0; j < jHi; j += 4) {
      const b0 = j * K;
      const b1 = (j + 1 < N ? j + 1 : N - 1) * K;
      const b2 = (j + 2 < N ? j + 2 : N - 1) * K;
      const b3 = (j + 3 < N ? j + 3 : N - 1) * K;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0;
      let s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      for (let k = kLo; k < kHi; k++) {
        const x0 = a[a0 + k];
        const x1 = a[a1 + k];
        const w0 = b[b0 + k];
        const w1 = b[b1 + k];
        const w2 = b[b2 + k];
        const w3 = b[b3 + k];
        s00 += x0 * w0;
        s01 += x0 * w1;
        s02 += x0 * w2;
        s03 += x0 * w3;
        s10 += x1 * w0;
        s11 += x1 * w1;
        s12 += x1 * w2;
        s13 += x1 * w3;
      }
      const cols = Math.min(N - j, 4);
      if (accumulate) {
        out[o0 + j] += s00;
        if (cols > 1) out[o0 + j + 1] += s01;
        if (cols > 2) out[o0 + j + 2] += s02;
        if (cols > 3) out[o0 + j + 3] += s03;
        if (two) {
          out[o1 + j] += s10;
          if (cols > 1) out[o1 + j + 1] += s11;
          if (cols > 2) out[o1 + j + 2] += s12;
          if (cols > 3) out[o1 + j + 3] += s13;
        }
      } else {
        out[o0 + j] = s00;
        if (cols > 1) out[o0 + j + 1] = s01;
        if (cols > 2) out[o0 + j + 2] = s02;
        if (cols > 3) out[o0 + j + 3] = s03;
        if (two) {
          out[o1 + j] = s10;
          if (cols > 1) out[o1 + j + 1] = s11;
          if (cols > 2) out[o1 + j + 2] = s12;
          if (cols > 3) out[o1 + j + 3] = s13;
        }
      }
    }
  }
}

/** Copies columns [col, col+width) of a [rows, stride] matrix into a contiguous [rows, width] one (or back). */
export function gatherColumns(
  out: Float32Array,
  a: Float32Array,
  rows: number,
  stride: number,
  col: number,
  width: number,
): Float32Array {
  for (let r = 0; r < rows; r++) {
    const src = r * stride + col;
    const dst = r * width;
    for (let c = 0; c < width; c++) out[dst + c] = a[src + c];
  }
  return out;
}

/** Adds a contiguous [rows, width] matrix into columns [col, col+width) of a [rows, stride] one. */
export function scatterAddColumns(
  out: Float32Array,
  a: Float32Array,
  rows: number,
  stride: number,
  col: number,
  width: number,
): void {
  for (let r = 0; r < rows; r++) {
    const dst = r * stride + col;
    const src = r * width;
    for (let c = 0; c < width; c++) out[dst + c] += a[src + c];
  }
}

/** out[cols,rows] = a[rows,cols]^T. */
export function transpose(out: Float32Array, a: Float32Array, rows: number, cols: number): Float32Array {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[base + c];
  }
  return out;
}

/** y[n,out] = x[n,in] · W^T for a weight W [out,in] (PyTorch Linear layout, no bias). */
export function linear(x: Float32Array, w: Float32Array, n: number, inDim: number, outDim: number): Float32Array {
  const y = new Float32Array(n * outDim);
  matmulABt(y, x, w, n, inDim, outDim);
  return y;
}

/**
 * Backward of `y = x W^T`: returns dx [n,in] (or adds into `dxInto`) and adds dW += dy^T x into `dw`.
 * Both products reuse `matmulABt` on transposed copies: dx = dy · (W^T)^T, dW = (dy^T) · (x^T)^T.
 */
export function linearBackward(
  dy: Float32Array,
  x: Float32Array,
  w: Float32Array,
  dw: Float32Array,
  n: number,
  inDim: number,
  outDim: number,
  dxInto?: Float32Array,
): Float32Array {
  const wt = transpose(new Float32Array(inDim * outDim), w, outDim, inDim);
  const dx = dxInto ?? new Float32Array(n * inDim);
  matmulABt(dx, dy, wt, n, outDim, inDim, dxInto !== undefined);
  const dyT = transpose(new Float32Array(outDim * n), dy, n, outDim);
  const xT = transpose(new Float32Array(inDim * n), x, n, inDim);
  matmulABt(dw, dyT, xT, outDim, n, inDim, true);
  return dx;
}

/**
 * RMSNorm over groups of `dim` consecutive values (rows of the hidden state, or one head of q/k):
 * y = x / sqrt(mean(x^2) + eps) * w. Writes y and the per-group 1/rms into `inv` (kept for backward).
 */
export function rmsNorm(
  y: Float32Array,
  inv: Float32Array,
  x: Float32Array,
  w: Float32Array,
  groups: number,
  dim: number,
  eps: number,
): void {
  for (let g = 0; g < groups; g++) {
    const base = g * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) {
      const v = x[base + i];
      ss += v * v;
    }
    const r = 1 / Math.sqrt(ss / dim + eps);
    inv[g] = r;
    for (let i = 0; i < dim; i++) y[base + i] = x[base + i] * r * w[i];
  }
}

/**
 * Backward of `rmsNorm`: with xhat = x * r, y = xhat * w:
 * dw += sum dy * xhat; dx = r * (dxhat - xhat * mean(dxhat * xhat)), dxhat = dy * w. Writes dx (may alias dy).
 */
export function rmsNormBackward(
  dx: Float32Array,
  dw: Float32Array,
  dy: Float32Array,
  x: Float32Array,
  inv: Float32Array,
  w: Float32Array,
  groups: number,
  dim: number,
): void {
  for (let g = 0; g < groups; g++) {
    const base = g * dim;
    const r = inv[g];
    let dot = 0;
    for (let i = 0; i < dim; i++) {
      const xhat = x[base + i] * r;
      const d = dy[base + i];
      dw[i] += d * xhat;
      dot += d * w[i] * xhat;
    }
    const mean = dot / dim;
    for (let i = 0; i < dim; i++) {
      const xhat = x[base + i] * r;
      dx[base + i] = r * (dy[base + i] * w[i] - xhat * mean);
    }
  }
}

/**
 * RoPE tables for the given logical positions, Hugging Face convention: inv_freq[i] = theta^(-2i/D) for
 * i < D/2, angle = position * inv_freq[i]. Returns cos and sin, each [n, D/2].
 */
export function ropeTables(
  positions: ArrayLike<number>,
  headDim: number,
  theta: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim >> 1;
  const n = positions.length;
  const cos = new Float32Array(n * half);
  const sin = new Float32Array(n * half);
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = theta ** ((-2 * i) / headDim);
  for (let t = 0; t < n; t++) {
    const p = positions[t];
    for (let i = 0; i < half; i++) {
      const ang = p * invFreq[i];
      cos[t * half + i] = Math.cos(ang);
      sin[t * half + i] = Math.sin(ang);
    }
  }
  return { cos, sin };
}

/**
 * Applies RoPE in place to x [n, heads*D] with the rotate_half convention of HF Qwen/Llama:
 * out[i] = x[i] cos - x[i+D/2] sin, out[i+D/2] = x[i+D/2] cos + x[i] sin. With `inverse` it rotates by the
 * opposite angle, which is exactly the backward (the rotation is orthogonal).
 */
export function applyRope(
  x: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  n: number,
  heads: number,
  headDim: number,
  inverse = false,
): void {
  const half = headDim >> 1;
  const sign = inverse ? -1 : 1;
  const stride = heads * headDim;
  for (let t = 0; t < n; t++) {
    const tb = t * half;
    for (let h = 0; h < heads; h++) {
      const base = t * stride + h * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[tb + i];
        const s = sign * sin[tb + i];
        const a = x[base + i];
        const b = x[base + i + half];
        x[base + i] = a * c - b * s;
        x[base + i + half] = b * c + a * s;
      }
    }
  }
}

/** act = silu(gate) * up, silu(g) = g * sigmoid(g). */
export function swiglu(act: Float32Array, gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < act.length; i++) {
    const g = gate[i];
    act[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/**
 * Backward of `swiglu`: dgate = dact * up * silu'(g), silu'(g) = s (1 + g (1 - s)); dup = dact * silu(g).
 */
export function swigluBackward(
  dgate: Float32Array,
  dup: Float32Array,
  dact: Float32Array,
  gate: Float32Array,
  up: Float32Array,
): void {
  for (let i = 0; i < dact.length; i++) {
    const g = gate[i];
    const s = 1 / (1 + Math.exp(-g));
    const d = dact[i];
    dgate[i] = d * up[i] * s * (1 + g * (1 - s));
    dup[i] = d * g * s;
  }
}

/** In-place softmax of x[off .. off+len). */
export function softmaxInPlace(x: Float32Array, off: number, len: number): void {
  let max = -Infinity;
  for (let i = 0; i < len; i++) if (x[off + i] > max) max = x[off + i];
  let sum = 0;
  for (let i = 0; i < len; i++) {
    const e = Math.exp(x[off + i] - max);
    x[off + i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < len; i++) x[off + i] *= inv;
}

/**
 * Mean cross-entropy of logits [n, V] against targets (-100 = ignored). Returns the loss and, when `dlogits`
 * is given, writes d(loss)/d(logits) into it (zero rows for ignored targets).
 */
export function crossEntropy(
  logits: Float32Array,
  targets: ArrayLike<number>,
  n: number,
  vocab: number,
  dlogits?: Float32Array,
  weights?: ArrayLike<number>,
): { loss: number; count: number } {
  // With weights, token t counts weights[t] times: the loss is the weighted mean and `count` the weight sum.
  if (weights && weights.length < n) throw new Error(`${weights.length} loss weights for ${n} tokens`);
  const w = (t: number): number => (weights ? weights[t] : 1);
  let count = 0;
  for (let t = 0; t < n; t++) if (targets[t] !== IGNORE_INDEX) count += w(t);
  if (dlogits) dlogits.fill(0);
  if (count === 0) return { loss: 0, count: 0 };
  let total = 0;
  for (let t = 0; t < n; t++) {
    const y = targets[t];
    if (y === IGNORE_INDEX) continue;
    if (y < 0 || y >= vocab) throw new RangeError(`target ${y} at ${t} is outside the vocabulary (${vocab})`);
    const base = t * vocab;
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) if (logits[base + i] > max) max = logits[base + i];
    let sum = 0;
    for (let i = 0; i < vocab; i++) sum += Math.exp(logits[base + i] - max);
    const lse = max + Math.log(sum);
    total += w(t) * (lse - logits[base + y]);
    if (dlogits) {
      const scale = w(t) / count;
      for (let i = 0; i < vocab; i++) dlogits[base + i] = Math.exp(logits[base + i] - lse) * scale;
      dlogits[base + y] -= scale;
    }
  }
  return { loss: total / count, count };
}

/** Target value that contributes nothing to the loss (PyTorch's ignore_index). */
export const IGNORE_INDEX = -100;

/** Deterministic PRNG (mulberry32) with a Box-Muller normal sampler, for reproducible initialisation. */
export class Rng {
  private state: number;
  private spare: number | undefined;
  constructor(seed: number) {
    this.state = (seed >>> 0) ^ 0x9e3779b9;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal. */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}
