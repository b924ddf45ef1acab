#!/usr/bin/env node
// native/demo-shared-pool.mjs: shows that the llama-pool addon gives Memento a SHARED KV pool. In one context
// of 1024 cells and 2 sequences: sequence 0 fills 900 cells, evicts a middle block of 400 positions (nothing
// shifts), sequence 1 grows into the freed cells past 512 (the most a per-sequence stream of the same context
// would allow), both decode together, and sequence 0's logits at its next logical positions are compared with
// a fresh recomputation (a fresh addon context, and node-llama-cpp through memento's LlamaCppBackend).
// Cell counts are cross-checked against llama.cpp's per-sequence state size. Then per-token decode timings:
// addon vs node-llama-cpp (memento's backend path and the public LlamaContextSequence.evaluate).
//
//   node native/demo-shared-pool.mjs [model.gguf] [--kv f16|f32] [--threads N] [--no-bench]
//   node native/demo-shared-pool.mjs --fa on|off   (flash attention of the addon contexts, default off)
// The model defaults to /tmp/toy.gguf (made by `node bin/memento.js model export-gguf models/toy /tmp/toy.gguf`).
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadLlamaPool } from "./llama-pool/index.mjs";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const valued = new Set(["--kv", "--threads", "--fa"]);
const modelPath = args.find((a, i) => !a.startsWith("--") && !valued.has(args[i - 1])) ?? "/tmp/toy.gguf";
const kvType = opt("--kv", "f16");
const threads = Number(opt("--threads", "2"));
const bench = !args.includes("--no-bench");
// --fa on|off|auto: flash attention of the addon contexts (default off: exact comparison; see section 2).
const fa = opt("--fa", "off");
const faOpt = fa === "auto" ? {} : { flashAttention: fa === "on" };

const CELLS = 1024;
const FILL0 = 900; // sequence 0 prompt
const EVICT = [300, 700]; // the block sequence 0 evicts (positions)
const PREFILL1 = 504; // sequence 1 prompt (into the freed cells)
const STEPS = 10; // joint decode steps: seq 0 at 900.., seq 1 at 504.. -> 500+10 + 504+10 = 1024 cells

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}
const fmt = (x) => (Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(2) : x.toFixed(5));
const maxAbsDiff = (a, b) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const argmax = (a) => a.reduce((bi, v, i, arr) => (v > arr[bi] ? i : bi), 0);
const allFinite = (a) => a.every(Number.isFinite);
function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exitCode = 1;
  }
  return cond;
}

/** Decodes `tokens` of one sequence at positions first.. in chunks; returns the last row's logits. */
async function prefill(ctx, seq, tokens, first, batch, V) {
  const out = new Float32Array(V);
  for (let from = 0; from < tokens.length; from += batch) {
    const n = Math.min(batch, tokens.length - from);
    const last = from + n === tokens.length;
    const lg = new Uint8Array(n);
    if (last) lg[n - 1] = 1;
    await ctx.decode(
      Int32Array.from(tokens.slice(from, from + n)),
      Int32Array.from({ length: n }, (_, i) => first + from + i),
      new Int32Array(n).fill(seq),
      lg,
      last ? out : undefined,
    );
  }
  return out;
}

