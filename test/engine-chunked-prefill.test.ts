/**
 * Chunked prefill mixed into decode steps (engine.ts, "catching up"), on the reference transformer behind a
 * backend that implements `step` and records every call:
 *   1. no step computes more than maxStepTokens tokens, and each is ONE backend call;
 *   2. a long prompt is prefilled over several steps while a running stream decodes in every one of them;
 *   3. logits are asked for only where a token is sampled: the last row of a prompt, the decode rows of
 *      generating requests; never inside a prompt, never for replayed tokens;
 *   4. the tokens are those of an engine with an unbounded step (greedy and seeded sampling), also when a
 *      small KV budget forces preemptions whose rebuild runs in chunks with its evictions in between;
 *   5. maxStepTokens is validated, capped to the backend's and bounds the running requests.
 */
import { describe, expect, it } from "vitest";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import { createEngine } from "../src/engine/engine.js";
import { forwardStep } from "../src/engine/forward.js";
import type {
  Backend,
  DecodeInput,
  EngineConfig,
  EngineRequest,
  SamplingParams,
  SeqId,
  StepInput,
} from "../src/engine/types.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { randomModel } from "./helpers/random-model.js";

const tok = toyTokenizer();
const st = tok.specialTokens;
const model = randomModel({ seed: 11, config: { vocab_size: tok.vocabSize } });
/** Where the forced block rhythm starts (past the prompts of the equality tests). */
const SCRIPT_START = 70;
const MARKERS = [
  st.blockStart,
  st.blockEnd,
  st.summaryStart,
  st.summaryEnd,
  st.thinkStart,
  st.thinkEnd,
  st.eos,
  st.imEnd,
].filter((t): t is number => t !== undefined);

interface StepRecord {
  inputs: { seq: SeqId; tokens: number; position: number; logits: boolean }[];
}

/**
 * The reference transformer behind `step` (via forwardStep's prefill/decode path), every step recorded. From
 * position SCRIPT_START on, blocks of period 30 are forced (block, memento, free tokens) and markers are masked
 * elsewhere, so generation evicts on a fixed rhythm whatever the model's choices.
 */
class SteppingBackend implements Backend {
  readonly name = "stepping reference";
  readonly vocabSize: number;
  readonly maxSequences = Infinity;
  readonly steps: StepRecord[] = [];
  readonly inner: ReferenceBackend;

  constructor(readonly maxStepTokens?: number) {
    this.inner = new ReferenceBackend(model);
    this.vocabSize = this.inner.vocabSize;
  }

  private shape(logits: Float32Array, nextPosition: number): Float32Array {
    const out = logits.slice();
    const k = nextPosition - SCRIPT_START;
    const forced = k < 0 ? undefined : [st.blockStart, ...Array(19), st.blockEnd, st.summaryStart][k % 30];
    if (forced !== undefined) out[forced] = 1e9;
    else if (k >= 0 && k % 30 === 27) out[st.summaryEnd] = 1e9;
    else for (const m of MARKERS) out[m] = -1e9;
    return out;
  }

  async step(inputs: readonly StepInput[]): Promise<(Float32Array | undefined)[]> {
    this.steps.push({
      inputs: inputs.map((i) => ({ seq: i.seq, tokens: i.tokens.length, position: i.position, logits: i.logits })),
    });
    const out = await forwardStep(this.inner, inputs);
    return out.map((l, i) => (l ? this.shape(l, inputs[i].position + inputs[i].tokens.length) : undefined));
  }

  allocate = () => this.inner.allocate();
  prefill = (seq: SeqId, t: readonly number[], p: readonly number[]) => this.inner.prefill(seq, t, p);
  decode = (b: readonly DecodeInput[]) => this.inner.decode(b);
  evict = (seq: SeqId, a: number, b: number) => this.inner.evict(seq, a, b);
  recompute = (seq: SeqId, t: readonly number[], p: readonly number[]) => this.inner.recompute(seq, t, p);
  free = (seq: SeqId) => this.inner.free(seq);
  residentTokens = (seq: SeqId) => this.inner.residentTokens(seq);
}

const GREEDY: SamplingParams = { temperature: 0, topP: 1, topK: 0, minP: 0, maxTokens: 80 };

function prompt(i: number, extraChars = 0): number[] {
  const pad = "0123456789+= ".repeat(Math.ceil(extraChars / 13)).slice(0, extraChars);
  return tok.encode(`<|im_start|>user\nq${i} ${pad}<|im_end|>\n<|im_start|>assistant\n<think>\n`);
}

function makeEngine(opts: Partial<EngineConfig> & { backendMaxStep?: number } = {}) {
  const backend = new SteppingBackend(opts.backendMaxStep);
  const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 100_000, ...opts });
  return { engine, backend };
}

async function run(opts: Partial<EngineConfig>, reqs: EngineRequest[]) {
  const { engine, backend } = makeEngine(opts);
  const results = await Promise.all(reqs.map((r) => engine.submit(r).result()));
  await engine.idle();
  return { results, backend, engine };
}

