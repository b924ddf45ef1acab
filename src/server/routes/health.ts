/**
 * GET /health: 200 `{status: "ok", model, backend, running, waiting, kv_used_tokens, kv_total_tokens}` while
 * the server serves, 503 with status "shutting_down" once it is closing (load balancers stop sending).
 */
import type { FastifyInstance } from "fastify";
import type { EngineStats } from "../../engine/types.js";
import type { ServerContext } from "../context.js";

export interface HealthReport {
  status: "ok" | "shutting_down";
  model: string;
  backend: string;
  running: number;
  waiting: number;
  kv_used_tokens: number;
  kv_total_tokens: number;
}

export function healthReport(s: EngineStats, closing: boolean, model: string, backend: string): HealthReport {
  return {
    status: closing ? "shutting_down" : "ok",
    model,
    backend,
    running: s.running,
    waiting: s.waiting,
    kv_used_tokens: s.kvUsedTokens,
    kv_total_tokens: s.kvTotalTokens,
  };
}

export function registerHealthRoute(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/health", async (_req, reply) => {
    const closing = ctx.lifecycle.closing;
    const report = healthReport(ctx.engine.stats(), closing, ctx.model.id, ctx.backendName ?? "reference");
    return reply.code(closing ? 503 : 200).send(report);
  });
}
