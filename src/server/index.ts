/** `memento serve`: the OpenAI-compatible HTTP server over the Memento engine, and the pieces it is built from. */
export { buildServer, startServer, type ServerOptions, type StartedServer } from "./app.js";
export {
  mementoUsage,
  completionUsage,
  completionResponse,
  roleChunk,
  textChunk,
  finalChunk,
  usageChunk,
  openAiFinishReason,
  type MementoUsage,
  type CompletionUsage,
  type ResponseHead,
  type Ending,
} from "./openai-shapes.js";
export {
  prepareRequest,
  chatMessages,
  chatPromptTokens,
  completionPromptTokens,
  completionTokenLimit,
  samplingParams,
  type PreparedRequest,
} from "./prepare.js";
export { EventStream, pipeCompletion, SSE_HEADERS, type SseTarget, type CompletionStreamOptions } from "./sse.js";
export { cancelOnDisconnect } from "./disconnect.js";
export { apiKeyRefusal } from "./auth.js";
export {
  ApiError,
  fromEngine,
  toApiError,
  type ApiErrorBody,
  type ApiErrorType,
  type EngineErrorContext,
} from "./errors.js";
export { ServerMetrics } from "./metrics.js";
export {
  shutdownServer,
  DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
  CUT_GRACE_MS,
  type ShutdownOptions,
  type ShutdownPhase,
  type DrainEnd,
} from "./shutdown.js";
export { ServerLifecycle, type InFlightCounts, type TrackOptions, type TrackedResponse } from "./lifecycle.js";
export { boundAddress, isLoopbackHost, exposedWithoutKey, clientHost, urlHost } from "./bind.js";
export { chatRequestSchema, completionRequestSchema, MAX_TOKENS_LIMIT } from "./schema.js";
