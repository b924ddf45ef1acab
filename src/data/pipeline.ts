import type { MementoTokenizer } from "../format/tokenizer.js";
import { buildResponse } from "../format/response.js";
import { validateResponse } from "../format/validate.js";
import { splitSentences } from "./split.js";
import { segmentBlocks } from "./segment.js";
import { scoreTraceBoundaries } from "./stages/score.js";
import { writeMementosWithJudge } from "./stages/mementos.js";
import type { PipelineRecord, Provider, SeedTrace } from "./types.js";

export interface PipelineOptions {
  tokenizer: MementoTokenizer;
  provider: Provider;
  /** Boundary-scoring windows, one pass per entry; two coprime sizes (16, 11) are averaged. */
  windows?: number[];
  minBlockTokens?: number;
  varianceWeight?: number;
  minBlocks?: number;
  /** Mementos judged below this are refined. */
  judgeThreshold?: number;
  /** Refinement rounds at most. */
  maxRounds?: number;
  signal?: AbortSignal;
}

/** A failure inside one trace's pipeline, with the stage it happened in. */
export class StageError extends Error {
  constructor(
    readonly stage: string,
    message: string,
  ) {
    super(message);
    this.name = "StageError";
  }
}

async function stage<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StageError) throw e;
    throw new StageError(name, (e as Error).message ?? String(e));
  }
}

/**
 * Turns one seed trace into a Memento training example:
 * split into sentences -> score boundaries -> segment into blocks (>= minBlockTokens each) -> write, judge and
 * refine mementos -> assemble and validate the response. Never throws for a per-trace problem: the record comes
 * back as `failed` with the stage and reason, so the runner can keep it.
 */
export async function processTrace(trace: SeedTrace, options: PipelineOptions): Promise<PipelineRecord> {
  const { tokenizer: tok, provider } = options;
  const base = {
    id: trace.id,
    problem: trace.problem,
    domain: trace.domain,
    source: trace.source,
    difficulty: trace.difficulty,
  };
  try {
    const split = await stage("split", () => {
      const s = splitSentences(trace.reasoning, { countTokens: (t) => tok.count(t), stripThink: true });
      if (s.sentences.length === 0) throw new Error("no sentences in the reasoning");
      return s;
    });
    const sentences = split.sentences;
    const tokenCounts = sentences.map((s) => tok.count(s));
    const scored = await stage("score", () =>
      scoreTraceBoundaries(sentences, provider, { windows: options.windows ?? [16], signal: options.signal }),
    );
    const seg = await stage("segment", () =>
      segmentBlocks({
        tokenCounts,
        scores: scored.scores,
        minBlockTokens: options.minBlockTokens,
        varianceWeight: options.varianceWeight,
        minBlocks: options.minBlocks,
      }),
    );
    // A block is the original text from its first sentence to its last, so line breaks, lists and code survive.
    const blockTexts = seg.blocks.map(([a, b]) => trace.reasoning.slice(split.spans[a][0], split.spans[b][1]));
    const mementos = await stage("mementos", () =>
      writeMementosWithJudge(trace.problem, blockTexts, provider, {
        threshold: options.judgeThreshold ?? 8,
        maxRounds: options.maxRounds ?? 2,
        signal: options.signal,
      }),
    );
    const response = buildResponse({ blocks: blockTexts, mementos: mementos.mementos, answer: trace.answer });
    await stage("assemble", () => {
      const { valid, diagnostics } = validateResponse(response);
      if (!valid) {
        const d = diagnostics.find((x) => x.severity === "error") ?? diagnostics[0];
        throw new Error(`assembled response is not valid: ${d.code}: ${d.message}`);
      }
    });
    return {
      ...base,
      status: "completed",
      response,
      sentences,
      blocks: seg.blocks.map(([a, b]) => [a, b] as [number, number]),
      block_summaries: mementos.mementos,
      meta: {
        provider: provider.name,
        heuristic: provider.heuristic,
        models: { ...provider.models },
        boundaryScores: scored.scores,
        segmentationObjective: seg.objective,
        blockTokens: seg.blocks.map(([a, b]) => tokenCounts.slice(a, b + 1).reduce((x, y) => x + y, 0)),
        mementoHistory: mementos.history,
      },
    };
  } catch (e) {
    if (options.signal?.aborted) throw e; // an interrupted run is not a failed trace
    const err = e instanceof StageError ? e : new StageError("pipeline", (e as Error).message);
    return {
      ...base,
      status: "failed",
      error: { stage: err.stage, message: err.message.replace(/\s+/g, " ").slice(0, 500) },
    };
  }
}
