import { describe, expect, it } from "vitest";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { createEngine, type MementoEngine } from "../src/engine/engine.js";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import { KvBudget } from "../src/engine/kv-budget.js";
import { Scheduler, type Schedulable } from "../src/engine/scheduler.js";
import { sampleToken, Sampler } from "../src/engine/sampling.js";
import {
  EngineError,
  type Backend,
  type DecodeInput,
  type EngineConfig,
  type EngineRequest,
  type SamplingParams,
  type SeqId,
} from "../src/engine/types.js";
import type { MaskingConfig } from "../src/masking/config.js";
import { LLAMACPP_CAPABILITIES, REFERENCE_CAPABILITIES } from "../src/engine/backends/capabilities.js";
import { DEFAULT_BACKEND_CAPABILITIES, UnsupportedFeatureError } from "../src/engine/types.js";
import { BACKEND_CAPABILITIES, llamaCppCapabilities } from "../src/engine/load.js";
import { randomModel } from "./helpers/random-model.js";

const tok = toyTokenizer();
const st = tok.specialTokens;
const model = randomModel({ seed: 5, config: { vocab_size: tok.vocabSize } });
const MARKERS: number[] = [
  st.blockStart,
  st.blockEnd,
  st.summaryStart,
  st.summaryEnd,
  st.thinkStart,
  st.thinkEnd,
  st.imStart as number,
  st.imEnd as number,
  0,
  9,
];

type Op = {
  op: "prefill" | "decode" | "evict" | "recompute" | "free" | "allocate";
  seq: number;
  positions?: number[];
  start?: number;
  end?: number;
  token?: number;
};

/**
 * The reference backend with a position-driven script on top of the model's logits: at scripted positions the
 * scripted token wins; elsewhere the markers (and eos) are masked, so the model's own greedy choice, which
 * depends on everything resident in its KV, decides. Logs every call.
 */
class ScriptedBackend implements Backend {
  readonly name = "scripted";
  readonly vocabSize: number;
  readonly maxSequences = Infinity;
  readonly ops: Op[] = [];
  constructor(
    readonly inner: ReferenceBackend,
    private readonly script: (position: number) => number | undefined,
  ) {
    this.vocabSize = inner.vocabSize;
  }
  private shape(logits: Float32Array, nextPosition: number): Float32Array {
    const out = logits.slice();
    const forced = this.script(nextPosition);
    if (forced !== undefined) out[forced] = 1e9;
    else for (const m of MARKERS) out[m] = -1e9;
    return out;
  }
  async allocate(): Promise<SeqId> {
    const s = await this.inner.allocate();
    this.ops.push({ op: "allocate", seq: s });
    return s;
  }
  async prefill(seq: SeqId, tokens: readonly number[], positions: readonly number[]) {
    this.ops.push({ op: "prefill", seq, positions: [...positions] });
    return this.shape(await this.inner.prefill(seq, tokens, positions), positions[positions.length - 1] + 1);
  }
  async decode(batch: readonly DecodeInput[]) {
    for (const b of batch) this.ops.push({ op: "decode", seq: b.seq, positions: [b.position], token: b.token });
    const out = await this.inner.decode(batch);
    return out.map((l, i) => this.shape(l, batch[i].position + 1));
  }
  async evict(seq: SeqId, start: number, end: number) {
    this.ops.push({ op: "evict", seq, start, end });
    return this.inner.evict(seq, start, end);
  }
  async recompute(seq: SeqId, tokens: readonly number[], positions: readonly number[]) {
    this.ops.push({ op: "recompute", seq, positions: [...positions] });
    return this.shape(await this.inner.recompute(seq, tokens, positions), positions[positions.length - 1] + 1);
  }
  async free(seq: SeqId) {
    this.ops.push({ op: "free", seq });
    return this.inner.free(seq);
  }
  residentTokens(seq: SeqId) {
    return this.inner.residentTokens(seq);
  }
}

const PROMPT = tok.encode("<|im_start|>user\nx=3 a:12345 b:67890<|im_end|>\n<|im_start|>assistant\n<think>\n");
const P = PROMPT.length;

