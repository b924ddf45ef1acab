/**
 * `memento rl rollouts` as a library call: RL groups from any OpenAI-compatible endpoint (ours, vLLM's with the
 * block-masking overlay), scored by our checkers, with group advantages and the compact Stage-2 mask, written as
 * records a PyTorch trainer consumes (record.ts). A run directory holds:
 *
 *   manifest.json     the run's identity (io/manifest.ts) and settings, written before any request
 *   groups.jsonl      the journal: one line per finished group (its records) or failed group (its error)
 *   rollouts.jsonl    the records of every completed group, in benchmark order (rebuilt at the end of each run)
 *   rollouts.parquet  the same rows as Parquet
 *   summary.json      counts, mean reward, where the token ids came from
 *
 * Policy:
 * 1. One request per sample: POST /completions with the prompt as token ids (the model's chat template, rendered
 *    and tokenized here, so prompt_ids are exactly what the model saw), `logprobs`, vLLM's
 *    `return_tokens_as_token_ids` and `return_token_ids`, `skip_special_tokens: false`, and a seed derived from
 *    (--seed, problem id, sample index) alone (`sampleSeed`), so a resumed or rerun group samples the same.
 * 2. Completion ids come from the endpoint (its `token_ids`, else its `token_id:<id>` logprob tokens); only when
 *    it returns neither is the text tokenized here, and the record says so (`token_source: "retokenized"`).
 * 3. A group is the unit of work: its records are journalled together once every sample is answered and checked.
 *    A failed request (after the client's retries) fails its whole group, which is journalled as failed, never as
 *    reward 0, and taken again by the next run.
 * 4. Resumable and checked like `eval run`: the same command resumes; other options are refused in one line
 *    naming them (`--force-new` moves the old directory aside).
 * 5. At most `concurrency` requests are in flight, over all groups.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { writeFileAtomic } from "../data/writers.js";
import { UserError } from "../errors.js";
import { renderPrompt, type BenchmarkFields } from "../eval/benchmark.js";
import { checkAnswer } from "../eval/check.js";
import type { BenchmarkProblem } from "../eval/types.js";
import { encodeChat } from "../format/chat.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { checkJobIdentity, fileFingerprint, moveAside, type JobIdentity } from "../io/manifest.js";
import { runJournalled, type JobProgress } from "../io/pool.js";
import { trackerIdsOf, type MaskingConfig } from "../masking/config.js";
import { exportRecord, STAGE2_MASKING, stagePattern } from "../train/sft-data.js";
import { DEFAULT_ADVANTAGE_SCALE, groupAdvantages, type AdvantageScale } from "./advantages.js";
import {
  ROLLOUT_FORMAT,
  writeRolloutsJsonl,
  writeRolloutsParquet,
  type RolloutRecord,
  type TokenSource,
} from "./record.js";

export const ROLLOUTS_MANIFEST = "manifest.json";
export const GROUPS_JOURNAL = "groups.jsonl";
export const ROLLOUTS_JSONL = "rollouts.jsonl";
export const ROLLOUTS_PARQUET = "rollouts.parquet";
export const ROLLOUTS_SUMMARY = "summary.json";

/** Samples per problem (GRPO's group size). */
export const DEFAULT_GROUP_SIZE = 8;
/** Sampling temperature: 1.0, so old_logprobs (temperature-1 log_softmax) are the sampling policy's. */
export const DEFAULT_ROLLOUT_TEMPERATURE = 1.0;
/** Most completion tokens per sample. */
export const DEFAULT_ROLLOUT_MAX_TOKENS = 4096;
/** Base of the per-sample seeds. */
export const DEFAULT_ROLLOUT_SEED = 0;
/** Requests in flight at most, over all groups. */
export const DEFAULT_ROLLOUT_CONCURRENCY = 8;
/** Per-request timeout. */
export const DEFAULT_ROLLOUT_TIMEOUT_MS = 600_000;
/** Tries per request (the openai client retries 408/409/429/5xx and connection errors with backoff). */
export const DEFAULT_ROLLOUT_ATTEMPTS = 4;
/**
 * Alternatives asked per token. 1 rather than 0: every server returns the chosen token's logprob with it, and
 * some read `logprobs: 0` as "none".
 */
export const ROLLOUT_LOGPROBS = 1;

export interface RolloutSampling {
  temperature: number;
  topP: number;
  /** -1 = off (not sent). */
  topK: number;
  maxTokens: number;
  /** Base seed (sampleSeed derives each sample's). */
  seed: number;
}

