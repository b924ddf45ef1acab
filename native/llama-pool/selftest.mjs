#!/usr/bin/env node
// native/llama-pool/selftest.mjs: randomized self-test of the llama-pool addon. Three sequences share a small
// pool; random multi-sequence decode steps, prefills and interior/tail evictions; after every operation the
// addon's per-sequence cell count must equal llama.cpp's own (llama_state_seq_get_size, calibrated), its
// record of resident runs must match llama.cpp's min/max positions, and logits must be finite. Also checks
// that decode runs off the main thread (the event loop keeps ticking during a long prefill).
//   node native/llama-pool/selftest.mjs [model.gguf] [ops]
import { monitorEventLoopDelay } from "node:perf_hooks";
import { loadLlamaPool } from "./index.mjs";

const modelPath = process.argv[2] ?? "/tmp/toy.gguf";
const OPS = Number(process.argv[3] ?? 300);
const r = loadLlamaPool();
if (!r.ok) {
  console.error(r.reason);
  process.exit(1);
}
const model = await r.binding.loadModel(modelPath);
const V = model.info().vocabSize;
const S = 3;
const ctx = await model.createContext({
  contextSize: 256,
  sequences: S,
  batchSize: 128,
  threads: 1,
  flashAttention: false,
});
let seed = 42;
const rnd = (n) => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed % n;
};

// calibrate llama.cpp's per-sequence state record on sequence 0
const put = (seq, first, n) =>
  ctx.decode(
    Int32Array.from({ length: n }, () => rnd(V)),
    Int32Array.from({ length: n }, (_, i) => first + i),
    new Int32Array(n).fill(seq),
    new Uint8Array(n),
  );
await put(0, 0, 10);
const a = ctx.seqStateSize(0);
await put(0, 10, 20);
const per = (ctx.seqStateSize(0) - a) / 20;
const header = a - 10 * per;
ctx.clearAll();

const next = new Array(S).fill(0); // next logical position of each sequence
let failures = 0;
const fail = (m) => {
  failures++;
  console.error(`FAIL: ${m}`);
};
function verify(label) {
  const st = ctx.stats();
  let sum = 0;
  for (let s = 0; s < S; s++) {
    const runs = Array.from(ctx.seqRuns(s));
    const { min, max } = ctx.seqPosRange(s);
    const llamaCells = max < 0 ? 0 : (ctx.seqStateSize(s) - header) / per;
    if (llamaCells !== st.perSequence[s])
      fail(`${label}: seq ${s} addon ${st.perSequence[s]} cells, llama.cpp ${llamaCells}`);
    const eMin = runs.length ? runs[0] : -1;
    const eMax = runs.length ? runs[runs.length - 1] - 1 : -1;
    if (min !== eMin || max !== eMax) fail(`${label}: seq ${s} llama.cpp pos ${min}..${max}, addon ${eMin}..${eMax}`);
    sum += st.perSequence[s];
  }
  if (sum !== st.used || st.used + st.free !== st.cells) fail(`${label}: totals ${JSON.stringify(st)}`);
}

let evictions = 0;
let steps = 0;
let refusals = 0;
for (let op = 0; op < OPS; op++) {
  const kind = rnd(10);
  const st = ctx.stats();
  if (kind < 7) {
    // one decode step over a random subset of sequences, 1..24 tokens each
    const rows = [];
    for (let s = 0; s < S; s++) {
      if (rnd(3) === 0) continue;
      const n = 1 + rnd(24);
      for (let i = 0; i < n; i++) rows.push([s, next[s] + i, i === n - 1]);
    }
    if (!rows.length) continue;
    const out = new Float32Array(S * V);
    try {
      const n = await ctx.decode(
        Int32Array.from(rows, () => rnd(V)),
        Int32Array.from(rows, (x) => x[1]),
        Int32Array.from(rows, (x) => x[0]),
        Uint8Array.from(rows, (x) => (x[2] ? 1 : 0)),
        out,
      );
      if (!out.subarray(0, n * V).every(Number.isFinite)) fail(`op ${op}: non-finite logits`);
      for (const [s, p] of rows) next[s] = Math.max(next[s], p + 1);
      steps++;
    } catch (e) {
      if (!/pool full/.test(e.message) || st.used + rows.length <= st.cells) fail(`op ${op}: unexpected ${e.message}`);
      refusals++;
    }
  } else if (kind < 9) {
    // evict an interior (or tail) block of a sequence
    const s = rnd(S);
    if (next[s] < 4) continue;
    const p0 = rnd(next[s]);
    const p1 = rnd(3) === 0 ? -1 : p0 + 1 + rnd(Math.max(1, next[s] - p0));
    ctx.removeRange(s, p0, p1);
    // llama.cpp's rule: new tokens continue the largest HELD position, so a tail eviction moves `next` back
    const runs = ctx.seqRuns(s);
    next[s] = runs.length ? runs[runs.length - 1] : 0;
    evictions++;
  } else {
    const s = rnd(S);
    ctx.clearSequence(s);
    next[s] = 0;
  }
  verify(`op ${op}`);
}
console.log(
  `selftest: ${OPS} ops (${steps} decode steps, ${evictions} evictions, ${refusals} pool-full refusals), final ${JSON.stringify(ctx.stats())}`,
);

// off the main thread: timers keep firing while a long prefill runs
ctx.clearAll();
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
let ticks = 0;
const timer = setInterval(() => ticks++, 1);
const t0 = performance.now();
for (let i = 0; i < 8; i++) {
  ctx.clearAll();
  await put(0, 0, 128);
  await put(0, 128, 128);
}
const ms = performance.now() - t0;
clearInterval(timer);
h.disable();
console.log(
  `event loop during ${ms.toFixed(0)} ms of prefill: ${ticks} timer ticks, max loop delay ${(h.max / 1e6).toFixed(1)} ms`,
);
if (ticks < 5) fail("the event loop was blocked during decode");

// a second decode while one is in flight is refused, not raced
ctx.clearAll();
const p1 = put(0, 0, 64).catch((e) => e.message);
const p2 = put(1, 0, 1).catch((e) => e.message);
const [r1, r2] = await Promise.all([p1, p2]);
console.log(
  `concurrent decode: first -> ${typeof r1 === "string" ? r1 : "ok"}, second -> ${typeof r2 === "string" ? r2 : "ok"}`,
);
if (!/in flight/.test(String(r2))) fail("second concurrent decode was not refused");

ctx.dispose();
model.dispose();
console.log(failures ? `${failures} FAILURES` : "selftest passed");
process.exitCode = failures ? 1 : 0;