/** Blocks of period 40 from the first completion token: block, memento, a few free tokens. */
function mementoScript(position: number): number | undefined {
  if (position < P) return undefined;
  const k = (position - P) % 40;
  if (k === 0) return st.blockStart;
  if (k === 25) return st.blockEnd;
  if (k === 26) return st.summaryStart;
  if (k === 31) return st.summaryEnd;
  return undefined;
}

const GREEDY: SamplingParams = { temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: 150 };

function makeEngine(opts: Partial<EngineConfig> & { script?: (p: number) => number | undefined } = {}) {
  const backend = new ScriptedBackend(new ReferenceBackend(model), opts.script ?? mementoScript);
  const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 100_000, ...opts });
  return { engine, backend };
}

async function runAll(engine: MementoEngine, reqs: EngineRequest[]) {
  const results = await Promise.all(reqs.map((r) => engine.submit(r).result()));
  await engine.idle();
  return results;
}

const requests = (
  n: number,
  sampling: SamplingParams = GREEDY,
  masking: Partial<MaskingConfig> = {},
): EngineRequest[] =>
  Array.from({ length: n }, (_, i) => ({
    id: `r${i}`,
    promptTokens: tok.encode(
      `<|im_start|>user\nx=${i} a:${12345 + i * 1111} b:67890<|im_end|>\n<|im_start|>assistant\n<think>\n`,
    ),
    sampling: { ...sampling, seed: 100 + i },
    masking,
  }));

describe("engine: eviction during generation", () => {
  it("evicts right after the trigger token's KV, before that request's next token; positions stay logical", async () => {
    const { engine, backend } = makeEngine();
    const [r] = await runAll(engine, requests(1));
    expect(r.finishReason).toBe("length");
    expect(r.tokens.length).toBe(150);
    expect(r.stats.evictions).toBe(3); // summary_end at completion indices 31, 71, 111
    const ops = backend.ops.filter((o) => o.seq === 0);
    const decodes = ops.filter((o) => o.op === "decode");
    // logical: no shifting after evictions
    decodes.forEach((d, i) => {
      expect(d.positions![0]).toBe(P + i);
    });
    for (let i = 0; i < ops.length; i++) {
      if (ops[i].op !== "evict") continue;
      const prev = ops[i - 1];
      expect(prev.op).toBe("decode");
      expect(prev.token).toBe(st.summaryEnd);
      // content only (maskDelimiters false): [block_start + 1, block_end)
      expect(ops[i].end! - ops[i].start!).toBe(24);
      const next = ops.slice(i + 1).find((o) => o.op === "decode");
      if (next) expect(next.positions![0]).toBe(prev.positions![0] + 1);
    }
    expect(r.stats.peakKvTokens).toBe(P + 149 - 3 * 24); // each period keeps 16 of 40; peak at the end (the 150th token is returned, never computed)
    expect(engine.stats().kvUsedTokens).toBe(0);
  });

  it("restart mode evicts [start, end] and recomputes the memento at its original positions", async () => {
    const { engine, backend } = makeEngine();
    const [r] = await runAll(engine, requests(1, GREEDY, { restartMode: true }));
    const rec = backend.ops.filter((o) => o.op === "recompute");
    expect(rec.length).toBe(r.stats.evictions);
    expect(rec[0].positions).toEqual(Array.from({ length: 6 }, (_, i) => P + 26 + i));
    const ev = backend.ops.find((o) => o.op === "evict")!;
    expect([ev.start, ev.end]).toEqual([P, P + 26]);
    expect(r.stats.restartRecomputedTokens).toBe(6 * r.stats.evictions);
  });

  it("maxBlockTokens forces <|block_end|> after that many content tokens", async () => {
    const script = (p: number) => (p >= P && (p - P) % 50 === 0 ? st.blockStart : undefined); // never ends a block itself
    const { engine } = makeEngine({ script });
    const [r] = await runAll(engine, requests(1, { ...GREEDY, maxTokens: 60 }, { maxBlockTokens: 8 }));
    expect(r.tokens[0]).toBe(st.blockStart);
    expect(r.tokens[9]).toBe(st.blockEnd);
    expect(r.tokens.slice(1, 9)).not.toContain(st.blockEnd);
    expect(r.stats.forcedBlockEnds).toBe(2);
  });
});

