/**
 * Log-probabilities of generated tokens, for callers that ask (`EngineRequest.logprobs`): the OpenAI API's
 * `logprobs` / `top_logprobs`, and RL, whose importance ratio needs the rollout policy's probability of each token.
 *
 * 1. They are the model's own distribution, log_softmax(logits) at temperature 1 before any top-k / top-p / min-p
 *    cut (what vLLM returns by default): the policy pi(a | s), whatever sampling drew the token.
 * 2. Computed in float64 from the float32 logits: log_softmax(z)[a] = z[a] - max - log(sum exp(z - max)).
 * 3. Top alternatives are the k most likely tokens in decreasing order (ties: lower id first); the vocabulary is
 *    never sorted (a pass keeps the k best in a small sorted list).
 */

export interface TokenLogprob {
  id: number;
  logprob: number;
}

/** log(sum(exp(z))) in float64 over the first `n` logits. */
export function logSumExp(logits: ArrayLike<number>, n = logits.length): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** log pi(token) under log_softmax(logits). */
export function tokenLogprob(logits: ArrayLike<number>, token: number, lse = logSumExp(logits)): number {
  return logits[token] - lse;
}

/** The k most likely tokens with their log-probabilities, most likely first (k = 0: none). */
export function topLogprobs(logits: ArrayLike<number>, k: number, lse = logSumExp(logits)): TokenLogprob[] {
  const n = logits.length;
  const keep = Math.min(Math.max(0, Math.floor(k)), n);
  if (keep === 0) return [];
  const ids: number[] = [];
  // `ids` stays sorted best first; a token enters when it beats the current k-th.
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    if (ids.length === keep && v <= logits[ids[keep - 1]]) continue;
    let at = ids.length === keep ? keep - 1 : ids.length;
    while (at > 0 && logits[ids[at - 1]] < v) at--;
    if (ids.length === keep) ids.pop();
    ids.splice(at, 0, i);
  }
  return ids.map((id) => ({ id, logprob: logits[id] - lse }));
}
