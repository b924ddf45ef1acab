/**
 * OpenAI-shaped errors: every non-2xx answer of the server carries
 * `{"error": {"message", "type", "param", "code"}}`, as the official clients expect.
 *
 * Whatever is thrown while a request is handled maps to exactly one ApiError (toApiError): our own ApiErrors
 * as they are, engine refusals by their code, UserErrors as 400, fastify's client errors by their code, and
 * anything else as a 500 `internal_error` (a bug: the caller logs it).
 */
import type { ZodError } from "zod";
import { isUserError } from "../errors.js";
import { EngineError, UnsupportedFeatureError } from "../engine/types.js";

export type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "rate_limit_error"
  | "server_error"
  | "service_unavailable";

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

/** The OpenAI error type of an HTTP status. */
export function errorTypeOf(status: number): ApiErrorType {
  if (status === 401) return "authentication_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503) return "service_unavailable";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly type: ApiErrorType = errorTypeOf(status),
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
    // "role must be ..." at messages[0].role reads "messages[0].role must be ..."; others get "param: " in front.
    const last = path.length > 0 ? String(path[path.length - 1]) : "";
    message = last && message.startsWith(`${last} `) ? `${param}${message.slice(last.length)}` : `${param}: ${message}`;
  }
  return new ApiError(400, message, "invalid_value", param);
}

/** What the request said, so an engine refusal can name the field at fault. */
export interface EngineErrorContext {
  /** The body field holding the prompt: "messages" (chat, the default) or "prompt". */
  promptParam?: string;
  /** The body field that carried the masking override: "block_masking" or "memento". */
  maskingField?: string;
  /** The backend name the server reports (ServerOptions.backendName); else the engine's backend name. */
  backendName?: string;
}

/**
 * Maps the engine's submit() refusals to HTTP: invalid 400, unsupported feature 400, too large 400, queue full
 * 429, closed 503.
 */
export function fromEngine(err: EngineError, context: EngineErrorContext = {}): ApiError {
  switch (err.code) {
    case "invalid_request":
      return new ApiError(400, err.message, "invalid_value");
    case "unsupported_feature":
      return fromUnsupportedFeature(err, context);
    case "prompt_too_large":
      return new ApiError(400, err.message, "context_length_exceeded", context.promptParam ?? "messages");
    case "queue_full":
      return new ApiError(429, `server overloaded: ${err.message}; retry later`, "queue_full");
    case "closed":
      return shuttingDown();
  }
}

/** The 503 of a request that arrives while the server (or its engine) is closing. */
export function shuttingDown(): ApiError {
  return new ApiError(503, "the server is shutting down", "shutting_down");
}

function fromUnsupportedFeature(err: EngineError, context: EngineErrorContext): ApiError {
  if (!(err instanceof UnsupportedFeatureError)) return new ApiError(400, err.message, "invalid_value");
  const backend = context.backendName ?? err.backend;
  const param = context.maskingField ? `${context.maskingField}.${err.feature}` : null;
  return new ApiError(
    400,
    `${err.feature} is not supported by this server's backend (${backend})`,
    "invalid_value",
    param,
  );
}

export function isEngineError(e: unknown): e is EngineError {
  return e instanceof EngineError;
}

/** fastify's error codes with an OpenAI-style code of their own. */
const FASTIFY_CODES = new Map([
  ["FST_ERR_CTP_BODY_TOO_LARGE", "request_too_large"],
  ["FST_ERR_CTP_INVALID_MEDIA_TYPE", "unsupported_media_type"],
]);

/** What a thrown client error (fastify's body parsing, content type, ...) carries. */
interface ClientErrorLike {
  statusCode?: number;
  code?: string;
  message?: string;
}

/** The code of a 4xx that fastify (or a JSON parse) raised. */
function clientErrorCode(e: ClientErrorLike, status: number, isSyntaxError: boolean): string {
  const known = e.code === undefined ? undefined : FASTIFY_CODES.get(e.code);
  if (known) return known;
  const mentionsJson = /json/i.test(`${e.code ?? ""} ${e.message ?? ""}`);
  if ((status === 400 && mentionsJson) || isSyntaxError) return "invalid_json";
  return "invalid_request";
}

/** A 4xx raised outside our handlers (body parsing, content type) as an OpenAI error. */
export function fromClientError(e: ClientErrorLike, status: number, isSyntaxError = false): ApiError {
  const code = clientErrorCode(e, status, isSyntaxError);
  const message =
    code === "invalid_json" ? `malformed JSON body: ${e.message ?? "parse error"}` : (e.message ?? "bad request");
  return new ApiError(status, message, code);
}

/** Anything thrown while handling a request, as the one ApiError answered for it. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (isEngineError(err)) return fromEngine(err);
  if (isUserError(err)) return new ApiError(400, err.message, "invalid_value");
  const e: ClientErrorLike = typeof err === "object" && err !== null ? err : {};
  const status = typeof e.statusCode === "number" ? e.statusCode : 500;
  if (status >= 400 && status < 500) return fromClientError(e, status, err instanceof SyntaxError);
  return new ApiError(500, `internal error: ${e.message ?? String(err)}`, "internal_error");
}

/** True when toApiError(err) is a 500 for something unexpected (a bug worth logging). */
export function isInternalError(err: unknown, answer: ApiError): boolean {
  return answer !== err && answer.code === "internal_error";
}
