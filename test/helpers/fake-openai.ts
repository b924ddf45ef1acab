/**
 * A fake OpenAI-compatible server for tests: a real HTTP server on 127.0.0.1 (random port) answering
 * POST /v1/chat/completions and GET /v1/models.
 *
 * It recognises the pipeline prompt it got (score / compress / judge / refine, by the system prompt), parses
 * the user message the way src/data/prompts.ts renders it, and answers deterministically with the offline
 * heuristics (so the answers have the right shape and count and can be compared with the offline provider).
 *
 * Faults are injected per request: `faults` is a queue consumed one per chat request (optionally only by
 * requests of one stage), `always` applies to every chat request, and `rejectResponseFormat` answers 400 to
 * any request that carries `response_format`. Every request is recorded, with the usage it was billed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterAll, beforeAll } from "vitest";
import { promptKindOf, type PromptKind } from "../../src/data/prompts.js";
import {
  extractiveMemento,
  judgeHeuristic,
  refineHeuristic,
  scoreBoundariesHeuristic,
} from "../../src/data/providers/offline.js";

export type FaultKind =
  | "429" // 429 with Retry-After (see retryAfter / retryAfterMs)
  | "500" // 500 with an error body
  | "503"
  | "hang" // never answer; the client must time out
  | "truncate" // 200 with a Content-Length larger than what is sent, then the socket is closed
  | "bad-json-body" // 200, Content-Type JSON, body cut in the middle of the JSON (framing intact)
  | "non-json" // 200, valid envelope, message content is prose, not JSON
  | "wrong-count" // 200, valid envelope, JSON answer with one item too few
  | "reset" // the socket is destroyed without any response
  | "401"; // not retryable

export interface Fault {
  kind: FaultKind;
  /** Only requests of this stage consume the fault (default: any chat request). */
  stage?: PromptKind;
  /** Value of the Retry-After header for "429" (default "0"). */
  retryAfter?: string;
  /** Value of a retry-after-ms header for "429" (default: none). */
  retryAfterMs?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  kind?: PromptKind;
  fault?: FaultKind | "reject-response-format";
  status: number;
  usage?: { prompt_tokens: number; completion_tokens: number };
}

export interface FakeOpenAI {
  /** Base URL for the client, with /v1. */
  baseURL: string;
  port: number;
  requests: RecordedRequest[];
  faults: Fault[];
  always?: Fault;
  rejectResponseFormat: boolean;
  /** Delay before answering each chat request, in ms (to keep a build in flight long enough to kill it). */
  delayMs: number;
  /** Chat requests per stage answered so far (any status). */
  count(kind?: PromptKind): number;
  close(): Promise<void>;
}