describe("engine: preemption and recompute", () => {
  for (const [label, masking, sampling] of [
    ["greedy, keep 0", {}, GREEDY],
    ["greedy, restart mode", { restartMode: true }, GREEDY],
    ["greedy, keep -1", { keepLastNBlocks: -1 }, { ...GREEDY, maxTokens: 60 }],
    [
      "seeded sampling, keep 1",
      { keepLastNBlocks: 1 },
      { temperature: 0.8, topP: 0.95, topK: 20, minP: 0.02, maxTokens: 150 },
    ],
  ] as [string, Partial<MaskingConfig>, SamplingParams][]) {
    it(`a tiny budget forces preemptions and gives the same tokens (${label})`, async () => {
      const big = makeEngine();
      const ref = await runAll(big.engine, requests(4, sampling, masking));
      expect(big.engine.stats().preemptions).toBe(0);
      const tiny = makeEngine({
        kvBudgetTokens: masking.keepLastNBlocks === -1 ? 200 : 150,
        admissionReserveTokens: 4,
      });
      const got = await runAll(tiny.engine, requests(4, sampling, masking));
      const s = tiny.engine.stats();
      expect(s.preemptions).toBeGreaterThan(0);
      expect(s.peakKvUsedTokens).toBeLessThanOrEqual(s.kvTotalTokens);
      expect(s.kvUsedTokens).toBe(0);
      for (let i = 0; i < 4; i++) {
        expect(got[i].tokens).toEqual(ref[i].tokens);
        expect(got[i].text).toEqual(ref[i].text);
        expect(got[i].stats.peakKvTokens).toBe(ref[i].stats.peakKvTokens);
        expect(got[i].stats.evictions).toBe(ref[i].stats.evictions);
      }
      expect(got.reduce((a, r) => a + r.stats.preemptions, 0)).toBe(s.preemptions);
      expect(got.some((r) => r.stats.recomputedTokens > 0)).toBe(true);
      expect(tiny.backend.inner.sequences).toBe(0);
    });
  }

  it("readmits a preempted request whose logical length exceeds the whole budget (its peak bounds the rebuild)", async () => {
    // Short blocks, tiny mementos: a request keeps 5 of every 24 tokens, so two of them fill the budget only
    // after each has computed more tokens than the whole budget holds.
    const sparse = (position: number) => {
      if (position < P) return undefined;
      const k = (position - P) % 24;
      return ({ 0: st.blockStart, 20: st.blockEnd, 21: st.summaryStart, 23: st.summaryEnd } as Record<number, number>)[
        k
      ];
    };
    const sampling = { ...GREEDY, maxTokens: 600 };
    const ref = await runAll(makeEngine({ script: sparse }).engine, requests(2, sampling));
    const budget = 200;
    const tiny = makeEngine({ script: sparse, kvBudgetTokens: budget, admissionReserveTokens: 4 });
    const got = await runAll(tiny.engine, requests(2, sampling));
    const preempted = got.filter((r) => r.stats.preemptions > 0);
    expect(preempted.length).toBeGreaterThan(0);
    // Preempted late: its recompute covered more tokens than the budget has cells.
    expect(Math.max(...preempted.map((r) => r.stats.recomputedTokens))).toBeGreaterThan(budget);
    for (let i = 0; i < 2; i++) expect(got[i].tokens).toEqual(ref[i].tokens);
  }, 30_000);

  it("admission waits while the budget is full", async () => {
    const { engine } = makeEngine({ kvBudgetTokens: 2 * P + 30, admissionReserveTokens: 16 });
    const reqs = requests(3, { ...GREEDY, maxTokens: 5 });
    const handles = reqs.map((r) => engine.submit(r));
    let seen: ReturnType<typeof engine.stats> | undefined;
    for await (const e of handles[1]) {
      if (e.type === "token" && !seen) seen = engine.stats();
    }
    expect(seen!.running).toBe(2);
    expect(seen!.waiting).toBe(1);
    const results = await Promise.all(handles.map((h) => h.result()));
    expect(results.every((r) => r.finishReason === "length")).toBe(true);
    expect(engine.stats().preemptions).toBe(0);
    expect(engine.stats().peakRunning).toBe(2);
    expect(results[2].stats.queueMs).toBeGreaterThan(results[0].stats.queueMs);
  });

  it("a lone request that outgrows the budget ends with length and frees its KV", async () => {
    const { engine, backend } = makeEngine({ kvBudgetTokens: P + 40, admissionReserveTokens: 4 });
    const [r] = await runAll(engine, requests(1, { ...GREEDY, maxTokens: 500 }, { keepLastNBlocks: -1 }));
    expect(r.finishReason).toBe("length");
    expect(r.message).toMatch(/KV budget/);
    expect(r.stats.peakKvTokens).toBe(P + 40);
    expect(backend.inner.sequences).toBe(0);
  });

  it("rejects a prompt larger than the budget, bad input, and a full queue", () => {
    const { engine } = makeEngine({ kvBudgetTokens: 50, maxRunning: 1, maxWaiting: 1 });
    const big = { promptTokens: new Array(60).fill(20), sampling: GREEDY };
    expect(() => engine.submit(big)).toThrow(EngineError);
    try {
      engine.submit(big);
    } catch (e) {
      expect((e as EngineError).code).toBe("prompt_too_large");
    }
    const bad = (r: unknown) => {
      try {
        engine.submit(r as EngineRequest);
        return "accepted";
      } catch (e) {
        return (e as EngineError).code;
      }
    };
    expect(bad({ promptTokens: [], sampling: GREEDY })).toBe("invalid_request");
    expect(bad({ promptTokens: [99999], sampling: GREEDY })).toBe("invalid_request");
    expect(bad({ promptTokens: [20], sampling: { ...GREEDY, maxTokens: 0 } })).toBe("invalid_request");
    expect(bad({ promptTokens: [20], sampling: { ...GREEDY, temperature: -1 } })).toBe("invalid_request");
    expect(bad({ promptTokens: [20], sampling: GREEDY, masking: { keepLastNBlocks: "x" } })).toBe("invalid_request");
    expect(bad({ promptTokens: [20], sampling: GREEDY })).toBe("accepted"); // one to run
    expect(bad({ promptTokens: [20], sampling: GREEDY })).toBe("accepted"); // one to wait
    expect(bad({ promptTokens: [20], sampling: GREEDY })).toBe("queue_full");
    return engine.close();
  });
});

