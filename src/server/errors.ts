/**
 * OpenAI-shaped errors: every non-2xx answer of the server carries
 * `{"error": {"message", "type", "param", "code"}}`, as the official clients expect.
 */
import type { ZodError } from "zod";
import { EngineError } from "../engine/types.js";

export type ApiErrorType = "invalid_request_error" | "authentication_error" | "rate_limit_error" | "server_error" | "service_unavailable";

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly type: ApiErrorType = status === 401
      ? "authentication_error"
      : status === 429
        ? "rate_limit_error"
        : status === 503
          ? "service_unavailable"
          : status >= 500
            ? "server_error"
            : "invalid_request_error",
  ) {
    super(message);
  }

  toBody(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** `messages[0].content` from a zod path. */
export function paramPath(path: readonly PropertyKey[]): string | null {
  if (path.length === 0) return null;
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out;
}

/** The first issue of a failed validation as a 400. */
export function fromZod(err: ZodError, prefix: readonly PropertyKey[] = []): ApiError {
  const issue = err.issues[0];
  const path = [...prefix, ...(issue?.path ?? [])];
  const param = paramPath(path);
  let message = issue?.message ?? err.message;
  if (param) {
    // "role must be ..." at messages[0].role reads "messages[0].role must be ..."; other messages get "param: " in front.
    const last = path.length > 0 ? String(path[path.length - 1]) : "";
    message = last && message.startsWith(`${last} `) ? `${param}${message.slice(last.length)}` : `${param}: ${message}`;
  }
  return new ApiError(400, message, "invalid_value", param);
}

/** Maps the engine's submit() refusals to HTTP: invalid 400, too large 400, queue full 429, closed 503. */
export function fromEngine(err: EngineError): ApiError {
  switch (err.code) {
    case "invalid_request":
      return new ApiError(400, err.message, "invalid_value");
    case "prompt_too_large":
      return new ApiError(400, err.message, "context_length_exceeded", "messages");
    case "queue_full":
      return new ApiError(429, `server overloaded: ${err.message}; retry later`, "queue_full");
    case "closed":
      return new ApiError(503, "the server is shutting down", "shutting_down");
  }
}

export function isEngineError(e: unknown): e is EngineError {
  return e instanceof EngineError;
}
