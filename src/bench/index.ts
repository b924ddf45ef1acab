/** Benchmarks behind `memento bench` (each against a baseline measured in the same run) and trace replay. */
export * from "./tracker.js";
export * from "./data.js";
export * from "./sampler.js";
export * from "./engine.js";
export * from "./engine-llamacpp.js";
export * from "./engine-workload.js";
export * from "./bench-model.js";
export * from "./replay.js";
export { syntheticMementoStream, QWEN3_MEMENTO_IDS } from "./synthetic.js";
export * from "./soak.js";