describe("engine: cancellation, stops, sampling", () => {
  it("cancellation frees the request's KV at once", async () => {
    const { engine, backend } = makeEngine();
    const h = engine.submit(requests(1, { ...GREEDY, maxTokens: 10_000 })[0]);
    const other = engine.submit(requests(2, { ...GREEDY, maxTokens: 30 })[1]);
    let n = 0;
    for await (const e of h) {
      if (e.type === "token" && ++n === 20) {
        h.cancel();
        await new Promise((r) => setImmediate(r));
        expect(backend.inner.sequences).toBeLessThanOrEqual(1); // only `other` may still hold KV
      }
      if (e.type === "done") expect(e.finishReason).toBe("cancelled");
    }
    const r = await h.result();
    expect(r.finishReason).toBe("cancelled");
    expect(r.stats.currentKvTokens).toBe(0);
    expect((await other.result()).finishReason).toBe("length");
    await engine.idle();
    expect(backend.inner.sequences).toBe(0);
    expect(engine.stats().kvUsedTokens).toBe(0);
  });

  it("cancelling a waiting request and closing the engine free everything", async () => {
    const { engine, backend } = makeEngine({ maxRunning: 1 });
    const a = engine.submit(requests(1, { ...GREEDY, maxTokens: 10_000 })[0]);
    const b = engine.submit(requests(2, GREEDY)[1]);
    b.cancel();
    expect((await b.result()).finishReason).toBe("cancelled");
    await new Promise((r) => setTimeout(r, 20));
    await engine.close();
    expect((await a.result()).finishReason).toBe("cancelled");
    expect(backend.inner.sequences).toBe(0);
    expect(() => engine.submit(requests(1)[0])).toThrow(/closed/);
  });

  it("stop strings end the request and are not returned; streamed text equals the result", async () => {
    const { engine } = makeEngine({ script: () => undefined });
    const [free] = await runAll(engine, requests(1, { ...GREEDY, maxTokens: 60 }));
    const stop = free.text.slice(20, 23);
    const cut = free.text.indexOf(stop);
    const { engine: e2 } = makeEngine({ script: () => undefined });
    const h = e2.submit({ ...requests(1, { ...GREEDY, maxTokens: 60, stop: ["@@never", stop] })[0] });
    let streamed = "";
    for await (const e of h) if (e.type === "token") streamed += e.text ?? "";
    const r = await h.result();
    expect(r.finishReason).toBe("stop");
    expect(r.stopReason).toBe(stop);
    expect(r.text).toBe(free.text.slice(0, cut));
    expect(streamed).toBe(r.text);
  });

  it("stop token ids and eos end the request; their text is dropped", async () => {
    const eos = st.imEnd as number;
    const script = (p: number) => (p === P + 7 ? eos : undefined);
    const { engine } = makeEngine({ script });
    const [r] = await runAll(engine, requests(1, { ...GREEDY, maxTokens: 60 }));
    expect(r.finishReason).toBe("stop");
    expect(r.stopReason).toBe(eos);
    expect(r.tokens.length).toBe(8);
    expect(r.text).not.toContain("<|im_end|>");
    const stopId = r.tokens[3];
    const [r2] = await runAll(
      makeEngine({ script }).engine,
      requests(1, { ...GREEDY, maxTokens: 60, stopTokenIds: [stopId] }),
    );
    expect(r2.tokens.length).toBeLessThanOrEqual(4);
    expect(r2.tokens[r2.tokens.length - 1]).toBe(stopId);
  });

  it("sampling: greedy, top_k 1, seeds, min_p and top_p", () => {
    const logits = Float32Array.from([1, 3, 2, 0.5, 2.9]);
    const base: SamplingParams = { temperature: 1, topP: 1, topK: 0, minP: 0, maxTokens: 1 };
    expect(sampleToken(logits, { ...base, temperature: 0 }, Math.random)).toBe(1);
    expect(sampleToken(logits, { ...base, topK: 1 }, Math.random)).toBe(1);
    const draw = (p: SamplingParams, n = 400) => {
      const s = new Sampler(p, 42);
      return Array.from({ length: n }, () => s.sample(logits));
    };
    expect(draw(base)).toEqual(draw(base));
    expect(new Set(draw({ ...base, topK: 2 }))).toEqual(new Set([1, 4]));
    // weights relative to the top: [e^-2, 1, e^-1, e^-2.5, e^-0.1]
    expect(new Set(draw({ ...base, minP: 0.5 }))).toEqual(new Set([1, 4]));
    expect(new Set(draw({ ...base, minP: 0.3 }))).toEqual(new Set([1, 2, 4]));
    expect(new Set(draw({ ...base, topP: 0.5 }))).toEqual(new Set([1, 4])); // 1 alone has 0.41 of the mass
    expect(new Set(draw({ ...base, topP: 0.3 }))).toEqual(new Set([1]));
  });

  it("scheduler: preempts the newest, aborts a lone request, admits in order only after no preemption", () => {
    const s = (arrival: number, claimedTokens: number, admissionNeed = 0): Schedulable => ({
      arrival,
      claimedTokens,
      admissionNeed,
    });
    const sched = new Scheduler(new KvBudget(100, 10), 8);
    let plan = sched.plan([s(0, 40), s(2, 30), s(1, 29)], [s(3, 0, 5)]);
    expect(plan.preempt.map((x) => x.arrival)).toEqual([2]);
    expect(plan.decode.map((x) => x.arrival)).toEqual([0, 1]);
    expect(plan.admit).toEqual([]);
    plan = sched.plan([s(0, 100)], []);
    expect(plan.abort.length).toBe(1);
    plan = sched.plan([s(0, 40)], [s(1, 0, 30), s(2, 0, 30), s(3, 0, 1)]);
    expect(plan.admit.map((x) => x.arrival)).toEqual([1]); // 40 + 1 + 30 + 10 fits; the next does not, and nobody overtakes
  });
});

