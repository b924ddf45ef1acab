/**
 * Prometheus metrics of `memento serve` (prom-client, one registry per server so several servers can live in
 * one process). Engine gauges are read from `engine.stats()` at scrape time; the engine's cumulative
 * counters (evictions, preemptions, generated tokens) are mirrored into prom-client counters by their delta.
 *
 * Names: where vLLM exports a metric with the same meaning, ours is vLLM's name with the prefix `memento_` in
 * place of `vllm:` (so a vLLM dashboard carries over by renaming the prefix); the Memento-only ones follow.
 *   memento_num_requests_running, memento_num_requests_waiting   engine queue now
 *   memento_kv_cache_usage_perc                                  KV cells in use / budget (a fraction, as vLLM's)
 *   memento_num_preemptions_total                                requests preempted for lack of KV (recomputed)
 *   memento_prompt_tokens_total, memento_generation_tokens_total prompt tokens of finished requests; completion
 *                                                                tokens produced so far (all requests, running
 *                                                                too): once they finish, the sum of their
 *                                                                usage.completion_tokens
 *   memento_time_to_first_token_seconds                          histogram, submit to first token
 *   memento_inter_token_latency_seconds                          histogram, between consecutive output tokens
 *   memento_e2e_request_latency_seconds                          histogram, submit to end
 *   memento_request_queue_time_seconds                           histogram, submit to admission
 * Memento's own:
 *   memento_requests_total{endpoint, finish_reason}        requests that reached the engine, by how they ended
 *   memento_request_errors_total{endpoint, status}         requests answered with an error object (4xx/5xx)
 *   memento_completion_tokens_total                         completion tokens of finished requests
 *   memento_kv_used_tokens, memento_kv_total_tokens         KV cells (token slots) in use / budget
 *   memento_kv_peak_used_tokens                             most cells in use at once since start
 *   memento_evictions_total, memento_evicted_tokens_total   evicted blocks and the cells they freed
 *   memento_request_peak_kv_tokens                          histogram, per-request peak resident KV cells
 *   memento_request_blocks                                  histogram, blocks per request
 * plus prom-client's default process metrics (prefixed `memento_`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Engine, FinishReason, RequestStats } from "../engine/types.js";

export type Endpoint = "chat" | "completions";

/** The `endpoint` label of an error: the completion endpoints by name, other routes by pattern, else "none". */
export function endpointLabel(routeUrl: string | undefined): string {
  const url = routeUrl ?? "";
  if (url.endsWith("/chat/completions")) return "chat";
  if (url.endsWith("/completions")) return "completions";
  return url || "none";
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"endpoint" | "finish_reason">;
  private readonly errors: Counter<"endpoint" | "status">;
  private readonly promptTokens: Counter;
  private readonly completionTokens: Counter;
  private readonly ttft: Histogram;
  private readonly itl: Histogram;
  private readonly latency: Histogram;
  private readonly queue: Histogram;
  private readonly peakKv: Histogram;
  private readonly blocks: Histogram;

  constructor(engine: Engine, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const stats = () => engine.stats();
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    /** A counter that follows one of the engine's monotonic totals. */
    const mirror = (name: string, help: string, read: () => number) => {
      let seen = 0;
      return new Counter({
        name,
        help,
        registers,
        collect() {
          const now = read();
          if (now > seen) this.inc(now - seen);
          seen = Math.max(seen, now);
        },
      });
    };
    gauge("memento_num_requests_running", "Requests being decoded now.", () => stats().running);
    gauge("memento_num_requests_waiting", "Requests queued for admission (new or preempted).", () => stats().waiting);
    gauge("memento_kv_used_tokens", "KV cells (token slots) held by running requests.", () => stats().kvUsedTokens);
    gauge(
      "memento_kv_total_tokens",
      "KV budget in cells (token slots) shared by all requests.",
      () => stats().kvTotalTokens,
    );
    gauge("memento_kv_peak_used_tokens", "Most KV cells in use at once since start.", () => stats().peakKvUsedTokens);
    gauge("memento_kv_cache_usage_perc", "KV cells in use over the budget (1 = full).", () => {
      const s = stats();
      return s.kvTotalTokens > 0 ? s.kvUsedTokens / s.kvTotalTokens : 0;
    });
    mirror("memento_evictions_total", "Blocks evicted from the KV cache.", () => stats().evictions);
    mirror("memento_evicted_tokens_total", "KV cells freed by block evictions.", () => stats().evictedTokens);
    mirror(
      "memento_num_preemptions_total",
      "Requests preempted for lack of KV (their KV recomputed later).",
      () => stats().preemptions,
    );
    mirror(
      "memento_generation_tokens_total",
      "Completion tokens produced by the engine so far (all requests, finished or not).",
      () => stats().generatedTokens,
    );

    this.requests = new Counter({
      name: "memento_requests_total",
      help: "Requests that reached the engine, by endpoint and finish reason.",
      labelNames: ["endpoint", "finish_reason"],
      registers,
    });
    this.errors = new Counter({
      name: "memento_request_errors_total",
      help: "Requests answered with an error object.",
      labelNames: ["endpoint", "status"],
      registers,
    });
    this.promptTokens = new Counter({
      name: "memento_prompt_tokens_total",
      help: "Prompt tokens of finished requests.",
      registers,
    });
    this.completionTokens = new Counter({
      name: "memento_completion_tokens_total",
      help: "Completion tokens of finished requests.",
      registers,
    });
    const seconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    this.ttft = new Histogram({
      name: "memento_time_to_first_token_seconds",
      help: "Time from submission to the first completion token.",
      buckets: seconds,
      registers,
    });
    this.itl = new Histogram({
      name: "memento_inter_token_latency_seconds",
      help: "Time between consecutive completion tokens of a request.",
      buckets: [0.001, 0.0025, ...seconds],
      registers,
    });
    this.latency = new Histogram({
      name: "memento_e2e_request_latency_seconds",
      help: "Time from submission to the end of the request.",
      buckets: [...seconds, 120, 300, 600],
      registers,
    });
    this.queue = new Histogram({
      name: "memento_request_queue_time_seconds",
      help: "Time from submission to admission.",
      buckets: seconds,
      registers,
    });
    const tokens = [16, 64, 256, 1024, 4096, 16384, 65536];
    this.peakKv = new Histogram({
      name: "memento_request_peak_kv_tokens",
      help: "Peak KV cells held by one request.",
      buckets: tokens,
      registers,
    });
    this.blocks = new Histogram({
      name: "memento_request_blocks",
      help: "Memento blocks per request.",
      buckets: [0, 1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "memento_" });
  }

  finished(endpoint: Endpoint, reason: FinishReason, s: RequestStats): void {
    this.requests.inc({ endpoint, finish_reason: reason });
    this.promptTokens.inc(s.promptTokens);
    this.completionTokens.inc(s.completionTokens);
    if (s.completionTokens > 0) this.ttft.observe(s.firstTokenMs / 1000);
    for (const ms of s.interTokenMs) this.itl.observe(ms / 1000);
    this.latency.observe(s.totalMs / 1000);
    this.queue.observe(s.queueMs / 1000);
    this.peakKv.observe(s.peakKvTokens);
    this.blocks.observe(s.blocks);
  }

  error(endpoint: string, status: number): void {
    this.errors.inc({ endpoint, status: String(status) });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
