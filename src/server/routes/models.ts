/**
 * GET /v1/models (a list of the one served model) and GET /v1/models/:id (its card, under its id or an
 * alias; 404 `model_not_found` for any other name).
 */
import type { FastifyInstance } from "fastify";
import type { ModelCard, ServedModel } from "../served-model.js";

export interface ModelList {
  object: "list";
  data: ModelCard[];
}

export function registerModelRoutes(app: FastifyInstance, model: ServedModel): void {
  app.get("/v1/models", async (): Promise<ModelList> => ({ object: "list", data: [model.card()] }));
  app.get<{ Params: { id: string } }>("/v1/models/:id", async (req) => {
    model.require(req.params.id);
    return model.card();
  });
}
