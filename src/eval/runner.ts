import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../errors.js";
import { runJournalled, type JobProgress } from "../io/pool.js";
import { writeFileAtomic } from "../data/writers.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { OpenAIProvider } from "../data/providers/openai.js";
import type { KvArchitecture } from "../kv/architecture.js";
import { renderPrompt } from "./benchmark.js";
import { checkAnswer } from "./check.js";
import { computeGenerationKv } from "./kv.js";
import { answerKey } from "./normalize.js";
import { summarizeRun } from "./summary.js";
import type { BenchmarkProblem, Generation, RunManifest, RunSummary, RequestSampling } from "./types.js";

export const RUN_MANIFEST = "run.json";
export const GENERATIONS_FILE = "generations.jsonl";
export const RESULTS_FILE = "results.json";

/** Progress of a run, in generations (the shared journalled-job progress). */
export type EvalProgress = JobProgress;

export interface EvalRunOptions {
  problems: BenchmarkProblem[];
  benchmark: string;
  outDir: string;
  endpoint: string;
  model: string;
  apiKey?: string;
  label: string;
  n: number;
  sampling: RequestSampling;
  extraBody?: Record<string, unknown>;
  concurrency?: number;
  promptTemplate?: string;
  tokenizer: MementoTokenizer;
  architecture: KvArchitecture;
  timeoutMs?: number;
  attempts?: number;
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
}

const keyOf = (g: Pick<Generation, "problemId" | "sample">) => `${g.problemId}#${g.sample}`;

function checkManifest(path: string, m: RunManifest): void {
  if (!existsSync(path)) return;
  let old: RunManifest;
  try {
    old = JSON.parse(readFileSync(path, "utf8")) as RunManifest;
  } catch {
    throw new UserError(`${path}: unreadable run manifest; use another --out directory`);
  }
  for (const k of ["model", "benchmark", "endpoint"] as const) {
    if (old[k] !== m[k])
      throw new UserError(
        `${path}: this directory holds a run with ${k} "${old[k]}", not "${m[k]}"; use another --out directory`,
      );
  }
  if (JSON.stringify(old.sampling) !== JSON.stringify(m.sampling)) {
    throw new UserError(
      `${path}: this directory holds a run with other sampling settings; use another --out directory`,
    );
  }
}

/**
 * `memento eval run`: n generations per problem from an OpenAI-compatible endpoint, each checked and measured
 * (KV by simulation) as it finishes and journalled, so the same command resumes after a crash without
 * duplicates. Generations that failed at the transport level are retried on resume.
 */
export async function runEval(
  opts: EvalRunOptions,
): Promise<{ summary: RunSummary; progress: EvalProgress; interrupted: boolean }> {
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
    startedAt: new Date().toISOString(),
  };
  const manifestPath = join(opts.outDir, RUN_MANIFEST);
  checkManifest(manifestPath, manifest);
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
  const { temperature, top_p, top_k, min_p, max_tokens, seed } = opts.sampling;
  const tokenizer = opts.tokenizer;
  const generate = async ({ problem, sample }: (typeof tasks)[number]): Promise<Generation> => {
    const prompt = renderPrompt(problem, opts.promptTemplate);
    const started = Date.now();
    const r = await client.complete([{ role: "user", content: prompt }], {
      signal: opts.signal,
      extra: {
        temperature,
        top_p,
        top_k,
        ...(min_p !== undefined ? { min_p } : {}),
        max_tokens,
        ...(seed !== undefined ? { seed: seed + sample } : {}),
        // Keep the Memento markers in the text so blocks and mementos can be measured.
        skip_special_tokens: false,
        ...opts.extraBody,
      },
    });
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
      kv: computeGenerationKv(r.content, { tokenizer, architecture: opts.architecture, problem: prompt }),
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
  return { summary, progress: run.progress, interrupted: run.status === "interrupted" };
}
