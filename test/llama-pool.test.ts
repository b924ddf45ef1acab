/**
 * The llama.cpp backend over our shared-KV addon (native/llama-pool, LlamaPoolBackend), with the bundled toy
 * model exported to GGUF (b: the random model of test/llamacpp.test.ts, whose tolerances it mirrors):
 *   a. shared pool: two Memento-shaped replays through the ENGINE whose peaks each exceed a per-sequence
 *      share of the pool and together exceed the pool; the second one grows into cells the first one's
 *      evictions freed while the first is still running, with no preemption;
 *   b. next-token distributions and greedy output equal the reference transformer's (F32 KV, flash attention
 *      off: the exact configuration of test/llamacpp.test.ts, same 1e-4 tolerance; 2e-2 with llama.cpp's
 *      defaults), with evictions in a shared batch, and a sequence growing past a per-sequence split;
 *   c. a pool too small for the load: requests are preempted, recomputed and all finish with the output of a
 *      big pool;
 *   d. `loadServingModel({ backend: "llamacpp" })` picks the pool (and the choice rules, the fallback warning);
 *      the server answers the README's toy prompt like the reference backend;
 *   e. guard: the versions the addon was built against and the unified KV it creates.
 * Skipped (with the reason printed) when the addon is not built or cannot load here.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadGpuBackends, loadLlamaPool } from "../native/llama-pool/index.mjs";
import { chooseLlamaPoolDevice, LlamaPoolBackend } from "../src/engine/backends/llama-pool.js";
import { NODE_LLAMA_CPP_VERSION } from "../src/engine/backends/llamacpp.js";
import { ReferenceBackend } from "../src/engine/backends/reference.js";
import { createEngine } from "../src/engine/engine.js";
import {
  BACKEND_CAPABILITIES,
  bundledModelDir,
  cachedGgufExport,
  chooseLlamaCppBackend,
  loadServingModel,
} from "../src/engine/load.js";
import type { EngineRequest } from "../src/engine/types.js";
import { UserError } from "../src/errors.js";
import { startServer } from "../src/server/index.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { renderSftPrompt } from "../src/train/sft-data.js";
import { argmax, decodeOnBoth, exportToyGguf, maxStreamProbDiff, peakedToyModel, ProbDiffs } from "./helpers/llama.js";
import { tempDir } from "./helpers/tmp.js";

const addon = loadLlamaPool();
if (!addon.ok) console.warn(`skipping the llama-pool backend tests: ${addon.reason}`);

const tok = toyTokenizer();
const S = tok.specialTokens;
const GREEDY = { temperature: 0, topP: 1, topK: 0, minP: 0 };

/** Deterministic filler text of the toy alphabet. */
function filler(n: number, seed: number): string {
  const letters = "0123456789+= ";
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return letters[s % letters.length];
  }).join("");
}

/** A toy chat prompt and a Memento-shaped completion: one block per entry of `blocks` (its content length). */
function mementoReplay(problem: string, blocks: number[]): { prompt: number[]; completion: number[] } {
  let c = "<think>";
  blocks.forEach((n, i) => {
    c += `<|block_start|>${filler(n, i + 7)}<|block_end|><|summary_start|>${filler(6, i)}<|summary_end|>`;
  });
  c += `</think>${filler(4, 3)}`;
  return { prompt: tok.encode(renderSftPrompt(problem)), completion: tok.encode(c) };
}

function replayRequest(r: { prompt: number[]; completion: number[] }, id: string): EngineRequest {
  return {
    id,
    promptTokens: r.prompt,
    replayTokens: r.completion,
    sampling: { ...GREEDY, maxTokens: r.completion.length },
  };
}