describe("engine: incremental text with the Qwen3 tokenizer", () => {
  it("releases whole characters only, and cuts a stop string spanning tokens", async () => {
    const { loadTokenizer } = await import("../src/format/tokenizer.js");
    const { TextStream } = await import("../src/engine/text.js");
    const q = loadTokenizer();
    const text = "Größe 世界 🙂 then <|block_start|>x = 3<|block_end|> STOP-HERE tail";
    const ids = q.encode(text);
    const plain = new TextStream(q);
    let out = "";
    for (const id of ids) {
      plain.push(id);
      const piece = plain.release(false);
      expect(piece).not.toContain("\uFFFD");
      out += piece;
    }
    expect(out + plain.release(true)).toBe(text);
    const stopping = new TextStream(q, ["STOP-HERE"]);
    let streamed = "";
    let hit = false;
    for (const id of ids) {
      hit = stopping.push(id);
      streamed += stopping.release(hit);
      if (hit) break;
    }
    expect(hit).toBe(true);
    expect(streamed).toBe(text.slice(0, text.indexOf("STOP-HERE")));
  });
});

/** The scripted backend declaring what llama.cpp declares: no restart mode, one slice of cells per sequence. */
class NoRestartBackend extends ScriptedBackend {
  readonly capabilities = LLAMACPP_CAPABILITIES;
}

