/**
 * `memento eval run` as a library call: n generations per problem from an OpenAI-compatible endpoint, checked,
 * KV-measured and journalled in a run directory (layout in types.ts).
 *
 * Policy:
 * 1. Resumable: every finished generation is journalled (io/pool.ts); the same command resumes without duplicates.
 * 2. Failures are failures: a generation that failed is journalled with status "error" and its message, scored
 *    neither right nor wrong (summary.ts), and retried by the next run.
 * 3. Resumes are checked: run.json records the run's identity (`runIdentity`) before any request; a rerun with
 *    another identity is refused in one line naming the differing options (io/manifest.ts).
 * 4. Who owns masking decides what a request carries and which masking the KV replay applies (server-kind.ts);
 *    run.json records the server kind, the replayed masking and the architecture, which `eval report` shows.
 */
import { mkdirSync } from "node:fs";
import { UserError } from "../errors.js";
import { join } from "node:path";
import { checkJobIdentity, fileFingerprint, moveAside, type JobIdentity } from "../io/manifest.js";
import { runJournalled, type JobProgress } from "../io/pool.js";
import { writeFileAtomic } from "../data/writers.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { OpenAIProvider } from "../data/providers/openai.js";
import type { KvArchitecture } from "../kv/architecture.js";
import { MASKING_FIELDS, MASKING_FIELD_NAMES, type MaskingConfig } from "../masking/config.js";
import { renderPrompt, type BenchmarkFields } from "./benchmark.js";
import { checkAnswer } from "./check.js";
import { computeGenerationKv } from "./kv.js";
import { answerKey } from "./normalize.js";
import { summarizeRun } from "./summary.js";
import { checkExtraBody, DEFAULT_SERVER_KIND, requestFields, requireUsage, type ServerKind } from "./server-kind.js";
import type { BenchmarkProblem, Generation, RunManifest, RunSummary, RequestSampling } from "./types.js";

export const RUN_MANIFEST = "run.json";
export const GENERATIONS_FILE = "generations.jsonl";
export const RESULTS_FILE = "results.json";

/** Progress of a run, in generations (the shared journalled-job progress). */
export type EvalProgress = JobProgress;

export interface EvalRunOptions {
  problems: BenchmarkProblem[];
  /** The benchmark file (fingerprinted into the run's identity). */
  benchmark: string;
  /** The benchmark field mapping the problems were loaded with (recorded in the identity). */
  fields?: BenchmarkFields;
  outDir: string;
  endpoint: string;
  model: string;
  apiKey?: string;
  label: string;
  n: number;
  sampling: RequestSampling;
  extraBody?: Record<string, unknown>;
  /** Who owns masking (server-kind.ts); default DEFAULT_SERVER_KIND ("memento"). */
  server?: ServerKind;
  /**
   * The masking of a `vllm-memento` server as it was launched, over keepLastNBlocks 0, for the KV replay only
   * (nothing is sent). Refused with a `memento` server, which takes masking per request in `extraBody`.
   */
  masking?: Partial<MaskingConfig>;
  concurrency?: number;
  promptTemplate?: string;
  tokenizer: MementoTokenizer;
  /** Where `tokenizer` came from, recorded in run.json (undefined: the default Qwen3 tokenizer). */
  tokenizerDir?: string;
  architecture: KvArchitecture;
  timeoutMs?: number;
  attempts?: number;
  /** Move an existing run directory aside and start over (`--force-new`). */
  forceNew?: boolean;
  /** Called with the new name when `forceNew` moved the old directory aside. */
  onMovedAside?: (path: string) => void;
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
}

export interface EvalRunResult {
  summary: RunSummary;
  progress: EvalProgress;
  interrupted: boolean;
  /** The first failed generation's error, when any failed (the CLI's one-line verdict quotes it). */
  firstError?: string;
  /** Whether a run directory without a recorded identity (an older run) was adopted. */
  adopted: boolean;
}

const keyOf = (g: Pick<Generation, "problemId" | "sample">) => `${g.problemId}#${g.sample}`;

/**
 * The identity of a run (io/manifest.ts): each option that changes what a generation holds, under its flag, and
 * the benchmark's fingerprint. `-n`, `--limit`, `--label`, concurrency and timeouts only choose which generations
 * are made or how fast: a rerun may change them.
 */
export function runIdentity(opts: EvalRunOptions): JobIdentity {
  const s = opts.sampling;
  return {
    options: {
      "--endpoint": opts.endpoint,
      "--model": opts.model,
      "--temperature": s.temperature,
      "--top-p": s.top_p,
      "--top-k": s.top_k,
      "--min-p": s.min_p,
      "--max-tokens": s.max_tokens,
      "--seed": s.seed,
      "--extra-body": opts.extraBody,
      "--prompt-template": opts.promptTemplate,
      "--field": opts.fields && Object.keys(opts.fields).length ? opts.fields : undefined,
      "--architecture": opts.architecture.name,
      // Absent for the default, so runs recorded before these options resume as they were.
      "--server": serverOf(opts) === DEFAULT_SERVER_KIND ? undefined : serverOf(opts),
      ...maskingFlags(opts.masking ?? {}),
    },
    input: { "--benchmark": fileFingerprint(opts.benchmark) },
  };
}

const serverOf = (opts: Pick<EvalRunOptions, "server">): ServerKind => opts.server ?? DEFAULT_SERVER_KIND;

/** The masking settings under their CLI flags (`--mask-delimiters: true`), for the run's identity. */
function maskingFlags(masking: Partial<MaskingConfig>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of MASKING_FIELD_NAMES) {
    const flag = MASKING_FIELDS[k].flag?.split(" ")[0] ?? k;
    if (masking[k] !== undefined) out[flag] = masking[k];
  }
  return out;
}

