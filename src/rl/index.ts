/**
 * Reinforcement learning with block-masked rollouts (the paper's third training stage). Layer 8, like
 * src/analyze: uses the engine, the trainer's pieces and eval's metrics; never imports server or cli.
 */
export * from "./advantages.js";
export * from "./cispo.js";
export * from "./engine-rollouts.js";
export * from "./evaluate.js";
export * from "./pool.js";
export * from "./train-rl.js";
export * from "./compare.js";
export * from "./bundled.js";
export * from "./report-html.js";
export * from "./record.js";
export * from "./rollouts.js";
