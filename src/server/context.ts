/**
 * What the routes of one server share: the engine and tokenizer it serves, the model it answers as, its
 * metrics and its lifecycle. Built once by buildServer; routes read it, only the lifecycle changes.
 */
import type { Engine } from "../engine/types.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import type { ServerLifecycle } from "./lifecycle.js";
import type { ServerMetrics } from "./metrics.js";
import type { ServedModel } from "./served-model.js";

export interface ServerContext {
  engine: Engine;
  tokenizer: MementoTokenizer;
  model: ServedModel;
  metrics: ServerMetrics;
  lifecycle: ServerLifecycle;
  /** The backend name given in the server's options (reported by /health, quoted in refusals). */
  backendName?: string;
}
