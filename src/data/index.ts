/** The OpenMementos data pipeline: seed, split, score, segment, mementos, run, shard and merge, write, stats. */
export * from "./types.js";
export * from "./readers.js";
export * from "./seed.js";
export * from "./split.js";
export * from "./segment.js";
export * from "./stages/score.js";
export * from "./stages/mementos.js";
export * from "./providers/index.js";
export * from "./pipeline.js";
export * from "./runner.js";
export * from "./shard.js";
export * from "./merge-check.js";
export * from "./merge.js";
export * from "./writers.js";
export * from "./stats.js";
