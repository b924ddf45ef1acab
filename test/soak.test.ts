/**
 * `memento bench soak` (src/bench/soak.ts, src/cli/bench-soak.ts): a --quick soak of the bundled toy model
 * leaks nothing and every request that must be refused gets a 4xx with an OpenAI-shaped error; against a fake
 * server that leaks KV and accepts anything, the same soak fails; and the verdict helpers keep their rules.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  isOpenAiError,
  parseMetrics,
  percentile,
  requireLoopback,
  rssVerdict,
  runSoak,
  type Sample,
  type SoakReport,
} from "../src/bench/soak.js";
import { runCliAsync, runInProcess as run } from "./helpers/cli.js";

describe("a quick soak of the toy model (in-process server)", () => {
  let report: SoakReport;
  let code: number;
  let err: string;

  beforeAll(async () => {
    const r = await run(["bench", "soak", "--quick", "--server", "in-process", "--json"]);
    code = r.code;
    err = r.err;
    report = JSON.parse(r.out) as SoakReport;
  }, 60_000);

  it("passes: exit 0, no crash, nothing unexpected", () => {
    expect(report.unexpectedExamples, err).toEqual([]);
    expect(report.failures).toEqual([]);
    expect(report.pass).toBe(true);
    expect(code).toBe(0);
  });

  it("leaves zero KV cells in use and no request running or waiting after the last request (policy 4)", () => {
    expect(report.kv).toMatchObject({ finalUsedTokens: 0, finalRunning: 0, finalWaiting: 0 });
    expect(report.kv.peakUsedTokens).toBeGreaterThan(0); // the load did hold KV
  });

  it("answers every request that must be refused with a 4xx carrying an OpenAI-shaped error (policy 3)", () => {
    expect(report.mustRefuse.sent).toBeGreaterThan(0);
    // An oversized body may instead be cut off by the server's early 413 (closed-early, policy 3).
    const { sent, refusedWithShape, closedEarly } = report.mustRefuse;
    expect(refusedWithShape + closedEarly).toBe(sent);
    expect(closedEarly).toBe(report.byKind["oversized-body"]?.["closed-early"] ?? 0); // only bodies cut off
    for (const kind of ["malformed-json", "bad-params"])
      expect(report.byKind[kind]).toEqual({ refused: expect.any(Number) });
  });

  it("serves good requests and sees client aborts", () => {
    expect(report.served).toBeGreaterThan(0);
    expect(report.errors.aborted ?? 0).toBeGreaterThan(0);
    expect(report.latency.served.p99Ms).toBeGreaterThanOrEqual(report.latency.served.p50Ms);
  });

  it("does not judge RSS on a load shorter than a minute (policy 5)", () => {
    expect(report.rss.verdict).toBe("not-judged");
    expect(report.rss.samples).toBeGreaterThan(3);
  });
});

describe("the default soak server is a child `memento serve` (built CLI, as `npm test` builds it)", () => {
  it("starts it, soaks it and stops it: exit 0, no KV held after the load", async () => {
    const r = await runCliAsync(["bench", "soak", "--quick", "--max-requests", "24", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as SoakReport & { server: string };
    expect(report).toMatchObject({ server: "child", pass: true, unexpected: 0 });
    expect(report.requests).toBeGreaterThan(0);
    expect(report.requests).toBeLessThanOrEqual(24); // --max-requests bounds the count
    expect(report.kv.finalUsedTokens).toBe(0);
    expect(report.rss.samples).toBeGreaterThan(0); // the child's own RSS, from its /metrics
  }, 60_000);

  it("a server that cannot start is the user's mistake it names (exit 2, one line)", async () => {
    const r = await run(["bench", "soak", "--quick", "--model", "/no/such/model-dir"]);
    expect(r.err).toMatch(/^memento: [^\n]*no\/such\/model-dir[^\n]*\n$/);
    expect(r.code).toBe(2);
  }, 60_000);
});

describe("a soak fails against a server that leaks KV and accepts anything", () => {
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (req.url === "/metrics")
          return res.end("memento_kv_used_tokens 3\nmemento_process_resident_memory_bytes 1e8\n");
        res.setHeader("content-type", "application/json");
        if (req.url === "/health") return res.end(JSON.stringify({ running: 0, waiting: 0, kv_used_tokens: 3 }));
        if (req.url?.startsWith("/v1/models/")) return res.end(JSON.stringify({ max_model_len: 64 }));
        res.end(JSON.stringify({ choices: [{ message: { content: "ok" }, text: "ok" }] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("reports the leaked cells, the accepted bad requests and the broken streams, and does not pass", async () => {
    const r = await runSoak({ url, model: "fake" }, { durationS: 1, concurrency: 2, sampleMs: 100, drainMs: 300 });
    expect(r.pass).toBe(false);
    expect(r.kv.finalUsedTokens).toBe(3);
    expect(r.failures.join("\n")).toMatch(/3 KV cells still in use/);
    expect(r.errors["accepted-bad-request"]).toBeGreaterThan(0);
    expect(r.errors["broken-response"]).toBeGreaterThan(0); // JSON where SSE was asked for
  });

  it("stops at maxRequests well before the duration (policy 2)", async () => {
    const r = await runSoak({ url, model: "fake" }, { durationS: 60, maxRequests: 10, concurrency: 3, drainMs: 0 });
    expect(r.requests).toBe(10);
    expect(r.loadS).toBeLessThan(30);
  });

  it("reports a crash when the server is gone", async () => {
    const r = await runSoak(
      { url, model: "fake", exitReason: () => "the server process exited (SIGKILL)" },
      { durationS: 1, concurrency: 1, sampleMs: 100 },
    );
    expect(r.crash).toMatch(/SIGKILL/);
    expect(r.pass).toBe(false);
  });
});

describe("verdict rules", () => {
  const samples = (mbAt: (tS: number) => number, seconds: number): Sample[] =>
    Array.from({ length: seconds + 1 }, (_, t) => ({
      tMs: t * 1000,
      kvUsedTokens: 0,
      rssBytes: mbAt(t) * 2 ** 20,
      evictions: 0,
      preemptions: 0,
    }));

  const rule = { limitMbPerMin: 2, warmupS: 60, minJudgedS: 60 };

  it("RSS that rises 5 MB/min is growing against a 2 MB/min limit; a GC sawtooth around a level is flat", () => {
    const growing = rssVerdict(
      samples((t) => 100 + (5 * t) / 60, 300),
      300,
      rule,
    );
    expect(growing.verdict).toBe("growing");
    expect(growing.slopeMbPerMin).toBeCloseTo(5, 1);
    const sawtooth = rssVerdict(
      samples((t) => 100 + ((t * 7) % 30), 300),
      300,
      rule,
    );
    expect(sawtooth.verdict).toBe("flat");
  });

  it("RSS climbing during the warm-up and level after it is flat; judged from the first sample it would grow", () => {
    const warmingUp = samples((t) => (t < 60 ? 100 + t / 2 : 130), 300); // +30 MB in the first minute, as measured
    expect(rssVerdict(warmingUp, 300, rule).verdict).toBe("flat");
    expect(rssVerdict(warmingUp, 300, { ...rule, warmupS: 0 }).verdict).toBe("growing");
  });

  it("RSS is not judged with less than the minimum of load after the warm-up, however it moves", () => {
    expect(
      rssVerdict(
        samples((t) => 100 + 50 * t, 100),
        100,
        rule,
      ).verdict,
    ).toBe("not-judged"); // 40 s judged
  });

  it("an error body is OpenAI-shaped only with message, type, param and code", () => {
    expect(isOpenAiError({ error: { message: "m", type: "invalid_request_error", param: null, code: "x" } })).toBe(
      true,
    );
    expect(isOpenAiError({ error: { message: "m", type: "t" } })).toBe(false);
    expect(isOpenAiError({ error: "m" })).toBe(false);
    expect(isOpenAiError({ message: "m" })).toBe(false);
  });

  it("only loopback targets are soaked (policy 1)", () => {
    expect(() => requireLoopback("http://10.0.0.1:8080")).toThrow(/not on loopback/);
    expect(() => requireLoopback("http://example.com")).toThrow(/not on loopback/);
    for (const ok of ["http://127.0.0.1:1", "http://localhost:2", "http://[::1]:3"]) requireLoopback(ok);
  });

  it("metrics are read by name, labelled series summed; percentiles are nearest-rank", () => {
    const m = parseMetrics('# HELP x\na 1\nb{l="1"} 2\nb{l="2"} 3\nc NaN\n');
    expect([m.get("a"), m.get("b"), m.has("c")]).toEqual([1, 5, false]);
    expect(percentile([5, 1, 3, 2, 4], 50)).toBe(3);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        99,
      ),
    ).toBe(99);
  });

  it("--quick and --duration exclude each other (a user error, exit 2)", async () => {
    const r = await run(["bench", "soak", "--quick", "--duration", "3", "--server", "in-process"]);
    expect(r.err).toMatch(/^memento: --quick and --duration exclude each other\n$/);
    expect(r.code).toBe(2);
  });
});
