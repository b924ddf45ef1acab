/**
 * Material for teacher-forced replay: recorded Memento responses as token ids, and a vocabulary remap that
 * lets a small random model replay Qwen3-tokenized traces (the markers keep their roles, every other id is
 * folded into the small vocabulary; KV shapes depend only on where the markers are).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { renderMementoChat } from "../format/chat.js";
import { parseReferenceTrace, referenceToResponse } from "../format/reference.js";
import type { MementoTokenizer, SpecialTokenIds } from "../format/tokenizer.js";
import { IM_END } from "../format/tokens.js";
import { syntheticMementoStream, QWEN3_MEMENTO_IDS } from "./synthetic.js";
import { Qwen3Model, toyConfig } from "../model/index.js";
import { simulateKv } from "../kv/simulate.js";
import { resolveMasking, type MaskingConfig, type TrackerTokenIds } from "../masking/config.js";
import { UserError } from "../errors.js";
import { createEngine } from "../engine/engine.js";
import { ReferenceBackend } from "../engine/backends/reference.js";
import type { EngineTokenizer } from "../engine/types.js";

export interface ReplayTrace {
  name: string;
  promptTokens: number[];
  completionTokens: number[];
}

/** A reference output file (`memento_output_*.json`) as Qwen3 token ids: the chat prompt, then the response + `<|im_end|>`. */
export function referenceReplay(json: unknown, tokenizer: MementoTokenizer, name = "trace"): ReplayTrace {
  const trace = parseReferenceTrace(json, name);
  const prompt = renderMementoChat([{ role: "user", content: trace.problem }], {
    tokenizer,
    addGenerationPrompt: true,
  });
  return {
    name,
    promptTokens: tokenizer.encode(prompt),
    completionTokens: tokenizer.encode(referenceToResponse(trace) + IM_END),
  };
}

/** Every `memento_output_*.json` in `dir`, tokenized. */
export function loadReferenceReplays(dir: string, tokenizer: MementoTokenizer): ReplayTrace[] {
  return readdirSync(dir)
    .filter((f) => /^memento_output_.*\.json$/.test(f))
    .sort()
    .map((f) => referenceReplay(JSON.parse(readFileSync(join(dir, f), "utf8")), tokenizer, f.replace(/\.json$/, "")));
}

/** Qwen3 + Memento special ids (what `loadTokenizer()` assigns), for synthetic streams. */
export const QWEN3_SPECIAL_IDS: SpecialTokenIds = {
  blockStart: QWEN3_MEMENTO_IDS.blockStart,
  blockEnd: QWEN3_MEMENTO_IDS.blockEnd,
  summaryStart: QWEN3_MEMENTO_IDS.summaryStart,
  summaryEnd: QWEN3_MEMENTO_IDS.summaryEnd,
  thinkStart: 151667,
  thinkEnd: 151668,
  imStart: QWEN3_MEMENTO_IDS.imStart,
  imEnd: 151645,
  assistant: QWEN3_MEMENTO_IDS.assistant,
  eos: 151645,
};

/** Synthetic Memento-shaped replays (Qwen3 ids) for when no recorded traces are at hand. */
export function syntheticReplays(
  count: number,
  length = 4000,
  seed = 1,
  blockTokens = 400,
  mementoTokens = 60,
): ReplayTrace[] {
  return Array.from({ length: count }, (_, i) => {
    const { tokens, promptLength } = syntheticMementoStream(
      length,
      seed + i,
      QWEN3_MEMENTO_IDS,
      blockTokens,
      mementoTokens,
      100,
    );
    const all = Array.from(tokens);
    return {
      name: `synthetic-${i}`,
      promptTokens: all.slice(0, promptLength),
      completionTokens: all.slice(promptLength),
    };
  });
}

/**
 * Folds a large vocabulary into `vocabSize` ids: the special tokens get 0..k-1 (same roles), every other id
 * maps to k + id mod (vocabSize - k). `tokenizer` decodes the small ids (specials by name, others as one
 * character) so an engine can run on them.
 */
export class VocabRemap {
  readonly vocabSize: number;
  readonly tokenizer: EngineTokenizer;
  private readonly special = new Map<number, number>();
  private readonly k: number;

