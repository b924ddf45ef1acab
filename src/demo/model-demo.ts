import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { loadModel } from "../model/index.js";
import { resolveMasking } from "../masking/config.js";
import { parseResponse } from "../format/response.js";
import { toyTokenizer } from "../train/char-tokenizer.js";
import { generateHeldOut, gradeResponse } from "../train/toy-task.js";
import { evaluateToy, generateGreedy, type ToyEvalResult } from "../train/toy.js";
import type { Qwen3Model } from "../model/transformer.js";

/** The bundled toy model (trained by `memento train toy`, committed). */
export const BUNDLED_MODEL_DIR = fileURLToPath(new URL("../../models/toy", import.meta.url));

export function hasBundledModel(dir = BUNDLED_MODEL_DIR): boolean {
  return existsSync(join(dir, "config.json")) && existsSync(join(dir, "model.safetensors"));
}

const MASKED = resolveMasking({ keepLastNBlocks: 0, requireAssistantSection: true });

/**
 * Runs the bundled model on one held-out problem with block masking on: the engine-style greedy loop evicts
 * each block from the KV cache right after its memento. Returns the printable report.
 */
export function runModelDemo(options: { dir?: string; problem?: number } = {}): string {
  const dir = options.dir ?? BUNDLED_MODEL_DIR;
  const model = loadModel(dir);
  const tok = toyTokenizer();
  const item = generateHeldOut(Math.max(1, (options.problem ?? 0) + 1))[options.problem ?? 0];
  const masked = generateGreedy(model, tok, item.prompt, MASKED, 64 + 80 * item.problem.groups.length);
  const full = generateGreedy(model, tok, item.prompt, undefined, 64 + 80 * item.problem.groups.length);
  const grade = gradeResponse(item.problem, masked.text);
  const parsed = parseResponse(masked.text.replace(/<\|im_end\|>[\s\S]*$/, ""));
  const out: string[] = [];
  out.push(`Bundled model (${dir}), a held-out toy problem, greedy, block masking on (keepLastNBlocks 0):`);
  out.push(`Problem: ${item.prompt}   (expected answer ${item.answer})`);
  for (const b of parsed.blocks) {
    const m = b.mementoIndex === null ? undefined : parsed.mementos[b.mementoIndex];
    out.push(`  block ${b.index + 1}: ${b.text}`);
    out.push(`    memento: ${m ? m.text : "(none)"}`);
  }
  out.push(`Answer: ${grade.answer ?? "(none)"} -> ${grade.correct ? "correct" : "wrong"}; mementos matching the reference: ${grade.mementosCorrect}/${grade.blocksExpected}`);
  out.push(`KV: ${masked.evictions} blocks evicted; peak ${masked.peakKvTokens} tokens with masking vs ${full.peakKvTokens} with full attention (${(full.peakKvTokens / Math.max(1, masked.peakKvTokens)).toFixed(2)}x lower)`);
  return out.join("\n");
}

export interface ModelDemoJson {
  model: string;
  problems: number;
  masked: ToyEvalResult;
  fullAttention: ToyEvalResult;
  accuracyDeltaPoints: number;
  peakKvReduction: number;
  targets: { accuracyWithin5Points: boolean; peakKvAtLeast2x: boolean };
}

/** Held-out accuracy with and without block masking and the peak-KV reduction, against the targets. */
export function evaluateBundledModel(options: { dir?: string; problems?: number; model?: Qwen3Model } = {}): ModelDemoJson {
  const dir = options.dir ?? BUNDLED_MODEL_DIR;
  const model = options.model ?? loadModel(dir);
  const tok = toyTokenizer();
  const items = generateHeldOut(options.problems ?? 50);
  const masked = evaluateToy(model, tok, items, MASKED);
  const full = evaluateToy(model, tok, items, undefined);
  const delta = 100 * (masked.accuracy - full.accuracy);
  const reduction = full.meanPeakKvTokens / Math.max(1, masked.meanPeakKvTokens);
  return {
    model: dir,
    problems: items.length,
    masked,
    fullAttention: full,
    accuracyDeltaPoints: delta,
    peakKvReduction: reduction,
    targets: { accuracyWithin5Points: Math.abs(delta) <= 5, peakKvAtLeast2x: reduction >= 2 },
  };
}