async function main() {
  if (!existsSync(modelPath)) {
    console.error(
      `model ${modelPath} not found; make it with: node bin/memento.js model export-gguf models/toy /tmp/toy.gguf`,
    );
    process.exit(1);
  }
  // node-llama-cpp first (it loads the shared ggml backends; the addon then reuses them).
  let LlamaCppBackend;
  try {
    ({ LlamaCppBackend } = await import(path.join(root, "dist/engine/backends/llamacpp.js")));
  } catch (e) {
    console.log(
      `(memento's LlamaCppBackend unavailable from dist/: ${e.message.split("\n")[0]}; skipping node-llama-cpp comparisons)`,
    );
  }
  let nlcRef;
  if (LlamaCppBackend)
    nlcRef = await LlamaCppBackend.create({
      modelPath,
      sequences: 1,
      cellsPerSequence: CELLS,
      threads,
      kvCacheType: kvType.toUpperCase(),
    });

  const pool = loadLlamaPool();
  if (!pool.ok) {
    console.error(pool.reason);
    process.exit(1);
  }
  const { binding, runtime, build } = pool;
  console.log(
    `llama-pool addon: llama.cpp ${runtime.llamaVersion} (headers ${build.llamaCppRelease} / ${runtime.expectedLlamaVersion}), devices ${runtime.devices.join(", ")}`,
  );
  const model = await binding.loadModel(modelPath);
  const mi = model.info();
  const V = mi.vocabSize;
  console.log(
    `model ${path.basename(modelPath)}: ${mi.description}, ${mi.layers} layers, vocab ${V}; KV ${kvType}, ${threads} threads`,
  );

  const ctx = await model.createContext({
    contextSize: CELLS,
    sequences: 2,
    batchSize: 512,
    threads,
    kvType,
    ...faOpt,
  });
  const ci = ctx.info();
  console.log(
    `pool context: ${ci.cells} cells shared by ${ci.sequences} sequences (kv_unified; a per-sequence split would give ${ci.cells / ci.sequences} cells each)`,
  );
  const next = rng(1234);
  const tok0 = Array.from({ length: FILL0 + STEPS + 1 }, () => next() % V);
  const tok1 = Array.from({ length: PREFILL1 + STEPS + 1 }, () => next() % V);

  // llama.cpp's own per-sequence count: seqStateSize = header + cells x record (calibrated on sequence 0).
  let header = 0;
  let perCell = 0;
  const measured = (s) => (ctx.seqPosRange(s).max < 0 ? 0 : (ctx.seqStateSize(s) - header) / perCell);
  const show = (label) => {
    const st = ctx.stats();
    const m = [measured(0), measured(1)];
    const r0 = ctx.seqPosRange(0);
    console.log(
      `  ${label.padEnd(44)} used ${String(st.used).padStart(4)} free ${String(st.free).padStart(4)} | seq0 ${st.perSequence[0]} cells ` +
        `(llama.cpp ${m[0]}), pos ${r0.min}..${r0.max} | seq1 ${st.perSequence[1]} cells (llama.cpp ${m[1]})`,
    );
    check(
      m[0] === st.perSequence[0] && m[1] === st.perSequence[1],
      `${label}: addon cell count matches llama.cpp's state size`,
    );
    return st;
  };

  // 1. sequence 0 fills 900 cells (two chunks: 512 then 388; the two state sizes calibrate the cell record).
  console.log("\n1) shared pool");
  await prefill(ctx, 0, tok0.slice(0, 512), 0, 512, V);
  const s512 = ctx.seqStateSize(0);
  await prefill(ctx, 0, tok0.slice(512, FILL0), 512, 512, V);
  const s900 = ctx.seqStateSize(0);
  perCell = (s900 - s512) / (FILL0 - 512);
  header = s512 - 512 * perCell;
  show(`seq0 prefill ${FILL0} tokens (pos 0..${FILL0 - 1})`);

  // 2. evict a middle block of sequence 0: positions keep their places.
  const freed = ctx.removeRange(0, EVICT[0], EVICT[1]);
  check(freed === EVICT[1] - EVICT[0], `removeRange freed ${freed}`);
  const st2 = show(`seq0 evicts pos ${EVICT[0]}..${EVICT[1] - 1} (freed ${freed})`);
  const runs = Array.from(ctx.seqRuns(0));
  console.log(`     seq0 resident runs: ${runs.join(",").replace(/(\d+),(\d+),?/g, "[$1,$2) ")}`);
  check(st2.used === FILL0 - freed, "pool used after eviction");

  // 3. sequence 1 grows into the freed cells.
  await prefill(ctx, 1, tok1.slice(0, PREFILL1), 0, 512, V);
  show(`seq1 prefill ${PREFILL1} tokens`);

  // 4. both decode together, one llama_decode per step; seq 0 continues at its next LOGICAL position (900..).
  const out = new Float32Array(2 * V);
  const pooled0 = [];
  for (let j = 0; j < STEPS; j++) {
    const n = await ctx.decode(
      Int32Array.of(tok0[FILL0 + j], tok1[PREFILL1 + j]),
      Int32Array.of(FILL0 + j, PREFILL1 + j),
      Int32Array.of(0, 1),
      Uint8Array.of(1, 1),
      out,
    );
    check(n === 2, "two logit rows per joint step");
    pooled0.push(out.slice(0, V));
    check(allFinite(out), `step ${j}: logits finite`);
    // the zero-copy view reads the same row
    if (j === 0) check(maxAbsDiff(ctx.logitsView(1), out.subarray(V, 2 * V)) === 0, "logitsView equals the copied row");
  }
  const st4 = show(`${STEPS} joint steps (seq0 pos ${FILL0}.., seq1 pos ${PREFILL1}..)`);
  check(st4.perSequence[1] > CELLS / 2, `sequence 1 holds ${st4.perSequence[1]} > ${CELLS / 2} cells`);
  check(st4.free === 0, "pool exactly full");
  try {
    await ctx.decode(
      Int32Array.of(tok0[FILL0 + STEPS]),
      Int32Array.of(FILL0 + STEPS),
      Int32Array.of(0),
      Uint8Array.of(1),
      out,
    );
    check(false, "a decode into a full pool must be refused");
  } catch (e) {
    console.log(`  one more token: refused as expected ("${e.message}")`);
  }
  const wrongPos = await ctx
    .decode(Int32Array.of(1), Int32Array.of(FILL0 - 1), Int32Array.of(0), Uint8Array.of(1))
    .catch((e) => e.message);
  console.log(`  a token at a non-continuing position: refused ("${wrongPos}")`);

  // 5. references for sequence 0: replay its history in a FRESH context: write 0..899 in the same two chunks,
  //    evict the same block, then decode 900.. one token at a time. Kept tokens 700..899 were computed with the
  //    block visible in both runs (Memento semantics); 900.. see only the kept positions.
  console.log(
    `\n2) sequence 0 vs a fresh recomputation (positions ${FILL0}..${FILL0 + STEPS - 1}, max |logit diff| over ${STEPS} steps x ${V} logits)`,
  );
  const freshRun = async (fopt) => {
    const fresh = await model.createContext({
      contextSize: CELLS,
      sequences: 1,
      batchSize: 512,
      threads,
      kvType,
      ...fopt,
    });
    await prefill(fresh, 0, tok0.slice(0, 512), 0, 512, V);
    await prefill(fresh, 0, tok0.slice(512, FILL0), 512, 512, V);
    fresh.removeRange(0, EVICT[0], EVICT[1]);
    const rows = [];
    for (let j = 0; j < STEPS; j++) {
      const fout = new Float32Array(V);
      await fresh.decode(
        Int32Array.of(tok0[FILL0 + j]),
        Int32Array.of(FILL0 + j),
        Int32Array.of(0),
        Uint8Array.of(1),
        fout,
      );
      rows.push(fout);
    }
    fresh.dispose();
    return rows;
  };
  const compare = (a, b) => ({
    d: Math.max(...a.map((r, j) => maxAbsDiff(r, b[j]))),
    agree: a.filter((r, j) => argmax(r) === argmax(b[j])).length,
  });
  const scale = Math.max(...pooled0.map((l) => Math.max(...l.map(Math.abs))));
  const freshRows = await freshRun(faOpt);
  const cf = compare(pooled0, freshRows);
  // Flash attention on the CPU accumulates in reduced precision, so its result depends on the ORDER of the cells
  // it scans (which the other sequence's cells change); without it the two runs agree to float rounding.
  const tol = (fa === "off" ? 1e-4 : 1e-2) * Math.max(1, scale);
  console.log(
    `  fresh addon context (1 sequence, flash attn ${fa}): max diff ${fmt(cf.d)} (logit scale ${scale.toFixed(2)}, tolerance ${fmt(tol)}), argmax agrees ${cf.agree}/${STEPS}`,
  );
  check(cf.d < tol && cf.agree === STEPS, "pooled logits equal the fresh addon recomputation");
  const faOn = compare(await freshRun({ flashAttention: true }), await freshRun({ flashAttention: false }));
  console.log(`  (scale of flash-attention noise: the fresh run with flash attn on vs off: max diff ${fmt(faOn.d)})`);
  const fout = new Float32Array(V);

  // Sanity: the same continuation WITHOUT the eviction differs (the eviction really changed what 900.. attend to).
  const noEvict = await model.createContext({
    contextSize: CELLS,
    sequences: 1,
    batchSize: 512,
    threads,
    kvType,
    ...faOpt,
  });
  await prefill(noEvict, 0, tok0.slice(0, FILL0), 0, 512, V);
  await noEvict.decode(Int32Array.of(tok0[FILL0]), Int32Array.of(FILL0), Int32Array.of(0), Uint8Array.of(1), fout);
  console.log(
    `  (control: same step without the eviction:     max diff ${fmt(maxAbsDiff(pooled0[0], fout))} - the block is really gone)`,
  );
  noEvict.dispose();

  if (nlcRef) {
    const s = await nlcRef.allocate();
    await nlcRef.prefill(
      s,
      tok0.slice(0, FILL0),
      Array.from({ length: FILL0 }, (_, i) => i),
    );
    await nlcRef.evict(s, EVICT[0], EVICT[1]);
    let d = 0;
    let agree = 0;
    for (let j = 0; j < STEPS; j++) {
      const [l] = await nlcRef.decode([{ seq: s, token: tok0[FILL0 + j], position: FILL0 + j }]);
      d = Math.max(d, maxAbsDiff(pooled0[j], l));
      agree += argmax(pooled0[j]) === argmax(l) ? 1 : 0;
    }
    console.log(
      `  node-llama-cpp (memento LlamaCppBackend, per-sequence KV): max diff ${fmt(d)}, argmax agrees ${agree}/${STEPS}`,
    );
    check(
      d < 1e-2 * Math.max(1, scale),
      "pooled logits match node-llama-cpp's per-sequence backend (within flash-attention noise)",
    );
    await nlcRef.free(s);

    // What the per-sequence KV of node-llama-cpp does with the same 1024 cells and 2 sequences.
    const split = await LlamaCppBackend.create({
      modelPath,
      sequences: 2,
      cellsPerSequence: CELLS / 2,
      threads,
      kvCacheType: kvType.toUpperCase(),
    });
    const a = await split.allocate();
    const msg = await split
      .prefill(
        a,
        tok1.slice(0, PREFILL1 + STEPS),
        Array.from({ length: PREFILL1 + STEPS }, (_, i) => i),
      )
      .then(() => "accepted")
      .catch((e) => e.message);
    console.log(
      `  node-llama-cpp, 2 x ${split.cellsPerSequence} cells: a sequence asking for ${PREFILL1 + STEPS} cells -> "${msg}"`,
    );
    await split.close();
  }

  if (bench) await benchmark(model, V, nlcRef);
  ctx.dispose();
  model.dispose();
  if (nlcRef) await nlcRef.close();
  console.log(process.exitCode ? "\nSOME CHECKS FAILED" : "\nall checks passed");
}

