/**
 * The resumable checkpoint of a training run (SFT `train`, RL `trainRl`): `DIR/checkpoint/` holds the weights in
 * the Hugging Face layout, AdamW's moments (`optimizer.safetensors`, `m.<name>` / `v.<name>`) and the run's own
 * state (`state.json`, whatever the caller puts there).
 *
 * 1. Written beside (`checkpoint.tmp`), then swapped in: a kill mid-save leaves the previous checkpoint whole.
 * 2. Exact: float32 weights and moments round-trip bit for bit, so a resumed run continues bitwise.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadModel, saveModel } from "../model/index.js";
import { readSafetensors, writeSafetensors } from "../model/safetensors.js";
import type { Qwen3Model } from "../model/transformer.js";
import type { AdamW } from "./optim.js";

/** The checkpoint's folder inside a run's output directory. */
export const CHECKPOINT_DIR = "checkpoint";

export interface Checkpoint<S> {
  model: Qwen3Model;
  /** AdamW's moments by `m.<param>` / `v.<param>`. */
  moments: Map<string, Float32Array>;
  state: S;
}

export function saveCheckpoint<S>(dir: string, model: Qwen3Model, opt: AdamW, state: S): void {
  const tmp = join(dir, `${CHECKPOINT_DIR}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  saveModel(tmp, model);
  const moments = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, m] of opt.m) moments.set(`m.${name}`, { shape: [m.length], data: m });
  for (const [name, v] of opt.v) moments.set(`v.${name}`, { shape: [v.length], data: v });
  writeSafetensors(join(tmp, "optimizer.safetensors"), moments);
  writeFileSync(join(tmp, "state.json"), JSON.stringify(state, null, 2) + "\n");
  const final = join(dir, CHECKPOINT_DIR);
  const old = join(dir, `${CHECKPOINT_DIR}.old`);
  rmSync(old, { recursive: true, force: true });
  if (existsSync(final)) renameSync(final, old);
  renameSync(tmp, final);
  rmSync(old, { recursive: true, force: true });
}

/** The checkpoint in `dir`, or undefined when there is none. */
export function loadCheckpoint<S>(dir: string): Checkpoint<S> | undefined {
  const ck = join(dir, CHECKPOINT_DIR);
  if (!existsSync(join(ck, "state.json"))) return undefined;
  const state = JSON.parse(readFileSync(join(ck, "state.json"), "utf8")) as S;
  const moments = new Map<string, Float32Array>();
  for (const [name, t] of readSafetensors(join(ck, "optimizer.safetensors"))) moments.set(name, t.data);
  return { model: loadModel(ck), moments, state };
}

/** Puts saved moments and the update count back into a fresh AdamW over the same parameters. */
export function restoreOptimizer(opt: AdamW, moments: ReadonlyMap<string, Float32Array>, t: number): void {
  for (const [name, m] of opt.m) m.set(moments.get(`m.${name}`)!);
  for (const [name, v] of opt.v) v.set(moments.get(`v.${name}`)!);
  opt.t = t;
}
