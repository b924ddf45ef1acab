/**
 * Which kind of server `eval run` talks to, and so who owns block masking and what each request carries. Owns the
 * request fields besides the prompt; never the transport (data/providers/openai.ts) nor the KV replay (kv.ts).
 *
 * Policy:
 * 1. `memento` (DEFAULT_SERVER_KIND): `memento serve` or any OpenAI-compatible endpoint. Masking, if the server
 *    takes it per request, travels in `--extra-body` (`block_masking: {...}`); the KV figures assume the default
 *    masking (keepLastNBlocks 0) as they always have.
 * 2. `vllm-memento`: vLLM with the reference Memento overlay, whose masking is fixed when the server is launched
 *    (`--block-masking-config`). A request carries no masking field of ours (an extra body naming one is refused:
 *    it would mean nothing there), and the KV figures replay the masking the server was launched with, as the
 *    masking flags describe it. The architecture must be named (`requireServedArchitecture`): a default would
 *    give the KV bytes of a model that is not the one served.
 * 3. Every request carries `skip_special_tokens: false`, after the extra body: without the markers in the text
 *    there are no blocks or mementos to measure, so an extra body asking otherwise is refused.
 * 4. Token counts come from the server's `usage`: with `vllm-memento` a completion without usage is a malformed
 *    answer, journalled as a failed generation (and retried by the next run), never scored.
 */
import { UserError } from "../errors.js";
import { MASKING_FIELD_NAMES, MASKING_FIELDS } from "../masking/config.js";
import type { RequestSampling } from "./types.js";

export const SERVER_KINDS = ["memento", "vllm-memento"] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];

/** The server kind when none is named: `memento serve` or any endpoint taking masking per request. */
export const DEFAULT_SERVER_KIND: ServerKind = "memento";

/** The architecture of the KV figures for a `memento` server when none is named (the paper's main model). */
export const DEFAULT_EVAL_ARCHITECTURE = "qwen3-8b";

/** What each kind means, for the CLI help. */
export const SERVER_KIND_HELP: Readonly<Record<ServerKind, string>> = Object.freeze({
  memento: "memento serve or any OpenAI-compatible endpoint; masking per request via --extra-body",
  "vllm-memento":
    "vLLM with the reference Memento overlay: masking fixed at launch, none sent; the masking flags describe it",
});

/** The body fields through which `memento serve` takes masking per request (src/server/schema.ts). */
const OUR_MASKING_OBJECTS = ["block_masking", "memento"] as const;

/** Our request-level masking field names in `body`, top level only (the objects and any setting's name). */
export function ourMaskingFields(body: Readonly<Record<string, unknown>>): string[] {
  const settings = MASKING_FIELD_NAMES.flatMap((k) => [k, MASKING_FIELDS[k].http]);
  return Object.keys(body).filter(
    (k) => (OUR_MASKING_OBJECTS as readonly string[]).includes(k) || settings.includes(k),
  );
}

/**
 * Refuses an extra body that breaks policy 2 or 3, in one line naming the field. Returns nothing: a body that
 * passes is sent as given.
 */
export function checkExtraBody(kind: ServerKind, body: Readonly<Record<string, unknown>> | undefined): void {
  if (!body) return;
  if ("skip_special_tokens" in body && body.skip_special_tokens !== false)
    throw new UserError(
      "--extra-body: skip_special_tokens must stay false (the Memento markers must come back in the text)",
    );
  if (kind !== "vllm-memento") return;
  const ours = ourMaskingFields(body);
  if (ours.length > 0)
    throw new UserError(
      `--extra-body: ${ours.map((k) => JSON.stringify(k)).join(", ")} is masking for memento serve; a vllm-memento ` +
        "server takes its masking at launch (--block-masking-config): describe it with the masking flags instead",
    );
}

/** Throws unless an architecture was named for a `vllm-memento` server (policy 2), listing what may be named. */
export function requireServedArchitecture(kind: ServerKind, given: string | undefined, presets: string[]): void {
  if (kind !== "vllm-memento" || given !== undefined) return;
  throw new UserError(
    `--server vllm-memento: give --architecture for the served model (presets: ${presets.join(", ")}, ` +
      "or its config.json)",
  );
}

/**
 * The fields of one request besides model and messages: the sampling (sample `sample` seeded `seed + sample`),
 * the extra body, then `skip_special_tokens: false` (policy 3).
 */
export function requestFields(
  sampling: RequestSampling,
  sample: number,
  extraBody: Readonly<Record<string, unknown>> | undefined,
): Record<string, unknown> {
  const { temperature, top_p, top_k, min_p, max_tokens, seed } = sampling;
  return {
    temperature,
    top_p,
    top_k,
    ...(min_p !== undefined ? { min_p } : {}),
    max_tokens,
    ...(seed !== undefined ? { seed: seed + sample } : {}),
    ...extraBody,
    // Keep the Memento markers in the text so blocks and mementos can be measured.
    skip_special_tokens: false,
  };
}

/** Throws (a failed generation, policy 4) when a `vllm-memento` server's answer carries no token counts. */
export function requireUsage(kind: ServerKind, usage: { prompt: number; completion: number }): void {
  if (kind !== "vllm-memento") return;
  if (usage.prompt > 0 && usage.completion > 0) return;
  throw new Error("the server's answer has no usage (prompt_tokens, completion_tokens); vllm-memento reports them");
}