export interface CollectRolloutsOptions {
  problems: BenchmarkProblem[];
  /** The benchmark file (fingerprinted into the run's identity). */
  benchmark: string;
  fields?: BenchmarkFields;
  promptTemplate?: string;
  outDir: string;
  /** OpenAI-compatible base URL (…/v1). */
  endpoint: string;
  model: string;
  apiKey?: string;
  /** Samples per problem (default DEFAULT_GROUP_SIZE). */
  group?: number;
  sampling: RolloutSampling;
  /** Extra JSON fields for every request (e.g. our server's `block_masking`). */
  extraBody?: Record<string, unknown>;
  /** The model's tokenizer: chat template, prompt ids, retokenizing, the mask's marker ids. */
  tokenizer: MementoTokenizer;
  /** Where the tokenizer came from (recorded; undefined: the default Qwen3 tokenizer). */
  tokenizerDir?: string;
  /** Stage-2 masking of the records' mask, over STAGE2_MASKING (as `train export --masking`). */
  masking?: Partial<MaskingConfig>;
  advantageScale?: AdvantageScale;
  concurrency?: number;
  timeoutMs?: number;
  attempts?: number;
  forceNew?: boolean;
  onMovedAside?: (path: string) => void;
  signal?: AbortSignal;
  onProgress?: (p: JobProgress) => void;
}

/** One journal line: a group's records, or why it failed. */
export interface GroupEntry {
  problemId: string;
  status: "ok" | "error";
  records?: RolloutRecord[];
  error?: string;
}

export interface RolloutSummary {
  problems: number;
  groups: number;
  failedGroups: number;
  samples: number;
  meanReward: number | null;
  /** Groups whose rewards all agree (advantage 0 everywhere: no learning signal). */
  zeroSignalGroups: number;
  completionTokens: number;
  tokenSources: Partial<Record<TokenSource, number>>;
  firstError?: string;
}

export interface RolloutResult {
  summary: RolloutSummary;
  progress: JobProgress;
  interrupted: boolean;
  adopted: boolean;
}

/** The seed of one sample: a function of (base, problem id, index) only, in [0, 2^31). */
export function sampleSeed(base: number, problemId: string, sample: number): number {
  const h = createHash("sha256").update(`${base}\u0000${problemId}\u0000${sample}`).digest();
  return h.readUInt32BE(0) >>> 1;
}

/** The run's identity: every option that changes a record, under its flag, and the benchmark's fingerprint. */
export function rolloutIdentity(o: CollectRolloutsOptions): JobIdentity {
  const s = o.sampling;
  return {
    options: {
      "--endpoint": o.endpoint,
      "--model": o.model,
      "--group": o.group ?? DEFAULT_GROUP_SIZE,
      "--temperature": s.temperature,
      "--top-p": s.topP,
      "--top-k": s.topK,
      "--max-tokens": s.maxTokens,
      "--seed": s.seed,
      "--extra-body": o.extraBody,
      "--prompt-template": o.promptTemplate,
      "--field": o.fields && Object.keys(o.fields).length ? o.fields : undefined,
      "--tokenizer": o.tokenizerDir,
      "--masking": o.masking && Object.keys(o.masking).length ? o.masking : undefined,
      "--advantage-scale": o.advantageScale ?? DEFAULT_ADVANTAGE_SCALE,
    },
    input: { "--benchmark": fileFingerprint(o.benchmark) },
  };
}

/** Admits at most `limit` holders at once; the rest wait in arrival order. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** What one completion answered, in our terms. */
export interface SampledCompletion {
  text: string;
  completionIds: number[];
  oldLogprobs: number[];
  finishReason: string;
  forced: number[];
  tokenSource: TokenSource;
}

const TOKEN_ID = /^token_id:(\d+)$/;

const intArray = (v: unknown): number[] | undefined =>
  Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0) ? (v as number[]) : undefined;

/**
 * Reads one completions choice (policy 2). Throws when the answer is unusable (no choice, no text), so the
 * group fails instead of scoring garbage.
 */
export function readChoice(choice: unknown, tokenizer: Pick<MementoTokenizer, "encode">): SampledCompletion {
  if (!choice || typeof choice !== "object") throw new Error("the endpoint answered without a choice");
  const c = choice as Record<string, unknown>;
  if (typeof c.text !== "string") throw new Error("the endpoint's choice has no text");
  const lp = (c.logprobs ?? null) as { tokens?: unknown; token_logprobs?: unknown } | null;
  const logprobs = Array.isArray(lp?.token_logprobs) ? (lp.token_logprobs as unknown[]) : [];
  const lpIds = Array.isArray(lp?.tokens)
    ? (lp.tokens as unknown[]).map((t) => (typeof t === "string" ? TOKEN_ID.exec(t) : null))
    : [];
  let completionIds = intArray(c.token_ids);
  let tokenSource: TokenSource = "token_ids";
  if (!completionIds && lpIds.length > 0 && lpIds.every((m) => m !== null)) {
    completionIds = lpIds.map((m) => Number(m![1]));
    tokenSource = "logprobs";
  }
  if (!completionIds) {
    completionIds = tokenizer.encode(c.text);
    tokenSource = "retokenized";
  }
  const aligned = logprobs.length === completionIds.length && logprobs.every((x) => typeof x === "number");
  return {
    text: c.text,
    completionIds,
    oldLogprobs: aligned ? (logprobs as number[]) : [],
    finishReason: typeof c.finish_reason === "string" ? c.finish_reason : "unknown",
    forced: intArray(c.forced_token_indices) ?? [],
    tokenSource,
  };
}

