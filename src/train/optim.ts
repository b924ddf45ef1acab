/**
 * AdamW with the paper's SFT settings by default (beta 0.9/0.999, no weight decay), global-norm gradient
 * clipping, and a cosine learning-rate schedule with linear warmup.
 */
export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** First and second moments, one array per parameter, same names as the model's. */
  readonly m = new Map<string, Float32Array>();
  readonly v = new Map<string, Float32Array>();
  /** Updates applied so far (for bias correction). */
  t = 0;

  constructor(params: ReadonlyMap<string, Float32Array>, opts: Omit<AdamWOptions, "lr"> = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.length));
      this.v.set(name, new Float32Array(p.length));
    }
  }

  /** One update of every parameter in place with learning rate `lr`. */
  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const update = m[i] / c1 / (Math.sqrt(v[i] / c2) + eps);
        p[i] -= lr * (update + wd * p[i]);
      }
    }
  }
}

/** Scales the gradients in place so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGradNorm(grads: ReadonlyMap<string, Float32Array>, maxNorm: number): number {
  let sq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const norm = Math.sqrt(sq);
  if (norm > maxNorm && norm > 0) {
    const s = maxNorm / norm;
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] *= s;
  }
  return norm;
}

/**
 * Learning rate at `step` (0-based) of `total`: linear warmup over the first `warmupFrac` of the steps, then a
 * cosine decay from `peak` to `peak * minFrac`.
 */
export function cosineLr(step: number, total: number, peak: number, warmupFrac = 0.05, minFrac = 0): number {
  const warm = Math.max(1, Math.round(total * warmupFrac));
  if (step < warm) return (peak * (step + 1)) / warm;
  const progress = Math.min(1, (step - warm) / Math.max(1, total - warm));
  return peak * (minFrac + (1 - minFrac) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
