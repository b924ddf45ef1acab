/** src/server/auth.ts: the optional API key guards /v1/* only. */
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { apiKeyRefusal, registerApiKey } from "../src/server/auth.js";

describe("apiKeyRefusal", () => {
  it("lets everything through without a key", () => {
    expect(apiKeyRefusal(undefined, "/v1/models", undefined)).toBeUndefined();
  });

  it("asks /v1/* for the bearer token, leaves /health and /metrics open", () => {
    expect(apiKeyRefusal("k", "/v1/models", "Bearer k")).toBeUndefined();
    expect(apiKeyRefusal("k", "/health", undefined)).toBeUndefined();
    expect(apiKeyRefusal("k", "/metrics", "Bearer x")).toBeUndefined();
    for (const auth of [undefined, "", "Bearer x", "bearer k", "k"]) {
      expect(apiKeyRefusal("k", "/v1/chat/completions", auth)?.toBody().error).toEqual({
        message: "invalid or missing API key (Authorization: Bearer KEY)",
        type: "authentication_error",
        param: null,
        code: "invalid_api_key",
      });
    }
  });
});

describe("registerApiKey", () => {
  it("refuses before the route runs", async () => {
    const app = Fastify();
    let reached = 0;
    app.get("/v1/x", async () => ({ ok: ++reached }));
    registerApiKey(app, "k");
    expect((await app.inject({ url: "/v1/x" })).statusCode).toBe(401);
    expect(reached).toBe(0);
    expect((await app.inject({ url: "/v1/x", headers: { authorization: "Bearer k" } })).json()).toEqual({ ok: 1 });
    await app.close();
  });
});