describe.skipIf(!addon.ok)("llama.cpp backend over the shared-KV addon (LlamaPoolBackend)", () => {
  let gguf: string;
  const random = peakedToyModel(5); // test/llamacpp.test.ts's model
  const randomGguf = join(tempDir("memento-llama-pool-"), "random.gguf");

  beforeAll(() => {
    gguf = cachedGgufExport(bundledModelDir());
    exportToyGguf(random, randomGguf);
  }, 60_000);

  it("a. two requests share the pool: the second grows into cells the first one's evictions freed", async () => {
    const backend = await LlamaPoolBackend.create({ modelPath: gguf, sequences: 2, cells: 512, threads: 1 });
    const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 512 });
    try {
      const cells = backend.kvCapacityTokens;
      expect(cells).toBe(512);
      expect(backend.maxSequences).toBe(2);
      const perSequenceShare = cells / backend.maxSequences; // what node-llama-cpp's layout would give each
      // R1: one big block early, then small ones (it runs longest); R2: small blocks, then one big block late.
      const r1 = mementoReplay("s=1111 k=2", [280, 40, 40, 40, 40, 40, 40, 40, 40, 40]);
      const r2 = mementoReplay("s=2222 k=3", [60, 60, 60, 60, 60, 290]);
      expect(r1.completion.length).toBeGreaterThan(r2.completion.length + 50);
      const [a, b] = await Promise.all([
        engine.submit(replayRequest(r1, "r1")).result(),
        engine.submit(replayRequest(r2, "r2")).result(),
      ]);
      for (const [r, src] of [
        [a, r1],
        [b, r2],
      ] as const) {
        expect(r.finishReason, r.message).toBe("stop");
        expect(r.tokens).toEqual(src.completion);
        expect(r.stats.preemptions).toBe(0);
        expect(r.stats.evictions).toBeGreaterThan(0);
      }
      // Each peak is beyond a per-sequence share, together beyond the pool: R2 reached its peak (at its last
      // block, while R1 was still running) only in cells R1 had freed.
      expect(a.stats.peakKvTokens).toBeGreaterThan(perSequenceShare);
      expect(b.stats.peakKvTokens).toBeGreaterThan(perSequenceShare);
      expect(a.stats.peakKvTokens + b.stats.peakKvTokens).toBeGreaterThan(cells);
      const st = engine.stats();
      expect(st.peakRunning).toBe(2);
      expect(st.peakKvUsedTokens).toBeLessThanOrEqual(cells);
      expect(backend.peakUsedCells).toBe(st.peakKvUsedTokens);
      expect(backend.peakUsedCells).toBeLessThanOrEqual(cells);
      expect(backend.poolStats()).toMatchObject({ cells, used: 0, free: cells });
      console.log(
        `shared pool of ${cells}: peaks ${a.stats.peakKvTokens} + ${b.stats.peakKvTokens}, pool peak ${backend.peakUsedCells}`,
      );
    } finally {
      await engine.close();
    }
  }, 60_000);

  it("b. matches the reference transformer's distributions with evictions in a shared batch, and greedy output", async () => {
    const llama = await LlamaPoolBackend.create({
      modelPath: randomGguf,
      sequences: 2,
      cells: 512,
      threads: 1,
      kvCacheType: "F32",
      flashAttention: false,
      verifyCells: true,
    });
    try {
      const ref = new ReferenceBackend(random);
      const r = mementoReplay("s=3714 k=5", [40, 40, 40, 40, 40, 40]);
      const prompt = r.prompt;
      const stream = [...r.prompt, ...r.completion];
      // A evicts each block after its memento; B never evicts and goes past a per-sequence share (256).
      const rA = await ref.allocate();
      const rB = await ref.allocate();
      const lA = await llama.allocate();
      const lB = await llama.allocate();
      const diffs = new ProbDiffs(1e-4);
      const compare = diffs.compare;
      const positions = prompt.map((_, i) => i);
      compare(await ref.prefill(rA, prompt, positions), await llama.prefill(lA, prompt, positions));
      compare(await ref.prefill(rB, prompt, positions), await llama.prefill(lB, prompt, positions));
      let blockStart = -1;
      let blockEnd = -1;
      let evictions = 0;
      for (let p = prompt.length; p < stream.length; p++) {
        const t = stream[p];
        const [[refA, refB], [llA, llB]] = await decodeOnBoth(ref, llama, [rA, rB], [lA, lB], t, p);
        compare(refA, llA);
        compare(refB, llB);
        if (t === S.blockStart) blockStart = p;
        if (t === S.blockEnd) blockEnd = p;
        if (t === S.summaryEnd) {
          const freed = await llama.evict(lA, blockStart + 1, blockEnd);
          expect(freed).toBe(await ref.evict(rA, blockStart + 1, blockEnd));
          expect(freed).toBe(blockEnd - blockStart - 1);
          evictions++;
        }
        expect(llama.residentTokens(lA)).toBe(ref.residentTokens(rA));
        expect(llama.residentTokens(lB)).toBe(ref.residentTokens(rB));
      }
      expect(evictions).toBe(6);
      expect(llama.residentTokens(lB)).toBe(stream.length);
      expect(stream.length).toBeGreaterThan(llama.kvCapacityTokens / llama.maxSequences);
      expect(llama.residentPositions(lA)).toEqual(Array.from(ref.residentPositions(rA)));
      expect(llama.positionRange(lA)).toEqual({ min: 0, max: stream.length - 1 });
      expect(llama.usedCells).toBe(ref.totalResidentTokens);
      await llama.free(lB);
      await ref.free(rB);

      // Greedy continuation of A on each backend (each feeds its own argmax; a view is read before the next call).
      let refLogits = (await ref.decode([{ seq: rA, token: S.eos ?? 0, position: stream.length }]))[0];
      let llLogits = (await llama.decode([{ seq: lA, token: S.eos ?? 0, position: stream.length }]))[0];
      compare(refLogits, llLogits);
      const outRef: number[] = [];
      const outLl: number[] = [];
      for (let i = 0, pos = stream.length + 1; i < 30; i++, pos++) {
        outRef.push(argmax(refLogits));
        outLl.push(argmax(llLogits));
        refLogits = (await ref.decode([{ seq: rA, token: outRef[i], position: pos }]))[0];
        llLogits = (await llama.decode([{ seq: lA, token: outLl[i], position: pos }]))[0];
      }
      expect(outLl).toEqual(outRef);
      console.log(
        `pool vs reference: ${diffs.compared} distributions, max |dp| = ${diffs.worst.toExponential(2)}; greedy ids ${outRef.join(",")}`,
      );
      await llama.free(lA);
      expect(llama.poolStats().used).toBe(0);
    } finally {
      await llama.close();
    }
  }, 60_000);

  it("b. stays within 2e-2 with llama.cpp's defaults (F16 KV cache, flash attention auto)", async () => {
    const llama = await LlamaPoolBackend.create({ modelPath: randomGguf, sequences: 1, cells: 512, threads: 1 });
    try {
      const ref = new ReferenceBackend(random);
      const { prompt, completion } = mementoReplay("s=3714 k=5", [40, 40, 40, 40]);
      const worst = await maxStreamProbDiff(ref, llama, prompt, completion);
      console.log(`pool, default llama.cpp settings: max |dp| = ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(2e-2);
    } finally {
      await llama.close();
    }
  });

  it("b. refuses a token past a full pool, and positions that do not continue a sequence", async () => {
    const llama = await LlamaPoolBackend.create({ modelPath: gguf, sequences: 2, cells: 256, threads: 1 });
    try {
      const a = await llama.allocate();
      const b = await llama.allocate();
      const fill = (n: number) => Array.from({ length: n }, (_, i) => 20 + (i % 50));
      await llama.prefill(
        a,
        fill(200),
        fill(200).map((_, i) => i),
      );
      await llama.prefill(
        b,
        fill(56),
        fill(56).map((_, i) => i),
      );
      expect(llama.usedCells).toBe(256);
      await expect(llama.decode([{ seq: b, token: 20, position: 56 }])).rejects.toThrow(/pool full/);
      await expect(llama.decode([{ seq: b, token: 20, position: 60 }])).rejects.toThrow(/requires 56/);
      expect(await llama.evict(a, 10, 110)).toBe(100);
      // b grows into a's freed cells, past 128 (a per-sequence split of 256 cells)
      await llama.prefill(
        b,
        fill(100),
        fill(100).map((_, i) => 56 + i),
      );
      expect(llama.residentTokens(b)).toBe(156);
      expect(llama.poolStats()).toMatchObject({ used: 256, free: 0, perSequence: [100, 156] });
    } finally {
      await llama.close();
    }
  });

  /**
   * The toy problems answered greedily at once on a fresh pool of `cells` (F32 KV, flash attention off), the
   * engine's KV budget the pool; optionally a per-step token budget.
   */
  async function answerAll(problems: string[], cells: number, maxTokens: number, maxStepTokens?: number) {
    const backend = await LlamaPoolBackend.create({
      modelPath: gguf,
      sequences: problems.length,
      cells,
      threads: 1,
      kvCacheType: "F32",
      flashAttention: false,
    });
    const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: cells, maxStepTokens });
    try {
      const results = await Promise.all(
        problems.map((p, i) =>
          engine
            .submit({ id: `p${i}`, promptTokens: tok.encode(renderSftPrompt(p)), sampling: { ...GREEDY, maxTokens } })
            .result(),
        ),
      );
      expect(backend.peakUsedCells).toBeLessThanOrEqual(backend.kvCapacityTokens);
      const st = engine.stats();
      return { results, steps: st.steps, preemptions: st.preemptions, calls: backend.decodeCalls };
    } finally {
      await engine.close();
    }
  }

  it("c. preempts and recomputes when the pool runs out; every request ends as with a big pool", async () => {
    const problems = ["s=3714 k=5", "s=1234 k=4", "s=9051 k=4", "s=2718 k=5", "s=5555 k=3", "s=8080 k=4"];
    const big = await answerAll(problems, 4096, 600);
    const small = await answerAll(problems, 512, 600); // their peaks sum to ~850 cells
    expect(big.preemptions).toBe(0);
    expect(small.preemptions).toBeGreaterThan(0);
    for (let i = 0; i < problems.length; i++) {
      const [s, g] = [small.results[i], big.results[i]];
      expect(s.finishReason, s.message).toBe("stop");
      expect(g.finishReason).toBe("stop");
      expect(s.tokens).toEqual(g.tokens);
      expect(s.stats.peakKvTokens).toBe(g.stats.peakKvTokens);
    }
    const recomputed = small.results.reduce((n, r) => n + r.stats.recomputedTokens, 0);
    expect(recomputed).toBeGreaterThan(0);
    console.log(
      `pool of 512: ${small.preemptions} preemptions, ${recomputed} tokens recomputed; answers ${JSON.stringify(small.results.map((r) => r.text.slice(-12)))}`,
    );
  }, 60_000);

  it("c. chunked prefill: one llama_decode per engine step; a small step budget ends every request as a big one", async () => {
    const problems = ["s=3714 k=5", "s=1234 k=4", "s=9051 k=4", "s=2718 k=5"];
    const wide = await answerAll(problems, 4096, 400);
    const chunked = await answerAll(problems, 4096, 400, 8); // prompts of ~20 tokens: 2-3 chunks each, beside the others' decode rows
    const tight = await answerAll(problems, 256, 400, 8); // and preemptions, rebuilt in chunks with their evictions in between
    expect(wide.calls).toBe(wide.steps);
    expect(chunked.calls).toBe(chunked.steps);
    expect(chunked.steps).toBeGreaterThan(wide.steps);
    expect(tight.preemptions).toBeGreaterThan(0);
    for (let i = 0; i < problems.length; i++) {
      expect(chunked.results[i].tokens).toEqual(wide.results[i].tokens);
      expect(tight.results[i].finishReason, tight.results[i].message).toBe(wide.results[i].finishReason);
      expect(tight.results[i].tokens).toEqual(wide.results[i].tokens);
    }
    console.log(
      `chunked prefill on the pool: ${wide.steps} steps (budget 512), ${chunked.steps} (budget 8), ${tight.steps} with ${tight.preemptions} preemptions (256 cells)`,
    );
  }, 60_000);

  it("c. forces <|block_end|> at maxBlockTokens and stops at a stop string on this backend", async () => {
    const backend = await LlamaPoolBackend.create({ modelPath: gguf, sequences: 2, cells: 1024, threads: 1 });
    const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 1024 });
    try {
      const prompt = tok.encode(renderSftPrompt("s=3714 k=5"));
      const forced = await engine
        .submit({ promptTokens: prompt, sampling: { ...GREEDY, maxTokens: 120 }, masking: { maxBlockTokens: 8 } })
        .result();
      expect(forced.stats.forcedBlockEnds).toBeGreaterThan(0);
      // No block holds more than 8 tokens between its markers.
      const blocks = forced.text.split("<|block_start|>").slice(1);
      for (const b of blocks.map((x) => x.split("<|block_end|>")[0]))
        expect(tok.encode(b).length).toBeLessThanOrEqual(8);
      const stopped = await engine
        .submit({ promptTokens: prompt, sampling: { ...GREEDY, maxTokens: 400, stop: ["<|summary_end|>"] } })
        .result();
      expect(stopped.finishReason).toBe("stop");
      expect(stopped.stopReason).toBe("<|summary_end|>");
      expect(stopped.text).toContain("<|summary_start|>");
      expect(stopped.text).not.toContain("<|summary_end|>");
    } finally {
      await engine.close();
    }
  }, 60_000);

  it("d. loadServingModel picks the shared pool for llamacpp, and the server answers like the reference", async () => {
    const warnings: string[] = [];
    const m = await loadServingModel({
      modelDir: bundledModelDir(),
      backend: "llamacpp",
      llamacpp: { sequences: 2, cellsPerSequence: 256, threads: 1, kvCacheType: "F32", flashAttention: false },
      onWarning: (w) => warnings.push(w),
    });
    expect(warnings).toEqual([]);
    expect(m.capabilities).toEqual({
      restartMode: false,
      unifiedKvPool: true,
      limitations: { restartMode: "llama.cpp cannot rewrite a memento after its evicted block" },
    });
    expect(BACKEND_CAPABILITIES.llamacpp).toBe(m.capabilities);
    expect(m.engine.backend).toBeInstanceOf(LlamaPoolBackend);
    expect(m.engine.budget.total).toBe(512); // sequences x cells-per-sequence, in one pool
    const chat = async (backend: "llamacpp" | "reference", engine: typeof m.engine): Promise<string> => {
      const server = await startServer({
        engine,
        tokenizer: m.tokenizer,
        modelName: "toy",
        maxModelLen: m.maxModelLen,
        backendName: backend,
        port: 0,
        ownsEngine: true,
        defaultMetrics: false,
      });
      try {
        const r = await fetch(`${server.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "toy",
            messages: [{ role: "user", content: "s=3714 k=5" }],
            temperature: 0,
          }),
        });
        expect(r.status).toBe(200);
        const body = (await r.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
        expect(body.choices[0].finish_reason).toBe("stop");
        return body.choices[0].message.content;
      } finally {
        await server.close();
      }
    };
    const text = await chat("llamacpp", m.engine);
    const ref = await loadServingModel({ modelDir: bundledModelDir(), backend: "reference" });
    expect(text).toBe(await chat("reference", ref.engine));
    expect(text.length).toBeGreaterThan(0);
  }, 60_000);

  it("d. sharedPool off serves node-llama-cpp's per-sequence KV, silently", async () => {
    const warnings: string[] = [];
    const m = await loadServingModel({
      modelDir: bundledModelDir(),
      backend: "llamacpp",
      llamacpp: { sequences: 2, cellsPerSequence: 256, threads: 1, sharedPool: "off" },
      onWarning: (w) => warnings.push(w),
    });
    try {
      expect(warnings).toEqual([]);
      expect(m.capabilities.unifiedKvPool).toBe(false);
      expect(m.engine.backend.name).toBe("llama.cpp");
      expect(m.engine.budget.total).toBe(512);
    } finally {
      await m.engine.close();
    }
  }, 60_000);

  it("e. guard: node-llama-cpp 3.22.1, the addon built against its llama.cpp release, a unified KV pool", async () => {
    if (!addon.ok) return;
    // node_modules/node-llama-cpp (its "exports" hide package.json): the directory above its resolved entry's dist/
    const root = dirname(dirname(createRequire(import.meta.url).resolve("node-llama-cpp")));
    const json = (file: string) => JSON.parse(readFileSync(join(root, file), "utf8"));
    const pkg = json("package.json") as { name: string; version: string };
    expect(pkg.name).toBe("node-llama-cpp");
    expect(pkg.version).toBe("3.22.1");
    expect(NODE_LLAMA_CPP_VERSION).toBe(pkg.version);
    const release = (json("llama/llama.cpp.info.json") as { tag: string }).tag;
    expect(addon.build.llamaCppRelease).toBe(release);
    expect(addon.build.nodeLlamaCpp).toBe(pkg.version);
    expect(addon.runtime.llamaVersion.split("-")[0]).toBe(addon.runtime.expectedLlamaVersion);
    const m = await addon.binding.loadModel(gguf, { gpuLayers: 0 });
    const ctx = await m.createContext({ contextSize: 512, sequences: 2, threads: 1 });
    try {
      const info = ctx.info();
      expect(info.kvUnified).toBe(true);
      expect(info.cells).toBe(512);
      // unified: one sequence may hold every cell of the context
      expect(info.cellsPerSequenceLimit).toBe(512);
    } finally {
      ctx.dispose();
      m.dispose();
    }
  });
});

