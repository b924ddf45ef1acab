/**
 * Where the RL stage starts and ends by default (both committed; README, "Reinforcement learning").
 *
 * - `models/toy-rl-start`: the toy recipe stopped inside its first answer stage, 225 of 300 steps in (`memento
 *   train toy --answer-all-steps 0 --stop-after-steps 1925`, seed 1: 800 + 400 + 500 + 225 steps). Why there: it
 *   computes the blocks and mementos right but copies the answer's third digit off the last memento only about
 *   two times in three, so held-out pass@1 at temperature 0.6 sits well below maj@8 and pass@8 (Figure 7's
 *   headroom). Earlier snapshots guess that digit (Stage 2's end: 11%), later ones have little left to gain.
 * - `models/toy-rl`: what the default `memento train rl` made from it (20 steps); `rl compare` compares the two.
 * - `runs/rl`: where `train rl` writes a new run (pass `--rl runs/rl/model` to `rl compare` to compare it).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BUNDLED_RL_START_DIR = fileURLToPath(new URL("../../models/toy-rl-start", import.meta.url));
export const BUNDLED_RL_MODEL_DIR = fileURLToPath(new URL("../../models/toy-rl", import.meta.url));
/** `train rl --out`'s default, relative to the working directory (as `train toy`'s `runs/toy`). */
export const DEFAULT_RL_OUT_DIR = "runs/rl";
export const DEFAULT_RL_MODEL_DIR = join(DEFAULT_RL_OUT_DIR, "model");
