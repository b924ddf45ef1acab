/** The Memento inference engine: continuous batching with physical block eviction. */
export * from "./types.js";
export { MementoEngine, createEngine } from "./engine.js";
export { ReferenceBackend } from "./backends/reference.js";
export { KvBudget } from "./kv-budget.js";
export { Scheduler, type Schedulable, type StepPlan } from "./scheduler.js";
export { Sampler, sampleToken, argmax } from "./sampling.js";
export { TextStream } from "./text.js";