interface ChatBody {
  model?: string;
  messages?: { role: string; content: string }[];
  response_format?: unknown;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function sections(text: string, tag: string): string[] {
  const re = new RegExp(`<${tag} index="(\\d+)">\\n([\\s\\S]*?)\\n</${tag}>`, "g");
  return Array.from(text.matchAll(re), (m) => m[2]);
}

function parseScoreSentences(user: string): string[] {
  // Between the header paragraph and the closing "Reply with" paragraph.
  const start = user.indexOf("\n\n");
  const end = user.lastIndexOf("\n\nReply with");
  const body = user.slice(start + 2, end);
  return body
    .split(/^\[S\d+\] /m)
    .slice(1)
    .map((s) => s.replace(/\n$/, ""));
}

/** The answer a well-behaved model would give, as the message content. */
export function fakeAnswer(kind: PromptKind, user: string): { content: string; count: number } {
  switch (kind) {
    case "score": {
      const scores = scoreBoundariesHeuristic(parseScoreSentences(user));
      return { content: JSON.stringify({ scores }), count: scores.length };
    }
    case "compress": {
      const mementos = sections(user, "block").map((b) => extractiveMemento(b) || "(empty)");
      return { content: JSON.stringify({ mementos }), count: mementos.length };
    }
    case "judge": {
      const blocks = sections(user, "block");
      const mementos = sections(user, "memento");
      const judgments = blocks.map((b, i) => {
        const j = judgeHeuristic(b, mementos[i] ?? "");
        return { ...j.dimensions, feedback: j.feedback };
      });
      return { content: JSON.stringify({ judgments }), count: judgments.length };
    }
    case "refine": {
      const blocks = sections(user, "block");
      const mementos = sections(user, "memento");
      const feedback = sections(user, "feedback");
      const out = blocks.map((b, i) => refineHeuristic(b, mementos[i] ?? "", feedback[i] ?? "") || "(empty)");
      return { content: JSON.stringify({ mementos: out }), count: out.length };
    }
  }
}

/** The same answer with its list one item short. */
function shortAnswer(content: string): string {
  const obj = JSON.parse(content) as Record<string, unknown[]>;
  const key = Object.keys(obj)[0];
  return JSON.stringify({ [key]: obj[key].slice(0, Math.max(0, obj[key].length - 1)) });
}

export async function startFakeOpenAI(): Promise<FakeOpenAI> {
  const sockets = new Set<Socket>();
  let counter = 0;
  const state: FakeOpenAI = {
    baseURL: "",
    port: 0,
    requests: [],
    faults: [],
    always: undefined,
    rejectResponseFormat: false,
    delayMs: 0,
    count(kind?: PromptKind) {
      return state.requests.filter(
        (r) => r.path.endsWith("/chat/completions") && (kind === undefined || r.kind === kind),
      ).length;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const takeFault = (kind: PromptKind | undefined): Fault | undefined => {
    const i = state.faults.findIndex((f) => f.stage === undefined || f.stage === kind);
    if (i >= 0) return state.faults.splice(i, 1)[0];
    if (state.always && (state.always.stage === undefined || state.always.stage === kind)) return state.always;
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = await readBody(req);
    const path = (req.url ?? "").split("?")[0];
    const method = req.method ?? "GET";
    if (method === "GET" && path === "/v1/models") {
      state.requests.push({ method, path, body: null, status: 200 });
      sendJson(res, 200, {
        object: "list",
        data: [{ id: "fake-model", object: "model", created: 0, owned_by: "fake" }],
      });
      return;
    }
    if (method !== "POST" || path !== "/v1/chat/completions") {
      state.requests.push({ method, path, body: raw, status: 404 });
      sendJson(res, 404, { error: { message: `no route ${method} ${path}`, type: "invalid_request_error" } });
      return;
    }
    let body: ChatBody;
    try {
      body = JSON.parse(raw) as ChatBody;
    } catch {
      state.requests.push({ method, path, body: raw, status: 400 });
      sendJson(res, 400, { error: { message: "request body is not JSON", type: "invalid_request_error" } });
      return;
    }
    const messages = body.messages ?? [];
    const kind = promptKindOf(messages[0]?.content ?? "");
    const record: RecordedRequest = { method, path, body, kind, status: 0 };
    state.requests.push(record);
    if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));

    if (state.rejectResponseFormat && body.response_format !== undefined) {
      record.fault = "reject-response-format";
      record.status = 400;
      sendJson(res, 400, {
        error: {
          message: "Invalid parameter: 'response_format' of type 'json_object' is not supported with this model.",
          type: "invalid_request_error",
          param: "response_format",
          code: null,
        },
      });
      return;
    }
    const fault = takeFault(kind);
    record.fault = fault?.kind;
    switch (fault?.kind) {
      case "429": {
        record.status = 429;
        const headers: Record<string, string> = { "retry-after": fault.retryAfter ?? "0" };
        if (fault.retryAfterMs !== undefined) headers["retry-after-ms"] = fault.retryAfterMs;
        sendJson(res, 429, { error: { message: "Rate limit reached", type: "rate_limit_error" } }, headers);
        return;
      }
      case "500":
      case "503":
        record.status = Number(fault.kind);
        sendJson(res, record.status, { error: { message: "The server had an error", type: "server_error" } });
        return;
      case "401":
        record.status = 401;
        sendJson(res, 401, { error: { message: "Incorrect API key provided", type: "invalid_request_error" } });
        return;
      case "hang":
        record.status = -1;
        return; // never answer
      case "reset":
        record.status = -1;
        req.socket.destroy();
        return;
      default:
        break;
    }
    if (!kind) {
      record.status = 400;
      sendJson(res, 400, { error: { message: "fake server: unknown prompt", type: "invalid_request_error" } });
      return;
    }
    const user = messages[1]?.content ?? "";
    let { content } = fakeAnswer(kind, user);
    if (fault?.kind === "non-json") content = "Sure! Here is what I think about these sentences: they look fine.";
    if (fault?.kind === "wrong-count") content = shortAnswer(content);
    const promptChars = messages.reduce((a, m) => a + m.content.length, 0);
    const usage = {
      prompt_tokens: Math.ceil(promptChars / 4),
      completion_tokens: Math.ceil(content.length / 4),
      total_tokens: 0,
    };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const completion = {
      id: `chatcmpl-fake-${++counter}`,
      object: "chat.completion",
      created: 0,
      model: body.model ?? "fake-model",
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop", logprobs: null }],
      usage,
    };
    const text = JSON.stringify(completion);
    if (fault?.kind === "truncate") {
      record.status = 200;
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      setTimeout(() => req.socket.destroy(), 5);
      return;
    }
    if (fault?.kind === "bad-json-body") {
      record.status = 200;
      const cut = text.slice(0, Math.floor(text.length / 2));
      res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(cut)) });
      res.end(cut);
      return;
    }
    record.status = 200;
    record.usage = { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens };
    sendJson(res, 200, completion);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(e), type: "server_error" } });
      else res.destroy();
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  state.port = port;
  state.baseURL = `http://127.0.0.1:${port}/v1`;
  return state;
}

export async function stopFakeOpenAI(server: FakeOpenAI | undefined): Promise<void> {
  await server?.close();
}

/** Starts a fake server before the tests of the calling file (or suite) and stops it after them. */
export function useFakeOpenAI(): { fake: FakeOpenAI } {
  const holder = {} as { fake: FakeOpenAI };
  beforeAll(async () => {
    holder.fake = await startFakeOpenAI();
  });
  afterAll(() => stopFakeOpenAI(holder.fake));
  return holder;
}
