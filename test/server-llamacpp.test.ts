/**
 * `memento serve --backend llamacpp`: the tiny random model directory served through llama.cpp (its GGUF
 * exported on the fly into os.tmpdir()), queried with the official `openai` client, and compared with the
 * reference backend on the same prompt. F32 KV cache, flash attention off and one thread: the configuration
 * test/llamacpp.test.ts found exact, so greedy decoding must give the same text.
 * Skipped (with the reason printed) when node-llama-cpp's native binary cannot load on this machine.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { runServe } from "../src/cli/serve.js";
import { llamaCppUnavailableReason } from "../src/engine/backends/llamacpp.js";
import { cachedGgufExport, loadServingModel } from "../src/engine/index.js";
import { startServer, type StartedServer } from "../src/server/index.js";
import { writeRandomModelDir } from "./helpers/random-model.js";
import { runInProcess } from "./helpers/cli.js";

const unavailable = await llamaCppUnavailableReason();
if (unavailable) console.warn(`skipping the llama.cpp server tests: ${unavailable}`);

const dir = mkdtempSync(join(tmpdir(), "memento-serve-llamacpp-"));
const modelDir = join(dir, "toy-random");
writeRandomModelDir(modelDir, { seed: 7 });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const messages = [{ role: "user" as const, content: "Add 12 and 30." }];
const memOf = (u: OpenAI.CompletionUsage | undefined) => (u as unknown as { memento?: Record<string, number> }).memento;

async function serve(backend: "reference" | "llamacpp"): Promise<StartedServer> {
  const m = await loadServingModel({
    modelDir,
    backend,
    kvBudgetTokens: 20_000,
    llamacpp: { sequences: 2, cellsPerSequence: 256, threads: 1, kvCacheType: "F32", flashAttention: false },
  });
  expect(m.capabilities.restartMode).toBe(backend === "reference");
  return startServer({
    engine: m.engine,
    tokenizer: m.tokenizer,
    modelName: m.name,
    maxModelLen: m.maxModelLen,
    backendName: backend,
    port: 0,
    ownsEngine: true,
    defaultMetrics: false,
  });
}

describe("memento serve --backend llamacpp: refusals", () => {
  it("refuses --restart-mode with one UserError before loading anything", async () => {
    const r = await runInProcess([
      "serve",
      "--model",
      modelDir,
      "--port",
      "0",
      "--backend",
      "llamacpp",
      "--restart-mode",
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      "memento: --restart-mode is not supported by the llamacpp backend (llama.cpp cannot rewrite a memento after its evicted block)\n",
    );
    await expect(
      runServe({ model: modelDir, host: "127.0.0.1", port: "0", backend: "llamacpp", restartMode: true }),
    ).rejects.toThrow(/--restart-mode is not supported by the llamacpp backend/);
    await expect(
      runServe({ model: modelDir, host: "127.0.0.1", port: "0", backend: "reference", sequences: "2" }),
    ).rejects.toThrow(/--sequences: only with --backend llamacpp/);
  });
});

describe.skipIf(!!unavailable)("memento serve --backend llamacpp", () => {
  let server: StartedServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await serve("llamacpp");
    client = new OpenAI({ baseURL: server.baseURL, apiKey: "none", maxRetries: 0 });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    rmSync(cachedGgufExport(modelDir), { force: true }); // the export this test made (reused, not rewritten)
  });

  it("answers a greedy chat completion identical to the reference backend's, with usage.memento", async () => {
    const req = { model: "toy-random", messages, temperature: 0, max_tokens: 24 };
    const r = await client.chat.completions.create(req);
    const text = r.choices[0].message.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    expect(r.usage?.completion_tokens).toBe(24);
    expect(memOf(r.usage)).toMatchObject({ peak_kv_tokens: expect.any(Number), evictions: expect.any(Number) });
    expect(memOf(r.usage)!.peak_kv_tokens).toBeGreaterThan(0);

    const ref = await serve("reference");
    try {
      const refClient = new OpenAI({ baseURL: ref.baseURL, apiKey: "none", maxRetries: 0 });
      const r2 = await refClient.chat.completions.create(req);
      expect(text).toBe(r2.choices[0].message.content);
      expect(r.usage?.prompt_tokens).toBe(r2.usage?.prompt_tokens);
    } finally {
      await ref.close();
    }
  }, 60_000);

  it("streams through the official client the same text as the non-streaming answer", async () => {
    const req = { model: "toy-random", messages, temperature: 0, max_tokens: 24 };
    const whole = (await client.chat.completions.create(req)).choices[0].message.content ?? "";
    const stream = await client.chat.completions.create({
      ...req,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(whole);
    expect(finish).toBe("length");
    expect(usage?.completion_tokens).toBe(24);
  }, 60_000);

  it("answers 400 to a request asking for restart mode", async () => {
    const r = await fetch(server.url + "/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "toy-random", messages, max_tokens: 4, block_masking: { restart_mode: true } }),
    });
    expect(r.status).toBe(400);
    const body = (await r.json()) as { error: { message: string; param: string } };
    expect(body.error.message).toMatch(/restartMode is not supported/);
    expect(body.error.param).toBe("block_masking.restartMode");
  });
});
