/** The Memento inference engine: continuous batching with physical block eviction. */
export * from "./types.js";
export { MementoEngine, createEngine } from "./engine.js";
export { ReferenceBackend } from "./backends/reference.js";
export {
  LlamaPoolBackend,
  LLAMA_POOL_CAPABILITIES,
  defaultLlamaCppThreads,
  llamaPoolUnavailableReason,
  type LlamaPoolBackendOptions,
} from "./backends/llama-pool.js";
export {
  REFERENCE_CAPABILITIES,
  LLAMACPP_CAPABILITIES,
  capabilitiesOf,
  missingFeature,
} from "./backends/capabilities.js";
export { KvBudget } from "./kv-budget.js";
export { Scheduler, type Schedulable, type StepPlan } from "./scheduler.js";
export { Sampler, sampleToken, argmax, keptTokens, type KeptTokens } from "./sampling.js";
export { TextStream } from "./text.js";
export {
  loadServingModel,
  cachedGgufExport,
  lenientTokenizer,
  BACKENDS,
  BACKEND_CAPABILITIES,
  SHARED_POOL_MODES,
  chooseLlamaCppBackend,
  llamaCppCapabilities,
  DEFAULT_MODEL_DIR,
  bundledModelDir,
  resolveModelDir,
  DEFAULT_KV_BUDGET_TOKENS,
  DEFAULT_MAX_RUNNING,
  DEFAULT_MAX_WAITING,
  type ServingModel,
  type ServingModelOptions,
  type LlamaCppServingOptions,
  type LlamaCppChoice,
  type SharedPoolMode,
  type BackendName,
} from "./load.js";
