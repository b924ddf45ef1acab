/**
 * What `memento serve` promises about load and counting, over the bundled toy model:
 *  - a burst gets exactly max-running + max-waiting requests accepted, the rest 429 `queue_full`, whether the
 *    engine has stepped between the arrivals or not;
 *  - /metrics' memento_generation_tokens_total equals the sum of the answers' usage.completion_tokens (the last
 *    token of a request is never decoded, yet it is a completion token).
 */
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_MODEL_DIR, type EngineError, loadServingModel, type RequestHandle } from "../src/engine/index.js";
import { startServer, type StartedServer } from "../src/server/index.js";

const opened: StartedServer[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

async function toyServer(limits: { maxRunning: number; maxWaiting: number }) {
  const m = await loadServingModel({ modelDir: DEFAULT_MODEL_DIR, ...limits });
  const server = await startServer({
    engine: m.engine,
    tokenizer: m.tokenizer,
    modelName: "toy",
    maxModelLen: m.maxModelLen,
    port: 0,
    ownsEngine: true,
    defaultMetrics: false,
  });
  opened.push(server);
  return { server, engine: m.engine, tokenizer: m.tokenizer };
}

/** A toy problem of k rounds (about 75 tokens a round), as a chat request body. */
const problem = (k: number, extra: Record<string, unknown> = {}) => ({
  model: "toy",
  messages: [{ role: "user", content: `s=3714 k=${k}` }],
  temperature: 0,
  max_tokens: 4000,
  ...extra,
});

const postJson = (server: StartedServer, path: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${server.baseURL}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });

describe("queue limits", () => {
  it("a burst submitted before any engine step gets exactly maxRunning + maxWaiting accepted", async () => {
    for (const [maxRunning, maxWaiting] of [
      [1, 1],
      [2, 1],
      [1, 0],
    ]) {
      const { engine, tokenizer, server } = await toyServer({ maxRunning, maxWaiting });
      const accepted: RequestHandle[] = [];
      const refusals: string[] = [];
      const promptTokens = tokenizer.encode("s=3714 k=9");
      for (let i = 0; i < 6; i++) {
        try {
          accepted.push(
            engine.submit({ promptTokens, sampling: { temperature: 0, topP: 1, topK: -1, minP: 0, maxTokens: 50 } }),
          );
        } catch (e) {
          refusals.push((e as EngineError).code);
        }
      }
      expect([accepted.length, refusals]).toEqual([
        maxRunning + maxWaiting,
        Array(6 - maxRunning - maxWaiting).fill("queue_full"),
      ]);
      for (const h of accepted) h.cancel();
      await server.close();
    }
  });

  it("over HTTP, a burst of 6 at max running 1 + max waiting 1 gets two 200s and four 429 queue_full", async () => {
    const { server } = await toyServer({ maxRunning: 1, maxWaiting: 1 });
    const abort = new AbortController();
    const responses = await Promise.all(
      Array.from({ length: 6 }, () =>
        postJson(server, "/chat/completions", problem(9, { stream: true }), abort.signal),
      ),
    );
    const statuses = responses.map((r) => r.status).sort();
    const codes = await Promise.all(
      responses
        .filter((r) => r.status === 429)
        .map(async (r) => ((await r.json()) as { error: { code: string } }).error.code),
    );
    abort.abort();
    expect(statuses).toEqual([200, 200, 429, 429, 429, 429]);
    expect(codes).toEqual(Array(4).fill("queue_full"));
  });
});

describe("metrics", () => {
  it("memento_generation_tokens_total equals the sum of usage.completion_tokens", async () => {
    const { server } = await toyServer({ maxRunning: 4, maxWaiting: 4 });
    const usages: number[] = [];
    // Ends on <|im_end|> (stop), on max_tokens (length), and a stream ending on max_tokens.
    const stop = (await (await postJson(server, "/chat/completions", problem(1))).json()) as {
      choices: Array<{ finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    expect(stop.choices[0].finish_reason).toBe("stop");
    usages.push(stop.usage.completion_tokens);
    const length = (await (
      await postJson(server, "/completions", { model: "toy", prompt: "s=1234 k=2", max_tokens: 9, temperature: 0 })
    ).json()) as { choices: Array<{ finish_reason: string }>; usage: { completion_tokens: number } };
    expect(length.choices[0].finish_reason).toBe("length");
    usages.push(length.usage.completion_tokens);
    const streamed = await (
      await postJson(
        server,
        "/chat/completions",
        problem(2, { max_tokens: 20, stream: true, stream_options: { include_usage: true } }),
      )
    ).text();
    const usageChunk = streamed
      .split("\n\n")
      .map((e) => e.replace(/^data: /, ""))
      .filter((e) => e.startsWith("{") && e.includes('"usage"'))
      .map((e) => JSON.parse(e) as { usage: { completion_tokens: number } | null })
      .find((c) => c.usage !== null);
    usages.push(usageChunk?.usage?.completion_tokens ?? Number.NaN);
    expect(usages.slice(1)).toEqual([9, 20]);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const counter = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(metrics)?.[1]);
    const sum = usages.reduce((a, b) => a + b, 0);
    expect(counter("memento_generation_tokens_total")).toBe(sum);
    expect(counter("memento_completion_tokens_total")).toBe(sum);
  });
});