describe("engine: backend capabilities", () => {
  const noRestartEngine = (masking: Partial<MaskingConfig> = {}) => {
    const backend = new NoRestartBackend(new ReferenceBackend(model), mementoScript);
    return { backend, engine: createEngine({ backend, tokenizer: tok, kvBudgetTokens: 100_000, masking }) };
  };

  it("refuses restart mode at submit when the backend declares it lacks it, before any backend call", () => {
    const { engine, backend } = noRestartEngine();
    const [req] = requests(1, GREEDY, { restartMode: true });
    let err: unknown;
    try {
      engine.submit(req);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedFeatureError);
    expect(err).toBeInstanceOf(EngineError);
    const u = err as UnsupportedFeatureError;
    expect([u.code, u.feature, u.backend]).toEqual(["unsupported_feature", "restartMode", "scripted"]);
    expect(u.message).toBe(
      "restartMode is not supported by the scripted backend " +
        "(llama.cpp cannot rewrite a memento after its evicted block)",
    );
    expect(backend.ops).toEqual([]);
    expect(engine.stats().waiting).toBe(0);
  });

  it("serves the same backend without restart mode, and a request that switches the default off", async () => {
    const { engine } = noRestartEngine();
    const [r] = await runAll(engine, requests(1, { ...GREEDY, maxTokens: 50 }, { restartMode: false }));
    expect(r.finishReason).toBe("length");
    expect(r.stats.evictions).toBe(1);
  });

  it("refuses masking defaults the backend cannot serve when the engine is built", () => {
    expect(() => noRestartEngine({ restartMode: true })).toThrow(UnsupportedFeatureError);
  });

  it("accepts restart mode on the reference backend, which declares it", async () => {
    const backend = new ReferenceBackend(model);
    expect(backend.capabilities).toBe(REFERENCE_CAPABILITIES);
    const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 100_000, masking: { restartMode: true } });
    expect(engine.capabilities).toEqual({ restartMode: true, unifiedKvPool: true });
    const [r] = await runAll(engine, requests(1, { ...GREEDY, maxTokens: 10 }, { restartMode: true }));
    expect(r.finishReason).toBe("length");
  });

  it("takes a backend that declares nothing at its word (its contract); the loader knows each declaration", () => {
    const { engine } = makeEngine();
    expect(engine.capabilities).toBe(DEFAULT_BACKEND_CAPABILITIES);
    expect(BACKEND_CAPABILITIES).toEqual({ reference: REFERENCE_CAPABILITIES, llamacpp: llamaCppCapabilities() });
    expect(LLAMACPP_CAPABILITIES).toMatchObject({ restartMode: false, unifiedKvPool: false });
  });
});
