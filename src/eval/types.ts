/**
 * Shapes of an evaluation run on disk. `memento eval run` writes a run directory:
 *   run.json          the RunManifest (endpoint, model, benchmark, sampling, masking label)
 *   generations.jsonl one Generation per line, appended and fsync'd as each finishes (the resume journal)
 *   results.json      the RunSummary, rewritten at the end of each run
 * `memento eval report RUN [RUN2]` reads these and writes one self-contained HTML file.
 */
import type { MaskingConfig } from "../masking/config.js";
import type { ServerKind } from "./server-kind.js";

export type AnswerKind = "math" | "choice" | "code";

/** One benchmark problem after field mapping. */
export interface BenchmarkProblem {
  id: string;
  /** The user prompt sent to the model. */
  prompt: string;
  /** Reference answer (math expression, letter, or unused for code). */
  answer: string;
  kind: AnswerKind;
  /** For code: stdin/stdout tests. */
  tests?: { input: string; output: string }[];
  /** Optional grouping, e.g. the benchmark's subject or source. */
  subject?: string;
}

/** The sampling fields an evaluation sends with every request, in the OpenAI API's snake_case. */
export interface RequestSampling {
  temperature: number;
  top_p: number;
  top_k: number;
  min_p?: number;
  max_tokens: number;
  seed?: number;
}

/** The paper's evaluation defaults. */
export const PAPER_SAMPLING: Readonly<RequestSampling> = Object.freeze({
  temperature: 0.6,
  top_p: 0.95,
  top_k: 20,
  max_tokens: 32_000,
});

export interface RunManifest {
  /** A short label for tables and charts, e.g. "memento" or "vanilla". */
  label: string;
  endpoint: string;
  model: string;
  benchmark: string;
  problems: number;
  /** Generations per problem. */
  n: number;
  sampling: RequestSampling;
  /** Free-form extra request fields sent to the server (e.g. block-masking settings). */
  extraBody?: Record<string, unknown>;
  /** Architecture used for KV bytes (its name: "Qwen3-8B", or the config.json path). */
  architecture: string;
  /** Who owned masking (server-kind.ts); absent in runs written before it, which were `memento`. */
  server?: ServerKind;
  /**
   * The masking the KV replay applied, over keepLastNBlocks 0: a `vllm-memento` server's launch settings as the
   * masking flags gave them ({} when none were given); absent for a `memento` server.
   */
  serverMasking?: Partial<MaskingConfig>;
  /** Tokenizer directory used for token counts (null: the default Qwen3 tokenizer); `memento view` reads it. */
  tokenizer?: string | null;
  startedAt: string;
  /** The options that make the run what it is, by flag (io/manifest.ts); absent in runs written before them. */
  options?: Record<string, unknown>;
  /** The benchmark's fingerprint, by flag. */
  input?: Record<string, unknown>;
}

/** Per-response KV metrics from the foundation's simulator (tokens; GB for the manifest's architecture). */
export interface GenerationKv {
  promptTokens: number;
  outputTokens: number;
  blocks: number;
  /** memento tokens / block tokens over the response. */
  compression: number;
  blockTokens: number[];
  mementoTokens: number[];
  memento: { peakTokens: number; aucTokens: number; peakGB: number; aucGBxKtok: number };
  vanilla: { peakTokens: number; aucTokens: number; peakGB: number; aucGBxKtok: number };
  /** Resident tokens after each output token under block masking (keepLastNBlocks 0), downsampled to <= 512 points. */
  trajectory?: number[];
  /** The same under full attention (a straight line; kept for charts). */
  vanillaTrajectory?: number[];
}

export interface Generation {
  problemId: string;
  /** 0-based sample index within the problem. */
  sample: number;
  status: "ok" | "error";
  /** Raw response text, special tokens kept (blocks and mementos preserved). */
  response?: string;
  finishReason?: string;
  error?: string;
  usage?: { promptTokens: number; completionTokens: number };
  latencyMs?: number;
  extracted?: string;
  /** Normalised answer used for majority voting. */
  voteKey?: string;
  correct?: boolean;
  method?: string;
  kv?: GenerationKv;
}

export interface RunSummary {
  label: string;
  problems: number;
  generations: number;
  /** Generations that completed (status "ok"): pass@k is over these. Absent in results written before it. */
  completed?: number;
  /** Generations that failed (HTTP error, refused connection, timeout, malformed response): not scored. */
  errors: number;
  pass1: number;
  pass1StdErr: number;
  passAtK: Record<string, number>;
  majAtK: Record<string, number>;
  meanPeakTokens: number;
  meanAucTokens: number;
  meanPeakGB: number;
  meanAucGBxKtok: number;
  vanillaMeanPeakTokens: number;
  vanillaMeanAucTokens: number;
  meanCompression: number;
  meanBlocks: number;
  /** Mean completion tokens as the server's usage counted them, over completed generations that report usage. */
  meanUsageCompletionTokens?: number;
  /** Completed generations whose usage count disagrees with our replay's (usage.ts): not the served tokenizer. */
  usageMismatches?: number;
}
