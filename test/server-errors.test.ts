/**
 * src/server/errors.ts called directly: everything a handler can throw maps to one OpenAI-shaped error, engine
 * refusals by their code (naming the request's field when the route says which), fastify's client errors by
 * theirs, anything else a logged 500.
 */
import { describe, expect, it } from "vitest";
import { EngineError, UnsupportedFeatureError } from "../src/engine/types.js";
import { UserError } from "../src/errors.js";
import {
  ApiError,
  errorTypeOf,
  fromClientError,
  fromEngine,
  isInternalError,
  toApiError,
} from "../src/server/errors.js";
import { endpointLabel } from "../src/server/metrics.js";

const bodyOf = (e: ApiError) => ({ status: e.status, ...e.toBody().error });

describe("error types", () => {
  it("follow the status", () => {
    expect([401, 429, 503, 500, 502, 400, 404, 499].map(errorTypeOf)).toEqual([
      "authentication_error",
      "rate_limit_error",
      "service_unavailable",
      "server_error",
      "server_error",
      "invalid_request_error",
      "invalid_request_error",
      "invalid_request_error",
    ]);
  });
});

describe("fromEngine", () => {
  it("maps each refusal code", () => {
    expect(bodyOf(fromEngine(new EngineError("invalid_request", "bad ids")))).toEqual({
      status: 400,
      message: "bad ids",
      type: "invalid_request_error",
      param: null,
      code: "invalid_value",
    });
    expect(bodyOf(fromEngine(new EngineError("queue_full", "3 requests are already waiting")))).toMatchObject({
      status: 429,
      message: "server overloaded: 3 requests are already waiting; retry later",
      code: "queue_full",
    });
    expect(bodyOf(fromEngine(new EngineError("closed", "the engine is closed")))).toMatchObject({
      status: 503,
      message: "the server is shutting down",
      type: "service_unavailable",
      code: "shutting_down",
    });
  });

  it("names the endpoint's prompt field for a prompt larger than the KV budget", () => {
    const e = new EngineError("prompt_too_large", "prompt of 9 tokens does not fit");
    expect(fromEngine(e).param).toBe("messages");
    expect(bodyOf(fromEngine(e, { promptParam: "prompt" }))).toMatchObject({
      status: 400,
      param: "prompt",
      code: "context_length_exceeded",
    });
  });

  it("an unsupported feature is a 400 on the masking field the request used, quoting the server's backend name", () => {
    const e = new UnsupportedFeatureError("restartMode", "llama.cpp", "llama.cpp cannot rewrite a memento");
    expect(e.code).toBe("unsupported_feature");
    expect(e.message).toBe(
      "restartMode is not supported by the llama.cpp backend (llama.cpp cannot rewrite a memento)",
    );
    expect(bodyOf(fromEngine(e, { maskingField: "block_masking", backendName: "llamacpp" }))).toEqual({
      status: 400,
      message: "restartMode is not supported by this server's backend (llamacpp)",
      type: "invalid_request_error",
      param: "block_masking.restartMode",
      code: "invalid_value",
    });
    expect(bodyOf(fromEngine(e))).toMatchObject({
      message: "restartMode is not supported by this server's backend (llama.cpp)",
      param: null,
    });
    expect(bodyOf(fromEngine(new EngineError("unsupported_feature", "no")))).toMatchObject({
      status: 400,
      message: "no",
    });
  });
});

describe("toApiError", () => {
  it("keeps ApiErrors, maps engine and user errors", () => {
    const api = new ApiError(404, "nope", "not_found");
    expect(toApiError(api)).toBe(api);
    expect(toApiError(new EngineError("queue_full", "x")).status).toBe(429);
    expect(bodyOf(toApiError(new UserError("bad value")))).toMatchObject({ status: 400, code: "invalid_value" });
  });

  it("maps fastify's client errors by code, JSON parse failures to invalid_json", () => {
    const tooLarge = { statusCode: 413, code: "FST_ERR_CTP_BODY_TOO_LARGE", message: "Request body is too large" };
    expect(bodyOf(toApiError(tooLarge))).toMatchObject({
      status: 413,
      code: "request_too_large",
      message: tooLarge.message,
    });
    const media = { statusCode: 415, code: "FST_ERR_CTP_INVALID_MEDIA_TYPE", message: "Unsupported Media Type" };
    expect(toApiError(media).code).toBe("unsupported_media_type");
    const json = { statusCode: 400, code: "FST_ERR_CTP_EMPTY_JSON_BODY", message: "Body cannot be empty" };
    expect(bodyOf(toApiError(json))).toMatchObject({
      code: "invalid_json",
      message: "malformed JSON body: Body cannot be empty",
    });
    const syntax = Object.assign(new SyntaxError("Unexpected token"), { statusCode: 422 });
    expect(bodyOf(toApiError(syntax))).toMatchObject({ status: 422, code: "invalid_json" });
    expect(bodyOf(toApiError({ statusCode: 405, message: "no" }))).toMatchObject({
      status: 405,
      code: "invalid_request",
    });
    expect(fromClientError({}, 400).message).toBe("bad request");
  });

  it("anything else is a 500 internal_error, flagged for the log", () => {
    const err = new Error("boom");
    const e = toApiError(err);
    expect(bodyOf(e)).toEqual({
      status: 500,
      message: "internal error: boom",
      type: "server_error",
      param: null,
      code: "internal_error",
    });
    expect(isInternalError(err, e)).toBe(true);
    expect(toApiError("str").message).toBe("internal error: str");
    expect(toApiError({ statusCode: 502, message: "upstream" }).code).toBe("internal_error");
    const own = new ApiError(500, "internal error: x", "internal_error");
    expect(isInternalError(own, toApiError(own))).toBe(false);
    expect(isInternalError(new EngineError("closed", "c"), toApiError(new EngineError("closed", "c")))).toBe(false);
  });
});

describe("endpointLabel", () => {
  it("names the completion endpoints, other routes by pattern, unknown routes none", () => {
    expect(["/v1/chat/completions", "/v1/completions", "/v1/models/:id", "", undefined].map(endpointLabel)).toEqual([
      "chat",
      "completions",
      "/v1/models/:id",
      "none",
      "none",
    ]);
  });
});