/** Refuses options that contradict who owns masking (server-kind.ts), before anything is written. */
function checkServerOptions(opts: EvalRunOptions): void {
  const server = serverOf(opts);
  checkExtraBody(server, opts.extraBody);
  if (server !== "vllm-memento" && opts.masking && Object.keys(opts.masking).length > 0)
    throw new UserError(
      "the masking flags describe a --server vllm-memento launch; a memento server takes masking per request: " +
        `--extra-body '{"block_masking":{...}}'`,
    );
}

/** The first error message among failed generations, for a one-line verdict. */
function firstError(generations: readonly Generation[]): string | undefined {
  return generations.find((g) => g.status === "error")?.error;
}

/**
 * `memento eval run`: n generations per problem from an OpenAI-compatible endpoint, each checked and measured
 * (KV by simulation) as it finishes and journalled, so the same command resumes after a crash without
 * duplicates. A generation that failed (HTTP error, refused connection, timeout, malformed response, a check
 * that threw) is journalled as an error, never as a wrong answer: the summary scores completed generations and
 * counts errors beside them, and a rerun retries the failed ones. A rerun with another identity is refused
 * (`runIdentity`); `forceNew` moves the old directory aside first.
 */
export async function runEval(opts: EvalRunOptions): Promise<EvalRunResult> {
  checkServerOptions(opts);
  const server = serverOf(opts);
  const identity = runIdentity(opts);
  const manifestPath = join(opts.outDir, RUN_MANIFEST);
  if (opts.forceNew) {
    const aside = moveAside(opts.outDir);
    if (aside) opts.onMovedAside?.(aside);
  }
  const verdict = checkJobIdentity(manifestPath, identity, { what: "run", dirFlag: "--out" });
  mkdirSync(opts.outDir, { recursive: true });
  const manifest: RunManifest = {
    label: opts.label,
    endpoint: opts.endpoint,
    model: opts.model,
    benchmark: opts.benchmark,
    problems: opts.problems.length,
    n: opts.n,
    sampling: opts.sampling,
    ...(opts.extraBody ? { extraBody: opts.extraBody } : {}),
    architecture: opts.architecture.name,
    server,
    ...(server === "vllm-memento" ? { serverMasking: opts.masking ?? {} } : {}),
    tokenizer: opts.tokenizerDir ?? null,
    startedAt: new Date().toISOString(),
    ...identity,
  };
  writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + "\n");

  const client = new OpenAIProvider({
    baseURL: opts.endpoint,
    apiKey: opts.apiKey,
    model: opts.model,
    jsonMode: false,
    retry: { attempts: opts.attempts ?? 4, timeoutMs: opts.timeoutMs ?? 600_000 },
  });
  const tasks: { problem: BenchmarkProblem; sample: number }[] = [];
  for (const problem of opts.problems) for (let s = 0; s < opts.n; s++) tasks.push({ problem, sample: s });
  const tokenizer = opts.tokenizer;
  const generate = async ({ problem, sample }: (typeof tasks)[number]): Promise<Generation> => {
    const prompt = renderPrompt(problem, opts.promptTemplate);
    const started = Date.now();
    const r = await client.complete([{ role: "user", content: prompt }], {
      signal: opts.signal,
      extra: requestFields(opts.sampling, sample, opts.extraBody),
    });
    requireUsage(server, r.usage);
    const checked = await checkAnswer(r.content, problem.answer, { kind: problem.kind, tests: problem.tests });
    const extracted = checked.extracted;
    return {
      problemId: problem.id,
      sample,
      status: "ok",
      response: r.content,
      finishReason: r.finishReason,
      usage: { promptTokens: r.usage.prompt, completionTokens: r.usage.completion },
      latencyMs: Date.now() - started,
      extracted: extracted ?? undefined,
      // Majority voting groups equivalent answers by their normalised form.
      voteKey: extracted === null ? undefined : problem.kind === "math" ? answerKey(extracted) : extracted.trim(),
      correct: checked.correct,
      method: checked.method,
      kv: computeGenerationKv(r.content, {
        tokenizer,
        architecture: opts.architecture,
        problem: prompt,
        ...(server === "vllm-memento" ? { masking: opts.masking } : {}),
      }),
    };
  };

  // Journalled in completion order; a generation that failed (transport, checking) is journalled as an error and
  // taken again on resume.
  const run = await runJournalled({
    items: tasks,
    journal: join(opts.outDir, GENERATIONS_FILE),
    itemKey: (t) => keyOf({ problemId: t.problem.id, sample: t.sample }),
    recordKey: keyOf,
    work: generate,
    succeeded: (g) => g.status === "ok",
    retryFailed: true,
    onError: (t, e): Generation => ({
      problemId: t.problem.id,
      sample: t.sample,
      status: "error",
      error: (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").slice(0, 500),
    }),
    concurrency: opts.concurrency,
    signal: opts.signal,
    meter: () => ({ usage: client.usage(), cost: 0 }),
    onProgress: opts.onProgress,
  });
  const generations = tasks
    .map((t) => run.records.get(keyOf({ problemId: t.problem.id, sample: t.sample })))
    .filter((g): g is Generation => g !== undefined);
  const summary = summarizeRun(opts.label, opts.problems, generations, opts.n);
  writeFileAtomic(join(opts.outDir, RESULTS_FILE), JSON.stringify(summary, null, 2) + "\n");
  return {
    summary,
    progress: run.progress,
    interrupted: run.status === "interrupted",
    firstError: firstError(generations),
    adopted: verdict === "adopted",
  };
}