/** The one-line message of an error thrown while asking the endpoint. */
function messageOf(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").slice(0, 500);
}

/** How long the reachability check waits for any answer. */
export const REACHABLE_TIMEOUT_MS = 10_000;

/** Asks the endpoint for its model list once, so an unreachable endpoint is one clear error before any work. */
export async function checkReachable(client: OpenAI, endpoint: string): Promise<void> {
  try {
    // No retries: a refused connection is the user's to fix, and one answer is all this needs.
    await client.models.list({ maxRetries: 0, timeout: REACHABLE_TIMEOUT_MS });
  } catch (e) {
    // An HTTP answer (even 404: some servers lack /models) means something listens; only no answer is fatal.
    if (e instanceof OpenAI.APIConnectionError) throw new EndpointUnreachableError(endpoint, rootCause(e));
  }
}

/** The endpoint did not answer at all (refused, unresolvable, timed out): the user's to fix, one line, exit 2. */
export class EndpointUnreachableError extends UserError {
  constructor(
    readonly endpoint: string,
    readonly reason: string,
  ) {
    super(`cannot reach ${endpoint} (${reason}); is the server running?`);
  }
}

/** The innermost cause's message, with its system code when it has one ("fetch failed (ECONNREFUSED)"). */
function rootCause(e: unknown): string {
  let cur: unknown = e;
  let code: string | undefined;
  for (let depth = 0; depth < 5 && cur instanceof Error; depth++) {
    code ??= (cur as NodeJS.ErrnoException).code;
    if (!(cur.cause instanceof Error)) break;
    cur = cur.cause;
  }
  const c = cur instanceof Error ? (cur as NodeJS.ErrnoException).code : undefined;
  return code ?? c ?? messageOf(cur);
}

