/** Deterministic 32-bit words (xorshift32; seed 0 counts as 1), independent of the code under test. */
export function xorshiftWords(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Uniform [0, 1) numbers from the same words. */
export function xorshiftUniforms(seed: number): () => number {
  const next = xorshiftWords(seed);
  return () => next() / 4294967296;
}
