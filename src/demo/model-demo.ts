import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { loadModel } from "../model/index.js";
import { resolveMasking } from "../masking/config.js";
import { parseResponse } from "../format/response.js";
import { toyTokenizer } from "../train/char-tokenizer.js";
import { generateHeldOut, gradeResponse } from "../train/toy-task.js";
import {
  evaluateToy,
  generateGreedy,
  toyMaxTokens,
  toyRoleAccuracy,
  type ToyEvalResult,
  type ToyTokenRole,
} from "../train/toy.js";
import type { Qwen3Model } from "../model/transformer.js";

/** The bundled toy model (trained by `memento train toy`, committed). */
export const BUNDLED_MODEL_DIR = fileURLToPath(new URL("../../models/toy", import.meta.url));

export function hasBundledModel(dir = BUNDLED_MODEL_DIR): boolean {
  return existsSync(join(dir, "config.json")) && existsSync(join(dir, "model.safetensors"));
}

const MASKED = resolveMasking({ keepLastNBlocks: 0, requireAssistantSection: true });

/** An answer for one line of the report: quoted and cut when it is not a plain short string (a model off format). */
function shortAnswer(answer: string | null): string {
  if (answer === null) return "(none)";
  return /^[\w.-]{0,16}$/.test(answer)
    ? answer
    : JSON.stringify(answer.length > 24 ? answer.slice(0, 24) + "..." : answer);
}

/**
 * Runs the bundled model on a handful of held-out problems with block masking on (the engine-style greedy loop
 * evicts each block from the KV cache right after its memento) and again with full attention, and returns the
 * printable report: each masked trace with its blocks and mementos, then accuracy and peak KV for both modes.
 */
export function runModelDemo(options: { dir?: string; problems?: number } = {}): string {
  const dir = options.dir ?? BUNDLED_MODEL_DIR;
  const model = loadModel(dir);
  const tok = toyTokenizer();
  const items = generateHeldOut(options.problems ?? 5);
  const out: string[] = [];
  out.push(
    `Bundled model (${dir}): ${items.length} held-out toy problems, greedy decoding, block masking on (keepLastNBlocks 0).`,
  );
  out.push(
    "A problem `s=ABCD k=K` gives the last four values of a sequence that goes on by s[i] = s[i-4] + s[i-3] mod 10;",
  );
  out.push(
    "a round is 10 steps `a+b=r` (one block), its memento restates what is left, and the answer is the last four values.",
  );
  let correctMasked = 0;
  let correctFull = 0;
  let peakMasked = 0;
  let peakFull = 0;
  items.forEach((item, i) => {
    const budget = toyMaxTokens(item.problem);
    const masked = generateGreedy(model, tok, item.prompt, MASKED, budget);
    const full = generateGreedy(model, tok, item.prompt, undefined, budget);
    const grade = gradeResponse(item.problem, masked.text);
    const gradeFull = gradeResponse(item.problem, full.text);
    if (grade.correct) correctMasked++;
    if (gradeFull.correct) correctFull++;
    peakMasked += masked.peakKvTokens;
    peakFull += full.peakKvTokens;
    const parsed = parseResponse(masked.text.replace(/<\|im_end\|>[\s\S]*$/, ""));
    out.push("");
    out.push(`Problem ${i + 1}: ${item.prompt}   (expected answer ${item.answer})`);
    for (const b of parsed.blocks) {
      const m = b.mementoIndex === null ? undefined : parsed.mementos[b.mementoIndex];
      out.push(`  block ${b.index + 1}: ${b.text}`);
      out.push(`    memento: ${m ? m.text : "(none)"}   -> block evicted`);
    }
    out.push(
      `  answer ${shortAnswer(grade.answer)}: ${grade.correct ? "correct" : "wrong"}; mementos right ${grade.mementosCorrect}/${grade.blocksExpected}; ` +
        `${masked.evictions} evictions, peak KV ${masked.peakKvTokens} tokens (full attention: ${full.peakKvTokens}, answer ${shortAnswer(gradeFull.answer)})`,
    );
  });
  const n = Math.max(1, items.length);
  out.push("");
  out.push(
    `Accuracy: ${correctMasked}/${items.length} with block masking, ${correctFull}/${items.length} with full attention. ` +
      `Mean peak KV: ${(peakMasked / n).toFixed(1)} vs ${(peakFull / n).toFixed(1)} tokens (${(peakFull / Math.max(1, peakMasked)).toFixed(2)}x lower).`,
  );
  out.push("`memento demo --json` evaluates 200 held-out problems the same way.");
  return out.join("\n");
}

export interface ModelDemoJson {
  model: string;
  problems: number;
  /** Greedy held-out accuracy with block masking (keepLastNBlocks 0), as a fraction (= masked.accuracy). */
  accuracyMasked: number;
  /** The same model with full attention (= fullAttention.accuracy). */
  accuracyFull: number;
  masked: ToyEvalResult;
  fullAttention: ToyEvalResult;
  accuracyDeltaPoints: number;
  peakKvReduction: number;
  /** Teacher-forced argmax accuracy per token role on the first 50 problems (memento attention). */
  tokenAccuracy: Record<ToyTokenRole, { accuracy: number; tokens: number }>;
  targets: { accuracyWithin5Points: boolean; peakKvAtLeast2x: boolean };
}

/** Held-out accuracy with and without block masking and the peak-KV reduction, against the targets. */
export function evaluateBundledModel(
  options: { dir?: string; problems?: number; model?: Qwen3Model } = {},
): ModelDemoJson {
  const dir = options.dir ?? BUNDLED_MODEL_DIR;
  const model = options.model ?? loadModel(dir);
  const tok = toyTokenizer();
  const items = generateHeldOut(options.problems ?? 200);
  const masked = evaluateToy(model, tok, items, MASKED);
  const full = evaluateToy(model, tok, items, undefined);
  const delta = 100 * (masked.accuracy - full.accuracy);
  const reduction = full.meanPeakKvTokens / Math.max(1, masked.meanPeakKvTokens);
  return {
    model: dir,
    problems: items.length,
    accuracyMasked: masked.accuracy,
    accuracyFull: full.accuracy,
    masked,
    fullAttention: full,
    accuracyDeltaPoints: delta,
    peakKvReduction: reduction,
    tokenAccuracy: toyRoleAccuracy(model, tok, items.slice(0, 50), 2),
    targets: { accuracyWithin5Points: Math.abs(delta) <= 5, peakKvAtLeast2x: reduction >= 2 },
  };
}
