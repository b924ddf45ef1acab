/**
 * How errors leave the server: whatever a handler throws (and any unknown route) is answered with the one
 * OpenAI-shaped error object toApiError maps it to, counted in memento_request_errors_total; a 429 says
 * `Retry-After: 1`; unexpected 500s are logged.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError, isInternalError, toApiError } from "./errors.js";
import { endpointLabel, type ServerMetrics } from "./metrics.js";

export function sendApiError(req: FastifyRequest, reply: FastifyReply, e: ApiError, metrics: ServerMetrics) {
  metrics.error(endpointLabel(req.routeOptions.url), e.status);
  if (e.status === 429) void reply.header("retry-after", "1");
  return reply.code(e.status).send(e.toBody());
}

export function registerErrorReplies(app: FastifyInstance, metrics: ServerMetrics): void {
  app.setErrorHandler((err, req, reply) => {
    const answer = toApiError(err);
    if (isInternalError(err, answer)) req.log.error(err);
    return sendApiError(req, reply, answer, metrics);
  });
  app.setNotFoundHandler((req, reply) => {
    return sendApiError(req, reply, new ApiError(404, `no route ${req.method} ${req.url}`, "not_found"), metrics);
  });
}
