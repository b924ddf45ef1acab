/**
 * `memento rl compare`: the starting checkpoint and the RL model on the same held-out problems, with the same
 * sampling and seeds (evaluate.ts clause 1), so the difference is the weights' alone.
 *
 * 1. pass@1 from `samples` samples per problem at `temperature` (the paper: 0.6), maj@8 from the first eight,
 *    peak KV, blocks per response and block length, all with block masking (keep-last-0, the block cap).
 * 2. `fullAttentionPeakKvTokens`: what the RL model's own responses would hold without eviction (prompt +
 *    completion - 1 cells each, averaged): the baseline the RL model's peak KV is compared with.
 */
import { UserError } from "../errors.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadModel } from "../model/index.js";
import { toyTokenizer } from "../train/char-tokenizer.js";
import { STAGE2_MASKING } from "../train/sft-data.js";
import type { MaskingConfig } from "../masking/config.js";
import { generateHeldOut, type ToyParams } from "../train/toy-task.js";
import { evaluatePolicy, type PolicyEval } from "./evaluate.js";
import { RlPool } from "./pool.js";

export interface CompareOptions {
  startDir: string;
  rlDir: string;
  problems: number;
  samples: number;
  temperature: number;
  seed: number;
  /** Masking over Stage 2's (the block cap: `maxBlockTokens`). */
  masking: Partial<MaskingConfig>;
  task?: Partial<ToyParams>;
  workers: number;
  onProgress?: (line: string) => void;
}

export const DEFAULT_COMPARE = Object.freeze({
  problems: 50,
  samples: 8,
  temperature: 0.6,
  seed: 1,
});

export interface SideSummary {
  passAt1: number;
  ci95: [number, number];
  majAt8: number | null;
  passAt8: number | null;
  peakKvTokens: number;
  blocksPerResponse: number;
  meanBlockTokens: number;
  meanCompletionTokens: number;
}

export interface RlCompare {
  problems: number;
  samples: number;
  temperature: number;
  start: SideSummary;
  rl: SideSummary;
  fullAttentionPeakKvTokens: number;
}

function side(e: PolicyEval): SideSummary {
  return {
    passAt1: e.passAt1,
    ci95: e.ci95,
    majAt8: e.samples >= 8 ? (e.majAtK ?? null) : null,
    passAt8: e.samples >= 8 ? (e.passAtK ?? null) : null,
    peakKvTokens: e.peakKvTokens,
    blocksPerResponse: e.blocksPerResponse,
    meanBlockTokens: e.meanBlockTokens,
    meanCompletionTokens: e.meanCompletionTokens,
  };
}

export async function compareRl(o: CompareOptions): Promise<RlCompare> {
  if (o.samples !== 8) {
    // maj@8 needs eight samples per problem; more would make it an estimate over subsets, fewer impossible.
    throw new UserError(`rl compare: --samples must be 8 (maj@8 and pass@8 are computed from them), got ${o.samples}`);
  }
  for (const [flag, dir] of [
    ["--start", o.startDir],
    ["--rl", o.rlDir],
  ] as const) {
    if (!existsSync(join(dir, "model.safetensors")))
      throw new UserError(`rl compare: ${flag} ${dir} is not a model directory (no model.safetensors)`);
  }
  const tok = toyTokenizer();
  const items = generateHeldOut(o.problems, o.task ?? {});
  const evalOne = async (dir: string, name: string): Promise<PolicyEval> => {
    const pool = await RlPool.create(loadModel(dir), undefined, tok, o.workers);
    try {
      return await evaluatePolicy(pool, items, {
        samples: o.samples,
        temperature: o.temperature,
        seed: o.seed,
        masking: { ...STAGE2_MASKING, ...o.masking },
        onProgress: (done, total) => o.onProgress?.(`${name}: ${done}/${total} problems`),
      });
    } finally {
      await pool.close();
    }
  };
  const start = await evalOne(o.startDir, "start");
  const rl = await evalOne(o.rlDir, "rl");
  return {
    problems: o.problems,
    samples: o.samples,
    temperature: o.temperature,
    start: side(start),
    rl: side(rl),
    fullAttentionPeakKvTokens: rl.fullAttentionPeakKvTokens,
  };
}
