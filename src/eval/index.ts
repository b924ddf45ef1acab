/**
 * Evaluation: answer extraction, normalisation, symbolic equivalence, code execution, checking, metrics, the
 * runner and who owns masking (server-kind.ts), usage checks.
 */
export * from "./extract.js";
export * from "./normalize.js";
export * from "./equivalence.js";
export * from "./code-runner.js";
export * from "./check.js";
export * from "./metrics.js";
export * from "./types.js";
export * from "./benchmark.js";
export * from "./runner.js";
export * from "./summary.js";
export * from "./kv-units.js";
export * from "./server-kind.js";
export * from "./usage.js";