describe("engine: chunked prefill mixed into decode steps", () => {
  it("a long prompt is prefilled over several steps, each within the budget, while a stream decodes in every one", async () => {
    const { engine, backend } = makeEngine({ maxStepTokens: 16 });
    const short = engine.submit({ id: "short", promptTokens: prompt(1), sampling: { ...GREEDY, maxTokens: 120 } });
    // Wait until the short request is decoding, then send a prompt of ~300 tokens.
    while (engine.stats().steps < 3) await new Promise((r) => setImmediate(r));
    const longPrompt = prompt(2, 300);
    const long = engine.submit({ id: "long", promptTokens: longPrompt, sampling: { ...GREEDY, maxTokens: 5 } });
    const [a, b] = await Promise.all([short.result(), long.result()]);
    await engine.idle();
    expect(a.finishReason).toBe("length");
    expect(b.finishReason).toBe("length");

    for (const s of backend.steps) expect(s.inputs.reduce((n, i) => n + i.tokens, 0)).toBeLessThanOrEqual(16);
    const shortSeq = backend.steps[0].inputs[0].seq;
    const longSteps = backend.steps.filter((s) => s.inputs.some((i) => i.seq !== shortSeq && i.tokens > 1));
    // 15 prompt tokens per step beside the stream's row: the prompt takes ~longPrompt/15 steps...
    expect(longSteps.length).toBeGreaterThanOrEqual(Math.floor(longPrompt.length / 15));
    // ...and the stream decodes in every one of them (it is never stalled by the prompt).
    for (const s of longSteps) expect(s.inputs.some((i) => i.seq === shortSeq && i.tokens === 1)).toBe(true);
    // The prompt's chunks cover it exactly once, in order, at logical positions.
    const chunks = longSteps.map((s) => s.inputs.find((i) => i.seq !== shortSeq && i.tokens > 1)!);
    let next = 0;
    for (const c of chunks.filter((c) => c.position < longPrompt.length)) {
      expect(c.position).toBe(next);
      next += c.tokens;
    }
    expect(engine.stats().steps).toBe(backend.steps.length); // one backend call per step
  });

  it("asks for logits only where a token is sampled: a prompt's last row, generating decode rows", async () => {
    const p = prompt(3, 100);
    const { backend } = await run({ maxStepTokens: 24 }, [
      { id: "gen", promptTokens: p, sampling: { ...GREEDY, maxTokens: 10 } },
      {
        id: "replay",
        promptTokens: prompt(4),
        replayTokens: tok.encode("<|block_start|>1+2=3<|block_end|><|summary_start|>3<|summary_end|>ok"),
        sampling: { ...GREEDY, maxTokens: 100 },
      },
    ]);
    const bySeq = new Map<SeqId, StepRecord["inputs"]>();
    for (const s of backend.steps) for (const i of s.inputs) bySeq.set(i.seq, [...(bySeq.get(i.seq) ?? []), i]);
    const [gen, replay] = [...bySeq.values()];
    const genPrompt = gen.filter((i) => i.position < p.length);
    expect(genPrompt.length).toBeGreaterThan(1);
    expect(genPrompt.map((i) => i.logits)).toEqual([...Array(genPrompt.length - 1).fill(false), true]);
    expect(gen.filter((i) => i.position >= p.length).every((i) => i.logits && i.tokens === 1)).toBe(true);
    const replayDecodes = replay.filter((i) => i.position >= prompt(4).length);
    expect(replayDecodes.length).toBeGreaterThan(10);
    expect(replayDecodes.every((i) => !i.logits)).toBe(true);
  });

  for (const [label, sampling] of [
    ["greedy", GREEDY],
    ["seeded sampling", { ...GREEDY, temperature: 0.8, topP: 0.95 }],
  ] as const) {
    it(`${label}: the same tokens as an unbounded step, also with preemptions rebuilt in chunks`, async () => {
      const reqs = (): EngineRequest[] =>
        Array.from({ length: 4 }, (_, i) => ({
          id: `r${i}`,
          promptTokens: prompt(i, 20 + 10 * i),
          sampling: { ...sampling, seed: 7 + i, maxTokens: 90 },
        }));
      const wide = await run({ maxStepTokens: 100_000 }, reqs());
      const chunked = await run({ maxStepTokens: 12 }, reqs());
      // A budget that cannot hold all four at their peaks: preemption, then rebuilds with evictions in between.
      const tight = await run({ maxStepTokens: 12, kvBudgetTokens: 190, admissionReserveTokens: 4 }, reqs());
      expect(tight.engine.stats().preemptions).toBeGreaterThan(0);
      expect(tight.results.some((r) => r.stats.recomputedTokens > 0)).toBe(true);
      for (let i = 0; i < 4; i++) {
        expect(wide.results[i].stats.evictions).toBeGreaterThan(0);
        expect(chunked.results[i].tokens).toEqual(wide.results[i].tokens);
        expect(tight.results[i].tokens).toEqual(wide.results[i].tokens);
        expect(chunked.results[i].stats.peakKvTokens).toBe(wide.results[i].stats.peakKvTokens);
        expect(tight.results[i].stats.peakKvTokens).toBe(wide.results[i].stats.peakKvTokens);
      }
      for (const s of tight.backend.steps) expect(s.inputs.reduce((n, i) => n + i.tokens, 0)).toBeLessThanOrEqual(12);
      expect(tight.engine.stats().kvUsedTokens).toBe(0);
    });
  }

  it("maxStepTokens: validated, capped to the backend's, and bounds the running requests", async () => {
    expect(() => makeEngine({ maxStepTokens: 0 })).toThrow(/maxStepTokens must be a positive integer/);
    expect(() => makeEngine({ maxStepTokens: 2.5 })).toThrow(/maxStepTokens/);
    expect(makeEngine({ maxStepTokens: 64, backendMaxStep: 32 }).engine.maxStepTokens).toBe(32);
    expect(makeEngine({}).engine.maxStepTokens).toBe(512);
    const { results, engine } = await run(
      { maxStepTokens: 3 },
      Array.from({ length: 6 }, (_, i) => ({ promptTokens: prompt(i), sampling: { ...GREEDY, maxTokens: 4 } })),
    );
    expect(results.every((r) => r.finishReason === "length")).toBe(true);
    expect(engine.stats().peakRunning).toBeLessThanOrEqual(3);
  });
});
