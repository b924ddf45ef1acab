/** Block masking: the per-request tracker, its configuration, and training attention patterns. */
export * from "./config.js";
export * from "./tracker.js";
export * from "./masks.js";
