/**
 * The optional API key: when the server has one, every /v1/* request must carry `Authorization: Bearer KEY`
 * (401 `invalid_api_key` otherwise). /health and /metrics stay open for probes and scrapers.
 */
import type { FastifyInstance } from "fastify";
import { ApiError } from "./errors.js";

/** The 401 for a request to `url` with this Authorization header, or undefined when it may pass. */
export function apiKeyRefusal(
  apiKey: string | undefined,
  url: string,
  authorization: string | undefined,
): ApiError | undefined {
  if (apiKey === undefined || !url.startsWith("/v1/")) return undefined;
  if (authorization === `Bearer ${apiKey}`) return undefined;
  return new ApiError(401, "invalid or missing API key (Authorization: Bearer KEY)", "invalid_api_key");
}

/** Checks the key before anything else runs (body parsing included); does nothing without a key. */
export function registerApiKey(app: FastifyInstance, apiKey: string | undefined): void {
  if (apiKey === undefined) return;
  app.addHook("onRequest", async (req) => {
    const refusal = apiKeyRefusal(apiKey, req.url, req.headers.authorization);
    if (refusal) throw refusal;
  });
}
