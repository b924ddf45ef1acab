/**
 * `memento bench sampler`: the engine's sampler per token at a real vocabulary (Qwen3's 151,936 ids), next to a
 * full-sort sampler measured in the same run on the same logits (the way the engine sampled before partial
 * selection). Logits are drawn from a heavy-headed distribution like a language model's (a few tokens far above
 * a Gaussian bulk), so top-p stops early as it does in real decoding; min and median over repeats.
 */
import { performance } from "node:perf_hooks";
import { sampleToken } from "../engine/sampling.js";
import type { SamplingParams } from "../engine/types.js";
import { Rng } from "../model/ops.js";
import { median } from "../util/stats.js";

export const QWEN3_VOCAB_SIZE = 151_936;

export interface SamplerBenchCase {
  name: string;
  params: SamplingParams;
  /** Milliseconds per token, min and median over repeats. */
  msMin: number;
  msMedian: number;
  fullSortMsMin: number;
  fullSortMsMedian: number;
  /** Full-sort time / sampler time, medians. */
  speedup: number;
  /** Draws that agreed with the full-sort sampler given the same uniform number (should be all). */
  agreement: number;
}

export interface SamplerBenchResult {
  vocab: number;
  repeats: number;
  tokensPerRepeat: number;
  cases: SamplerBenchCase[];
}

/** Logits like a model's: a Gaussian bulk (sd 2) and a head of a few tokens 8-16 above it. */
function modelLikeLogits(vocab: number, rng: Rng): Float32Array {
  const out = new Float32Array(vocab);
  for (let i = 0; i < vocab; i += 2) {
    // Box-Muller: two normals per pair of uniforms.
    const r = Math.sqrt(-2 * Math.log(1 - rng.next()));
    const a = 2 * Math.PI * rng.next();
    out[i] = 2 * r * Math.cos(a);
    if (i + 1 < vocab) out[i + 1] = 2 * r * Math.sin(a);
  }
  for (let h = 0; h < 8; h++) out[Math.floor(rng.next() * vocab)] = 8 + rng.next() * 8;
  return out;
}

/**
 * The tokens a sampler that sorts every candidate keeps, best first when top-k or top-p cut (by id otherwise):
 * the naive reference the engine's sampler is tested and measured against.
 */
export function fullSortKept(logits: Float32Array, p: Readonly<SamplingParams>): { ids: number[]; weights: number[] } {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  const weights = new Float64Array(n);
  for (let i = 0; i < n; i++) weights[i] = Math.exp((logits[i] - max) / p.temperature);
  const minP = Math.max(p.minP, 0);
  let ids: number[] = [];
  for (let i = 0; i < n; i++) if (weights[i] > 0 && weights[i] >= minP) ids.push(i);
  const topK = Math.max(p.topK, 0);
  const topP = p.topP > 0 && p.topP < 1 ? p.topP : 1;
  if ((topK > 0 && topK < ids.length) || topP < 1) {
    ids.sort((a, b) => weights[b] - weights[a] || a - b);
    if (topK > 0) ids = ids.slice(0, topK);
    if (topP < 1) {
      let total = 0;
      for (const i of ids) total += weights[i];
      let acc = 0;
      let keep = ids.length;
      for (let j = 0; j < ids.length; j++) {
        acc += weights[ids[j]];
        if (acc >= topP * total) {
          keep = j + 1;
          break;
        }
      }
      ids = ids.slice(0, keep);
    }
  }
  return { ids, weights: ids.map((i) => weights[i]) };
}

/** One draw of the full-sort sampler with the uniform number `u` (the same walk as the engine's sampler). */
export function fullSortSample(logits: Float32Array, p: Readonly<SamplingParams>, u: number): number {
  const { ids, weights } = fullSortKept(logits, p);
  let total = 0;
  for (const w of weights) total += w;
  let r = u * total;
  for (let j = 0; j < ids.length; j++) {
    r -= weights[j];
    if (r < 0) return ids[j];
  }
  return ids[ids.length - 1];
}

const CASES: { name: string; params: SamplingParams }[] = [
  { name: "T 0.6, top-p 0.95 (no top-k)", params: { temperature: 0.6, topP: 0.95, topK: 0, minP: 0, maxTokens: 1 } },
  {
    name: "paper: T 0.6, top-p 0.95, top-k 20",
    params: { temperature: 0.6, topP: 0.95, topK: 20, minP: 0, maxTokens: 1 },
  },
  { name: "min-p 0.05, T 1", params: { temperature: 1, topP: 1, topK: 0, minP: 0.05, maxTokens: 1 } },
  { name: "temperature 1 only", params: { temperature: 1, topP: 1, topK: 0, minP: 0, maxTokens: 1 } },
];

export function benchSampler(
  opts: { vocab?: number; repeats?: number; tokens?: number; seed?: number } = {},
): SamplerBenchResult {
  const vocab = opts.vocab ?? QWEN3_VOCAB_SIZE;
  const repeats = opts.repeats ?? 5;
  const tokens = opts.tokens ?? 20;
  const rng = new Rng(opts.seed ?? 1);
  const rows = Array.from({ length: tokens }, () => modelLikeLogits(vocab, rng));
  const uniforms = rows.map(() => rng.next());
  const cases = CASES.map(({ name, params }) => {
    const ours: number[] = [];
    const full: number[] = [];
    let agree = 0;
    for (let r = 0; r < repeats; r++) {
      // Interleaved so drift in machine load hits both alike.
      let t0 = performance.now();
      const a = rows.map((row, j) => sampleToken(row, params, () => uniforms[j]));
      ours.push((performance.now() - t0) / tokens);
      t0 = performance.now();
      const b = rows.map((row, j) => fullSortSample(row, params, uniforms[j]));
      full.push((performance.now() - t0) / tokens);
      if (r === 0) agree = a.filter((x, j) => x === b[j]).length / tokens;
    }
    return {
      name,
      params,
      msMin: Math.min(...ours),
      msMedian: median(ours),
      fullSortMsMin: Math.min(...full),
      fullSortMsMedian: median(full),
      speedup: median(full) / median(ours),
      agreement: agree,
    };
  });
  return { vocab, repeats, tokensPerRepeat: tokens, cases };
}

export function formatSamplerBench(r: SamplerBenchResult): string {
  const lines = [
    `sampler at vocabulary ${r.vocab.toLocaleString()}, ${r.tokensPerRepeat} tokens x ${r.repeats} repeats ` +
      "(ms per token, min / median; baseline: full sort of every candidate, same run)",
  ];
  for (const c of r.cases) {
    lines.push(
      `  ${c.name.padEnd(36)} ${c.msMin.toFixed(3)} / ${c.msMedian.toFixed(3)} ms` +
        `   full sort ${c.fullSortMsMin.toFixed(2)} / ${c.fullSortMsMedian.toFixed(2)} ms` +
        `   ${c.speedup >= 1 ? `${c.speedup.toFixed(1)}x faster` : `${(1 / c.speedup).toFixed(1)}x slower`}, ` +
        `same token ${(c.agreement * 100).toFixed(0)}%`,
    );
  }
  return `${lines.join("\n")}\n`;
}