  constructor(special: SpecialTokenIds, vocabSize: number) {
    const names: (keyof SpecialTokenIds)[] = [
      "blockStart",
      "blockEnd",
      "summaryStart",
      "summaryEnd",
      "thinkStart",
      "thinkEnd",
      "imStart",
      "imEnd",
      "assistant",
      "eos",
      "pad",
    ];
    const small: Partial<Record<keyof SpecialTokenIds, number>> = {};
    const label = new Map<number, string>();
    for (const n of names) {
      const id = special[n];
      if (id === undefined || id < 0) continue;
      if (!this.special.has(id)) {
        this.special.set(id, this.special.size);
        label.set(this.special.size - 1, `<${n}>`);
      }
      small[n] = this.special.get(id);
    }
    this.k = this.special.size;
    if (vocabSize <= this.k) throw new RangeError(`vocabSize must exceed the ${this.k} special ids`);
    this.vocabSize = vocabSize;
    const k = this.k;
    const specialTokens = {
      blockStart: -1,
      blockEnd: -1,
      summaryStart: -1,
      summaryEnd: -1,
      thinkStart: -1,
      thinkEnd: -1,
      ...small,
    } as SpecialTokenIds;
    this.tokenizer = {
      specialTokens,
      decode: (ids, opts) =>
        ids
          .map((i) =>
            i < k ? (opts?.skipSpecialTokens ? "" : (label.get(i) ?? "")) : String.fromCharCode(0x21 + ((i - k) % 94)),
          )
          .join(""),
    };
  }

  map(id: number): number {
    const s = this.special.get(id);
    return s !== undefined ? s : this.k + (id % (this.vocabSize - this.k));
  }

  mapAll(ids: readonly number[]): number[] {
    return ids.map((i) => this.map(i));
  }

  trace(t: ReplayTrace): ReplayTrace {
    return {
      name: t.name,
      promptTokens: this.mapAll(t.promptTokens),
      completionTokens: this.mapAll(t.completionTokens),
    };
  }
}

/** KV figures of one replay, measured by the engine or simulated (same fields). */
export interface ReplayKv {
  peakTokens: number;
  finalTokens: number;
  aucTokens: number;
  compactions: [number, number][];
  blocks: number;
  evictedTokens: number;
}

export interface EngineReplayReport {
  /** Measured by the engine on the backend's resident cells. */
  engine: ReplayKv & { seconds: number };
  /** `simulateKv` on the same tokens and masking. */
  simulated: ReplayKv;
  /** Peak, AUC and compactions agree. */
  match: boolean;
  model: string;
}

/**
 * Replays `tokens` (prompt = the first `promptLength`) through the engine on a small random Qwen3 model whose
 * vocabulary folds every id but the markers (so any tokenizer's ids work), and compares with `simulateKv`.
 */
export async function engineReplay(
  tokens: readonly number[],
  promptLength: number,
  markers: TrackerTokenIds,
  masking: Partial<MaskingConfig>,
  opts: { vocabSize?: number; hiddenSize?: number; seed?: number } = {},
): Promise<EngineReplayReport> {
  if (promptLength < 1 || promptLength > tokens.length)
    throw new UserError(`promptLength must be in [1, ${tokens.length}] for an engine replay`);
  const special: SpecialTokenIds = { ...markers, thinkStart: -1, thinkEnd: -1 };
  const remap = new VocabRemap(special, opts.vocabSize ?? 256);
  const small = remap.mapAll(tokens);
  const hidden = opts.hiddenSize ?? 16;
  const model = Qwen3Model.random(
    toyConfig({
      vocab_size: remap.vocabSize,
      hidden_size: hidden,
      intermediate_size: 2 * hidden,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 8,
      max_position_embeddings: Math.max(4096, tokens.length + 1),
    }),
    { seed: opts.seed ?? 1 },
  );
  const engine = createEngine({
    backend: new ReferenceBackend(model),
    tokenizer: remap.tokenizer,
    kvBudgetTokens: tokens.length + 64,
    admissionReserveTokens: 1,
  });
  const t0 = performance.now();
  const r = await engine
    .submit({
      promptTokens: small.slice(0, promptLength),
      replayTokens: small.slice(promptLength),
      sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: Math.max(1, tokens.length - promptLength) },
      masking,
    })
    .result();
  const seconds = (performance.now() - t0) / 1000;
  await engine.close();
  if (r.finishReason !== "stop") throw new Error(`replay ended with ${r.finishReason}: ${r.message ?? ""}`);
  const sim = simulateKv(tokens, promptLength, markers, resolveMasking(masking));
  const compactions = r.evictions.map((e): [number, number] => [e.start, e.end]);
  const evicted = r.evictions.reduce((a, e) => a + e.freed, 0);
  return {
    engine: {
      peakTokens: r.stats.peakKvTokens,
      finalTokens: r.stats.finalKvTokens,
      aucTokens: r.stats.aucKvTokens,
      compactions,
      blocks: r.stats.blocks,
      evictedTokens: evicted,
      seconds,
    },
    simulated: {
      peakTokens: sim.peakTokens,
      finalTokens: sim.finalTokens,
      aucTokens: sim.aucTokens,
      compactions: sim.compactions,
      blocks: sim.blocks,
      evictedTokens: sim.evictedTokens,
    },
    match:
      r.stats.peakKvTokens === sim.peakTokens &&
      r.stats.finalKvTokens === sim.finalTokens &&
      r.stats.aucKvTokens === sim.aucTokens &&
      JSON.stringify(compactions) === JSON.stringify(sim.compactions),
    model: `random Qwen3 (hidden ${hidden}, vocabulary folded to ${remap.vocabSize})`,
  };
}
