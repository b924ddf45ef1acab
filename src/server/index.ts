/** `memento serve`: the OpenAI-compatible HTTP server over the Memento engine. */
export { buildServer, startServer, mementoUsage, type ServerOptions, type StartedServer, type MementoUsage } from "./app.js";
export { ApiError, type ApiErrorBody } from "./errors.js";
export { ServerMetrics } from "./metrics.js";
export {
  loadServingModel,
  cachedGgufExport,
  lenientTokenizer,
  BACKENDS,
  DEFAULT_MODEL_DIR,
  bundledModelDir,
  resolveModelDir,
  DEFAULT_KV_BUDGET_TOKENS,
  DEFAULT_MAX_RUNNING,
  DEFAULT_MAX_WAITING,
  type ServingModel,
  type ServingModelOptions,
  type LlamaCppServingOptions,
  type BackendName,
} from "./load.js";
export { chatRequestSchema, completionRequestSchema, MAX_TOKENS_LIMIT } from "./schema.js";
