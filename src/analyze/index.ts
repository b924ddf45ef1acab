/** Analyses of trained Memento models: KV probing (probe*.ts). Layer 8, like src/bench: never imports server or cli. */
export * from "./probe-task.js";
export * from "./probe-mlp.js";
export * from "./probe-stats.js";
export * from "./probe.js";
export * from "./probe-page.js";
export * from "./probe-run.js";
export * from "./restart.js";
export * from "./restart-generate.js";
export * from "./restart-stats.js";
export * from "./restart-tasks.js";
export * from "./restart-html.js";
export * from "./restart-probe.js";
