/**
 * Backend capabilities end to end: the real engine over a backend that declares no restart mode refuses a
 * request asking for it, and the server answers that refusal with the 400 clients saw before capabilities
 * existed; the reference backend serves the same request. The loader refuses unservable defaults up front.
 */
import type { FastifyInstance } from "fastify";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LLAMACPP_CAPABILITIES } from "../src/engine/backends/capabilities.js";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import { createEngine } from "../src/engine/engine.js";
import { loadServingModel } from "../src/engine/load.js";
import type { Backend } from "../src/engine/types.js";
import { UserError } from "../src/errors.js";
import { buildServer } from "../src/server/app.js";
import { randomModel, toyMementoTokenizer, writeRandomModelDir } from "./helpers/random-model.js";

const tok = toyMementoTokenizer();
const model = randomModel({ seed: 2 });

/** The reference transformer, declaring llama.cpp's capabilities (and named "no-restart"). */
class NoRestartBackend extends ReferenceBackend {
  override readonly capabilities = LLAMACPP_CAPABILITIES;
  readonly shownName = "no-restart";
}

const noRestart = (): Backend => {
  const backend = new NoRestartBackend(model);
  return Object.assign(backend, { name: backend.shownName });
};

const apps: FastifyInstance[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
});

async function serve(backend: Backend, backendName?: string): Promise<FastifyInstance> {
  const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 4096 });
  const app = await buildServer({
    engine,
    tokenizer: tok,
    modelName: "toy",
    maxModelLen: 512,
    defaultMetrics: false,
    ownsEngine: true,
    ...(backendName ? { backendName } : {}),
  });
  apps.push(app);
  return app;
}

const restartChat = (field: "block_masking" | "memento", stream = false) => ({
  model: "toy",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 4,
  temperature: 0,
  stream,
  [field]: { restart_mode: true },
});

describe("restart mode on a backend without it", () => {
  it("is a 400 on the field the request used, naming the server's backend", async () => {
    const app = await serve(noRestart(), "llamacpp");
    for (const [field, stream] of [
      ["block_masking", false],
      ["memento", true],
    ] as const) {
      const r = await app.inject({ method: "POST", url: "/v1/chat/completions", payload: restartChat(field, stream) });
      expect(r.statusCode).toBe(400);
      expect(r.body).toBe(
        JSON.stringify({
          error: {
            message: "restartMode is not supported by this server's backend (llamacpp)",
            type: "invalid_request_error",
            param: `${field}.restartMode`,
            code: "invalid_value",
          },
        }),
      );
    }
    const ok = { ...restartChat("memento"), memento: { restart_mode: false } };
    expect((await app.inject({ method: "POST", url: "/v1/chat/completions", payload: ok })).statusCode).toBe(200);
  });

  it("names the engine's backend when the server was given no backend name", async () => {
    const app = await serve(noRestart());
    const r = await app.inject({
      method: "POST",
      url: "/v1/completions",
      payload: { ...restartChat("memento"), prompt: "a" },
    });
    expect(r.json().error.message).toBe("restartMode is not supported by this server's backend (no-restart)");
  });

  it("is served by the reference backend", async () => {
    const app = await serve(new ReferenceBackend(model));
    const r = await app.inject({ method: "POST", url: "/v1/chat/completions", payload: restartChat("block_masking") });
    expect(r.statusCode).toBe(200);
    expect(r.json().usage.completion_tokens).toBe(4);
  });
});

describe("loadServingModel", () => {
  const dir = mkdtempSync(join(tmpdir(), "memento-capabilities-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reports the backend's capabilities, and refuses defaults it cannot serve before loading anything", async () => {
    const modelDir = join(dir, "toy-random");
    writeRandomModelDir(modelDir, { seed: 2 });
    const m = await loadServingModel({ modelDir, masking: { restartMode: true } });
    expect(m.capabilities.restartMode).toBe(true);
    await m.engine.close();
    const missing = join(dir, "does-not-exist");
    const refusal = loadServingModel({ modelDir: missing, backend: "llamacpp", masking: { restartMode: true } });
    await expect(refusal).rejects.toThrow(UserError);
    const why = "llama.cpp cannot rewrite a memento after its evicted block";
    await expect(refusal).rejects.toThrow(`--restart-mode is not supported by the llamacpp backend (${why})`);
  });
});
