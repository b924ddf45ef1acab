/**
 * POST /v1/chat/completions (messages rendered with the model's chat template, Memento variant) and
 * POST /v1/completions (a raw prompt): body -> engine request (prepare.ts) -> engine -> one JSON completion,
 * or Server-Sent Events with `stream: true` (sse.ts).
 *
 * Checks run in a fixed order, each answering its own error: body shape (400), model (404), prompt (400),
 * server closing (503), context length (400), masking (400), then the engine's refusals (invalid 400,
 * unsupported feature 400, too large 400, queue full 429). Once accepted, a request always ends: a client that
 * disconnects cancels it (its KV is freed at once); a closing server lets it finish until its shutdown deadline,
 * then cancels it: a 503 error reply, or in a stream an error event and then [DONE] (lifecycle.ts, shutdown.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RequestHandle } from "../../engine/types.js";
import type { ServerContext } from "../context.js";
import { cancelOnDisconnect } from "../disconnect.js";
import { ApiError, fromEngine, isEngineError } from "../errors.js";
import { entriesOf, LogprobsFormatter } from "../logprobs.js";
import { completionResponse, type CompletionExtras, type ResponseHead } from "../openai-shapes.js";
import {
  chatPromptTokens,
  completionPromptTokens,
  prepareRequest,
  promptParam,
  type PreparedRequest,
} from "../prepare.js";
import { chatRequestSchema, completionRequestSchema, parseBody } from "../schema.js";
import { EventStream, pipeCompletion } from "../sse.js";

export function registerCompletionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/v1/chat/completions", (req, reply) => chatCompletions(ctx, req, reply));
  app.post("/v1/completions", (req, reply) => textCompletions(ctx, req, reply));
}

async function chatCompletions(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply) {
  const body = parseBody(chatRequestSchema, req.body);
  ctx.model.require(body.model);
  const promptTokens = chatPromptTokens(body, ctx.tokenizer);
  ctx.lifecycle.requireOpen();
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  const p = prepareRequest("chat", body, promptTokens, maxTokens, ctx.model.maxModelLen);
  return answer(ctx, req, reply, p, body.model);
}

async function textCompletions(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply) {
  const body = parseBody(completionRequestSchema, req.body);
  ctx.model.require(body.model);
  const promptTokens = completionPromptTokens(body, ctx.tokenizer);
  ctx.lifecycle.requireOpen();
  const p = prepareRequest("completions", body, promptTokens, body.max_tokens, ctx.model.maxModelLen);
  return answer(ctx, req, reply, p, body.model);
}

/**
 * Hands the request to the engine; its refusals become HTTP errors naming the field at fault. The exchange is
 * tracked until `response` has closed, so a shutdown waits for the answer itself, not only the engine.
 */
function submit(ctx: ServerContext, p: PreparedRequest, response: FastifyReply["raw"]): RequestHandle {
  let handle: RequestHandle;
  try {
    handle = ctx.engine.submit(p.request);
  } catch (e) {
    if (!isEngineError(e)) throw e;
    throw fromEngine(e, {
      promptParam: promptParam(p.endpoint),
      maskingField: p.maskingField,
      backendName: ctx.backendName,
    });
  }
  ctx.lifecycle.track(handle, { streaming: p.stream, response });
  return handle;
}

/** The error of a request cancelled before its end: by the server closing (503) or by its client (499). */
function cancelled(closing: boolean): ApiError {
  return closing
    ? new ApiError(503, "the server is shutting down; the request was cancelled before it finished", "cancelled")
    : new ApiError(499, "request cancelled", "cancelled");
}

async function answer(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply, p: PreparedRequest, model: string) {
  const handle = submit(ctx, p, reply.raw);
  const head: ResponseHead = { id: p.id, created: Math.floor(Date.now() / 1000), model };
  if (p.stream) return streamAnswer(ctx, req, reply, p, handle, head);
  const stopWatching = cancelOnDisconnect(req.raw, reply.raw, handle);
  const r = await handle.result();
  stopWatching();
  ctx.metrics.finished(p.endpoint, r.finishReason, r.stats);
  if (r.finishReason === "cancelled") throw cancelled(ctx.lifecycle.closing);
  if (r.finishReason === "error") throw new ApiError(500, r.message ?? "generation failed", "generation_error");
  const extras: CompletionExtras = {};
  if (p.logprobs) extras.logprobs = formatter(ctx, p)?.format(entriesOf(r));
  if (p.returnTokenIds) extras.tokenIds = { prompt: p.request.promptTokens, completion: r.tokens, forced: r.forced };
  return completionResponse(p.endpoint, head, r.text, r, extras);
}

/** The logprobs formatter of a request that asked for them: token strings from the served tokenizer. */
function formatter(ctx: ServerContext, p: PreparedRequest): LogprobsFormatter | undefined {
  if (!p.logprobs) return undefined;
  const tok = ctx.tokenizer;
  const decodeOne = (id: number) => (id < tok.vocabSize && tok.idToToken(id) !== undefined ? tok.decode([id]) : "");
  return new LogprobsFormatter(p.endpoint, p.logprobs, decodeOne);
}

/** Takes the response over from fastify and streams the request's events until it ends. */
async function streamAnswer(
  ctx: ServerContext,
  req: FastifyRequest,
  reply: FastifyReply,
  p: PreparedRequest,
  handle: RequestHandle,
  head: ResponseHead,
): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.on("error", () => handle.cancel());
  const stopWatching = cancelOnDisconnect(req.raw, res, handle);
  const stream = new EventStream(res);
  stream.open();
  try {
    await pipeCompletion(stream, handle, {
      endpoint: p.endpoint,
      head,
      includeUsage: p.includeUsage,
      onDone: (done) => ctx.metrics.finished(p.endpoint, done.finishReason, done.stats),
      // A client that went away reads nothing; a stream cut by the shutdown is told why.
      cancelledError: () => (ctx.lifecycle.closing ? cancelled(true) : undefined),
      logprobs: formatter(ctx, p),
    });
  } finally {
    stopWatching();
    stream.close();
  }
}
