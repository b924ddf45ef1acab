/**
 * Where the RL stage starts and ends by default.
 *
 * - `models/toy-stage2` (committed): the toy recipe stopped after Stage 2, before its answer stages
 *   (`memento train toy --answer-steps 0 --answer-all-steps 0`, seed 1). It has headroom: held-out pass@1 7.0%
 *   at temperature 0.6, while half the training prompts are solved by at least one of eight samples at 1.0 (the
 *   answer's third digit is near chance; see the README).
 * - `runs/rl/model`: what the default `memento train rl` writes, and what `rl compare` compares with it. No RL
 *   model is committed: none has yet beaten its start (README, "Reinforcement learning").
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BUNDLED_RL_START_DIR = fileURLToPath(new URL("../../models/toy-stage2", import.meta.url));
/** `train rl --out`'s default, relative to the working directory (as `train toy`'s `runs/toy`). */
export const DEFAULT_RL_OUT_DIR = "runs/rl";
export const DEFAULT_RL_MODEL_DIR = join(DEFAULT_RL_OUT_DIR, "model");
