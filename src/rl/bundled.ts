/**
 * The RL stage's bundled checkpoints (committed under models/, trained by this project's own commands):
 *
 * - `models/toy-stage2`: the toy recipe stopped after Stage 2, before its answer stages
 *   (`memento train toy --answer-steps 0 --answer-all-steps 0`). It has real headroom: its answers are right
 *   more often in some of eight samples than in one (the answer's third digit is near chance; see the README).
 * - `models/toy-rl`: that checkpoint after the default `memento train rl`.
 */
import { fileURLToPath } from "node:url";

export const BUNDLED_RL_START_DIR = fileURLToPath(new URL("../../models/toy-stage2", import.meta.url));
export const BUNDLED_RL_MODEL_DIR = fileURLToPath(new URL("../../models/toy-rl", import.meta.url));