/** Per-token decode of one sequence (prompt 64, then N single-token steps). */
async function benchmark(model, V, nlcRef) {
  const N = 300;
  const PROMPT = 64;
  const next = rng(99);
  const toks = Array.from({ length: PROMPT + N }, () => next() % V);
  console.log(
    `\n3) per-token decode, one sequence, ${N} steps after a ${PROMPT}-token prompt, ${threads} threads (median / mean per token)`,
  );
  const stats = (ts) => {
    const s = [...ts].sort((a, b) => a - b);
    return `${(s[s.length >> 1] * 1e3).toFixed(1)} us / ${((ts.reduce((x, y) => x + y, 0) / ts.length) * 1e3).toFixed(1)} us`;
  };
  // flash attention left to llama.cpp's auto choice, as node-llama-cpp does, so both run the same kernels
  let ctx = await model.createContext({ contextSize: 1024, sequences: 1, batchSize: 512, threads, kvType });
  const timeAddon = async (useOut) => {
    ctx.clearAll();
    await prefill(ctx, 0, toks.slice(0, PROMPT), 0, 512, V);
    const out = new Float32Array(V);
    const ts = [];
    const tk = new Int32Array(1);
    const ps = new Int32Array(1);
    const sq = new Int32Array(1);
    const lg = Uint8Array.of(1);
    let sink = 0;
    for (let j = 0; j < N; j++) {
      tk[0] = toks[PROMPT + j];
      ps[0] = PROMPT + j;
      const t0 = performance.now();
      await ctx.decode(tk, ps, sq, lg, useOut ? out : undefined);
      sink += useOut ? out[0] : ctx.logitsView(0)[0];
      ts.push(performance.now() - t0);
    }
    return { ts, sink };
  };
  await timeAddon(true); // warm-up
  console.log(`  llama-pool addon, logits copied into a Float32Array:     ${stats((await timeAddon(true)).ts)}`);
  console.log(`  llama-pool addon, zero-copy logitsView:                  ${stats((await timeAddon(false)).ts)}`);
  ctx.dispose();
  ctx = await model.createContext({
    contextSize: 1024,
    sequences: 1,
    batchSize: 512,
    threads,
    kvType,
    flashAttention: false,
  });
  await timeAddon(true);
  console.log(`  llama-pool addon, copy, flash attention forced off:      ${stats((await timeAddon(true)).ts)}`);
  ctx.dispose();

  if (nlcRef) {
    const run = async () => {
      const s = await nlcRef.allocate();
      await nlcRef.prefill(
        s,
        toks.slice(0, PROMPT),
        Array.from({ length: PROMPT }, (_, i) => i),
      );
      const ts = [];
      for (let j = 0; j < N; j++) {
        const t0 = performance.now();
        await nlcRef.decode([{ seq: s, token: toks[PROMPT + j], position: PROMPT + j }]);
        ts.push(performance.now() - t0);
      }
      await nlcRef.free(s);
      return ts;
    };
    await run();
    console.log(`  node-llama-cpp via memento LlamaCppBackend (logits->JS): ${stats(await run())}`);

    // node-llama-cpp's public API: LlamaContextSequence.evaluate (greedy sampling in C++, token ids only).
    const { getLlama } = await import("node-llama-cpp");
    const llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: "error" });
    const m = await llama.loadModel({ modelPath });
    const c = await m.createContext({ contextSize: 1024, sequences: 1, threads, batchSize: 512 });
    const timeEval = async () => {
      const seq = c.getSequence();
      const ts = [];
      let t0 = performance.now();
      let first = true;
      for await (const _ of seq.evaluate(toks.slice(0, PROMPT), { temperature: 0 })) {
        const t = performance.now();
        if (!first) ts.push(t - t0);
        first = false;
        t0 = t;
        if (ts.length >= N) break;
      }
      seq.dispose();
      return ts;
    };
    await timeEval();
    const ts = await timeEval();
    console.log(
      `  node-llama-cpp LlamaContextSequence.evaluate (greedy):   ${stats(ts)}${ts.length < N ? ` (${ts.length} tokens)` : ""}`,
    );
    await c.dispose();
    await m.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
