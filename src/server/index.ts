/** `memento serve`: the OpenAI-compatible HTTP server over the Memento engine. */
export { buildServer, startServer, mementoUsage, type ServerOptions, type StartedServer, type MementoUsage } from "./app.js";
export { ApiError, type ApiErrorBody } from "./errors.js";
export { ServerMetrics } from "./metrics.js";
export { chatRequestSchema, completionRequestSchema, MAX_TOKENS_LIMIT } from "./schema.js";
