/**
 * Backend capabilities in one place: what each built-in backend declares (its class exposes the same object
 * as `capabilities`), and the one check of a masking configuration against them. The engine runs the check
 * on its defaults and on every request; the model loader runs it before loading anything, so a flag the
 * backend cannot serve fails fast. Nothing else decides what a backend supports.
 */
import type { MaskingConfig } from "../../masking/config.js";
import { DEFAULT_BACKEND_CAPABILITIES, type Backend, type BackendCapabilities, type BackendFeature } from "../types.js";

export const REFERENCE_CAPABILITIES: BackendCapabilities = Object.freeze({ restartMode: true, unifiedKvPool: true });

/**
 * node-llama-cpp 3.22.1: positions written after a gap are refused (no restart mode), and kv_unified is
 * hard-coded false, so each sequence owns n_ctx / n_seq cells.
 */
export const LLAMACPP_CAPABILITIES: BackendCapabilities = Object.freeze({
  restartMode: false,
  unifiedKvPool: false,
  limitations: Object.freeze({ restartMode: "llama.cpp cannot rewrite a memento after its evicted block" }),
});

/** A backend's declared capabilities, or the defaults of the Backend contract when it declares none. */
export function capabilitiesOf(backend: Pick<Backend, "capabilities">): BackendCapabilities {
  return backend.capabilities ?? DEFAULT_BACKEND_CAPABILITIES;
}

/** The first feature `masking` switches on that `capabilities` lack, or undefined when all are served. */
export function missingFeature(
  capabilities: BackendCapabilities,
  masking: Partial<MaskingConfig> | undefined,
): BackendFeature | undefined {
  if (masking?.restartMode === true && !capabilities.restartMode) return "restartMode";
  return undefined;
}
