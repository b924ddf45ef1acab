/**
 * Shared shapes of the OpenMementos data pipeline:
 *   seed (select traces) -> split (sentences) -> score (boundaries 0-3) -> segment (blocks) -> mementos (write, judge, refine)
 * Each stage is a function of its inputs and a Provider; the runner (src/data/runner.ts) adds concurrency,
 * retries and crash-safe resume around the per-trace pipeline.
 */

export type Domain = "math" | "code" | "science" | (string & {});

/** One reasoning trace selected as pipeline input. */
export interface SeedTrace {
  /** Stable id: from the input when it has one, else a content hash; used for resume and deduplication. */
  id: string;
  problem: string;
  /** The reasoning inside `<think>...</think>`, without the tags. */
  reasoning: string;
  /** The final answer after `</think>` (may be empty). */
  answer: string;
  domain: Domain;
  source: string;
  difficulty: number | string | null;
}

/** The six rubric dimensions a judge scores a memento on (maximum points in the comment). */
export interface JudgeDimensions {
  formulas: number; // 0-3: key formulas and equations kept exactly
  values: number; // 0-2: numeric values and intermediate results
  methods: number; // 0-2: methods tried, including rejected attempts
  validation: number; // 0-1: checks and verifications performed
  noHallucination: number; // 0-1: nothing stated that the block does not contain
  resultFirst: number; // 0-1: the block's outcome comes first
}

export const JUDGE_MAX: Readonly<JudgeDimensions> = Object.freeze({
  formulas: 3,
  values: 2,
  methods: 2,
  validation: 1,
  noHallucination: 1,
  resultFirst: 1,
});

export interface Judgment {
  /** Sum of the dimensions, 0-10. */
  score: number;
  dimensions: JudgeDimensions;
  /** Specific, actionable feedback (what is missing or wrong). */
  feedback: string;
}

/** Token usage of one provider call, for counters and cost. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  requests: number;
}

/**
 * What the pipeline asks of a language model. `openai` calls any OpenAI-compatible endpoint; `offline` answers
 * with deterministic heuristics (and says so through `heuristic`).
 */
export interface Provider {
  readonly name: string;
  /** The model per stage, for the output metadata ("heuristic" for offline). */
  readonly models: Readonly<{ score: string; compress: string; judge: string }>;
  readonly heuristic: boolean;

  /**
   * Scores the boundaries inside one window of consecutive sentences: returns `sentences.length - 1` scores,
   * the i-th between sentences[i] and sentences[i+1], each an integer 0-3.
   */
  scoreBoundaries(sentences: readonly string[], signal?: AbortSignal): Promise<number[]>;
  /** One terse, extractive memento per block; `problem` is context only. */
  writeMementos(problem: string, blocks: readonly string[], signal?: AbortSignal): Promise<string[]>;
  /** One judgment per (block, memento) pair. */
  judgeMementos(blocks: readonly string[], mementos: readonly string[], signal?: AbortSignal): Promise<Judgment[]>;
  /** Rewrites the mementos at `indices` using their judgments' feedback; returns one memento per index. */
  refineMementos(
    blocks: readonly string[],
    mementos: readonly string[],
    judgments: readonly Judgment[],
    indices: readonly number[],
    signal?: AbortSignal,
  ): Promise<string[]>;
  /** Cumulative usage since creation. */
  usage(): Usage;
}

/** Per-block record of the memento stage: every round's memento and judgment. */
export interface MementoHistory {
  rounds: { memento: string; judgment: Judgment }[];
  /** The memento kept (the last round's). */
  final: string;
  passed: boolean;
}

/** What the pipeline produces for one trace (OpenMementos `full` schema plus pipeline metadata). */
export interface PipelineRecord {
  id: string;
  status: "completed" | "failed";
  /** For failures: the stage and the reason, one line. */
  error?: { stage: string; message: string };
  problem: string;
  response?: string;
  domain: Domain;
  source: string;
  difficulty: number | string | null;
  sentences?: string[];
  blocks?: [number, number][];
  block_summaries?: string[];
  meta?: {
    provider: string;
    heuristic: boolean;
    models: { score: string; compress: string; judge: string };
    boundaryScores: number[];
    segmentationObjective: number;
    blockTokens: number[];
    mementoHistory: MementoHistory[];
  };
}
