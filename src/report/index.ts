/** Reports over evaluation runs and traces: the self-contained HTML report, its charts, and the trace viewer. */
export * from "./report.js";
export * from "./viewer.js";
export * from "../util/charts.js";