describe.skipIf(!addon.ok)("gpu auto: node-llama-cpp's GPU build when the machine has one", () => {
  it("tries CUDA then Vulkan; without a GPU the layers stay on the CPU and say why; with one, all go to it", async () => {
    const off = chooseLlamaPoolDevice({ gpu: false });
    expect(off).toEqual({ device: "CPU", gpuLayers: 0 });
    const auto = chooseLlamaPoolDevice({ gpu: "auto" });
    const found = loadGpuBackends();
    expect(found.tried[0]?.backend).toBe("cuda"); // then vulkan, unless CUDA found a GPU
    if (found.gpuDevices.length === 0) {
      // This machine (CI: no GPU): each GPU backend's dlopen failure is the reason, in one line, off stderr.
      expect(auto).toMatchObject({ device: "CPU", gpuLayers: 0 });
      expect(auto.noGpuReason).toMatch(/^cuda: .+; vulkan: .+$/);
      expect(auto.noGpuReason).not.toContain("load_backend");
      expect(auto.noGpuReason).not.toContain("\n");
      console.log(`gpu auto here: CPU (${auto.noGpuReason})`);
    } else {
      expect(auto.gpuLayers).toBe(-1);
      expect(auto.device).not.toBe("CPU");
      console.log(`gpu auto here: ${auto.device}`);
    }
    // Either way the backend serves, and greedy tokens match the CPU-only backend's (toy model, F32 KV).
    const greedy = async (gpu: false | "auto") => {
      const backend = await LlamaPoolBackend.create({
        modelPath: cachedGgufExport(bundledModelDir()),
        sequences: 1,
        cells: 512,
        threads: 1,
        kvCacheType: "F32",
        gpu,
      });
      const engine = createEngine({ backend, tokenizer: tok, kvBudgetTokens: 512 });
      try {
        const r = await engine
          .submit({ promptTokens: tok.encode(renderSftPrompt("s=3714 k=5")), sampling: { ...GREEDY, maxTokens: 200 } })
          .result();
        return { tokens: r.tokens, device: backend.device };
      } finally {
        await engine.close();
      }
    };
    const [cpu, picked] = [await greedy(false), await greedy("auto")];
    expect(cpu.device).toBe("CPU");
    expect(picked.device).toBe(auto.device);
    expect(picked.tokens).toEqual(cpu.tokens);
  }, 60_000);
});