/** Summary of the completed groups (in benchmark order) and the failed ones. */
export function summarizeRollouts(problems: number, entries: readonly GroupEntry[]): RolloutSummary {
  const ok = entries.filter((e) => e.status === "ok");
  const records = ok.flatMap((e) => e.records ?? []);
  const tokenSources: Partial<Record<TokenSource, number>> = {};
  for (const r of records) tokenSources[r.token_source] = (tokenSources[r.token_source] ?? 0) + 1;
  const firstError = entries.find((e) => e.status === "error")?.error;
  return {
    problems,
    groups: ok.length,
    failedGroups: entries.length - ok.length,
    samples: records.length,
    meanReward: records.length ? records.reduce((a, r) => a + r.reward, 0) / records.length : null,
    zeroSignalGroups: ok.filter((e) => (e.records ?? []).every((r) => r.advantage === 0)).length,
    completionTokens: records.reduce((a, r) => a + r.completion_ids.length, 0),
    tokenSources,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

/** `memento rl rollouts`: see the header. */
export async function collectRollouts(o: CollectRolloutsOptions): Promise<RolloutResult> {
  const group = o.group ?? DEFAULT_GROUP_SIZE;
  const identity = rolloutIdentity(o);
  const manifestPath = join(o.outDir, ROLLOUTS_MANIFEST);
  if (o.forceNew) {
    const aside = moveAside(o.outDir);
    if (aside) o.onMovedAside?.(aside);
  }
  const verdict = checkJobIdentity(manifestPath, identity, { what: "rollout run", dirFlag: "--out" });
  const client = new OpenAI({
    baseURL: o.endpoint,
    apiKey: o.apiKey ?? "none",
    maxRetries: Math.max(0, (o.attempts ?? DEFAULT_ROLLOUT_ATTEMPTS) - 1),
    timeout: o.timeoutMs ?? DEFAULT_ROLLOUT_TIMEOUT_MS,
  });
  await checkReachable(client, o.endpoint);
  mkdirSync(o.outDir, { recursive: true });
  const masking = { ...STAGE2_MASKING, ...(o.masking ?? {}) };
  const trackerIds = trackerIdsOf(o.tokenizer);
  writeFileAtomic(
    manifestPath,
    `${JSON.stringify(
      {
        format: ROLLOUT_FORMAT,
        endpoint: o.endpoint,
        model: o.model,
        benchmark: o.benchmark,
        problems: o.problems.length,
        group,
        sampling: o.sampling,
        logprobs: ROLLOUT_LOGPROBS,
        advantageScale: o.advantageScale ?? DEFAULT_ADVANTAGE_SCALE,
        stage2Masking: masking,
        trackerIds,
        tokenizer: o.tokenizerDir ?? null,
        startedAt: new Date().toISOString(),
        ...identity,
      },
      null,
      2,
    )}\n`,
  );

  const gate = new Semaphore(Math.max(1, o.concurrency ?? DEFAULT_ROLLOUT_CONCURRENCY));
  const usage = { promptTokens: 0, completionTokens: 0, requests: 0 };
  const s = o.sampling;
  const sample = async (problem: BenchmarkProblem, promptIds: number[], index: number) => {
    const seed = sampleSeed(s.seed, problem.id, index);
    const body = {
      model: o.model,
      prompt: promptIds,
      max_tokens: s.maxTokens,
      temperature: s.temperature,
      top_p: s.topP,
      ...(s.topK > 0 ? { top_k: s.topK } : {}),
      seed,
      logprobs: ROLLOUT_LOGPROBS,
      return_tokens_as_token_ids: true,
      return_token_ids: true,
      skip_special_tokens: false,
      ...o.extraBody,
    };
    const r = await gate.run(() =>
      client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming, { signal: o.signal }),
    );
    const got = readChoice(r.choices?.[0], o.tokenizer);
    usage.requests++;
    usage.promptTokens += promptIds.length;
    usage.completionTokens += got.completionIds.length;
    const checked = await checkAnswer(got.text, problem.answer, { kind: problem.kind, tests: problem.tests });
    return { seed, got, reward: checked.correct ? 1 : 0 };
  };

  const collectGroup = async (problem: BenchmarkProblem): Promise<GroupEntry> => {
    const user = renderPrompt(problem, o.promptTemplate);
    const promptIds = encodeChat([{ role: "user", content: user }], { tokenizer: o.tokenizer }).ids;
    const samples = await Promise.all(Array.from({ length: group }, (_, i) => sample(problem, promptIds, i)));
    const advantages = groupAdvantages(
      samples.map((x) => x.reward),
      o.advantageScale,
    );
    const records = samples.map(({ seed, got, reward }, i): RolloutRecord => {
      const ids = Int32Array.from([...promptIds, ...got.completionIds]);
      const example = { ids, labels: ids, promptLength: promptIds.length };
      const mask = exportRecord(example, stagePattern(example, 2, trackerIds, masking));
      return {
        problem_id: problem.id,
        sample_index: i,
        seed,
        prompt_ids: promptIds,
        completion_ids: got.completionIds,
        old_logprobs: got.oldLogprobs,
        reward,
        advantage: advantages[i],
        prompt_length: promptIds.length,
        memento_visible_until: mask.memento_visible_until,
        view_at: mask.view_at,
        finish_reason: got.finishReason,
        forced: got.forced,
        token_source: got.tokenSource,
        completion_text: got.text,
      };
    });
    return { problemId: problem.id, status: "ok", records };
  };

  const run = await runJournalled<BenchmarkProblem, GroupEntry>({
    items: o.problems,
    journal: join(o.outDir, GROUPS_JOURNAL),
    itemKey: (p) => p.id,
    recordKey: (e) => e.problemId,
    work: collectGroup,
    succeeded: (e) => e.status === "ok",
    retryFailed: true,
    onError: (p, e) => ({ problemId: p.id, status: "error", error: messageOf(e) }),
    concurrency: Math.ceil(Math.max(1, o.concurrency ?? DEFAULT_ROLLOUT_CONCURRENCY) / group) + 1,
    signal: o.signal,
    meter: () => ({ usage: { ...usage }, cost: 0 }),
    onProgress: o.onProgress,
  });
  const entries = o.problems.map((p) => run.records.get(p.id)).filter((e): e is GroupEntry => e !== undefined);
  const records = entries.flatMap((e) => (e.status === "ok" ? (e.records ?? []) : []));
  writeRolloutsJsonl(join(o.outDir, ROLLOUTS_JSONL), records);
  writeRolloutsParquet(join(o.outDir, ROLLOUTS_PARQUET), records);
  const summary = summarizeRollouts(o.problems.length, entries);
  writeFileAtomic(join(o.outDir, ROLLOUTS_SUMMARY), `${JSON.stringify(summary, null, 2)}\n`);
  return { summary, progress: run.progress, interrupted: run.status === "interrupted", adopted: verdict === "adopted" };
}
