/** GET /metrics: the server's Prometheus registry in the text exposition format (see ../metrics.ts). */
import type { FastifyInstance } from "fastify";
import type { ServerMetrics } from "../metrics.js";

export function registerMetricsRoute(app: FastifyInstance, metrics: ServerMetrics): void {
  app.get("/metrics", async (_req, reply) => {
    const m = await metrics.render();
    return reply.header("content-type", m.contentType).send(m.body);
  });
}