describe("choosing the llama.cpp implementation", () => {
  const missing = { ok: false as const, reason: "llama-pool addon not built (run: node native/build.mjs)" };

  it("auto: the pool when the addon loads, else node-llama-cpp with one warning line saying what is lost", () => {
    expect(chooseLlamaCppBackend("auto", { ok: true })).toEqual({ sharedPool: true });
    const c = chooseLlamaCppBackend("auto", missing);
    expect(c.sharedPool).toBe(false);
    expect(c.warning).toBe(
      "memento: warning: native shared-KV addon unavailable (llama-pool addon not built (run: node native/build.mjs)); " +
        "llama.cpp runs with per-sequence KV (cells freed by one request cannot serve another)",
    );
    expect(c.warning).not.toContain("\n");
  });

  it("on requires the addon (one-line UserError); off never uses it; other modes are refused", () => {
    expect(chooseLlamaCppBackend("on", { ok: true })).toEqual({ sharedPool: true });
    expect(() => chooseLlamaCppBackend("on", missing)).toThrow(UserError);
    expect(() => chooseLlamaCppBackend("on", missing)).toThrow(
      "--shared-pool on: the native shared-KV addon is unavailable (llama-pool addon not built (run: node native/build.mjs))",
    );
    expect(chooseLlamaCppBackend("off", { ok: true })).toEqual({ sharedPool: false });
    expect(() => chooseLlamaCppBackend("yes", { ok: true })).toThrow(/--shared-pool: expected one of auto, on, off/);
  });

  it("the capabilities table describes the implementation auto picks here", () => {
    expect(BACKEND_CAPABILITIES.llamacpp.unifiedKvPool).toBe(addon.ok);
    expect(BACKEND_CAPABILITIES.llamacpp.restartMode).toBe(false);
  });
});
