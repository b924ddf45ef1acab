/** KV-cache accounting: architectures, the resident-token ledger, simulation, trace statistics, charts. */
export * from "./architecture.js";
export * from "./ledger.js";
export * from "./simulate.js";
export * from "./resolve.js";
export * from "./trace-stats.js";
export * from "./chart.js";
