/** Analyses of trained Memento models: KV probing (probe*.ts). Layer 8, like src/bench: never imports server or cli. */
export * from "./probe-task.js";
export * from "./probe-mlp.js";
export * from "./probe-stats.js";
export * from "./probe.js";
export * from "./probe-page.js";
export * from "./probe-run.js";
