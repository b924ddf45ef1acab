import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { defaultTokenizerDir, loadTokenizer } from "../src/format/tokenizer.js";
import { BLOCK_END, BLOCK_START, MEMENTO_SPECIAL_TOKENS, SUMMARY_END, SUMMARY_START } from "../src/format/tokens.js";
import {
  MEMENTO_INIT_WORDS,
  REPORT_FILE,
  addMementoTokensToCheckpoint,
  gaussian,
  type AddTokensReport,
} from "../src/model/add-tokens.js";
import { decodeFloats, dtypeSize, encodeFloats, type FloatDtype } from "../src/model/dtype.js";
import {
  INDEX_FILE,
  SafetensorsCheckpoint,
  SafetensorsWriter,
  readSafetensorsIndex,
  type TensorPlan,
} from "../src/model/safetensors.js";
import { runInProcess as cli } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";
import { xorshiftUniforms } from "./helpers/xorshift.js";

const tmp = tempDir("memento-addtok-");
afterEach(() => vi.restoreAllMocks());

const EMB = "model.embed_tokens.weight";
const HEAD = "lm_head.weight";
const QWEN3_ROWS = 151936; // Qwen3's embedding rows; its tokenizer uses ids 0..151668
const NEW_IDS = [151669, 151670, 151671, 151672];

interface FakeOptions {
  dtype: FloatDtype;
  hidden: number;
  rows?: number;
  tied: boolean;
  /** 1: model.safetensors; more: model-0000i-of-0000n.safetensors + index. */
  shards?: number;
  seed?: number;
  embeddingName?: string;
}

/**
 * A small Qwen3-shaped checkpoint (one decoder layer) with the real Qwen3 tokenizer, written by streaming so
 * large ones can be generated too. Embedding values are uniform in [-0.05, 0.05).
 */
function makeFakeQwen3(dir: string, o: FakeOptions): void {
  mkdirSync(dir, { recursive: true });
  const H = o.hidden;
  const rows = o.rows ?? QWEN3_ROWS;
  const headDim = Math.max(2, H / 2);
  const emb = o.embeddingName ?? EMB;
  const plan: TensorPlan[] = [
    { name: emb, dtype: o.dtype, shape: [rows, H] },
    { name: "model.layers.0.input_layernorm.weight", dtype: o.dtype, shape: [H] },
    { name: "model.layers.0.self_attn.q_proj.weight", dtype: o.dtype, shape: [H, H] },
    { name: "model.layers.0.self_attn.k_proj.weight", dtype: o.dtype, shape: [headDim, H] },
    { name: "model.layers.0.self_attn.v_proj.weight", dtype: o.dtype, shape: [headDim, H] },
    { name: "model.layers.0.self_attn.o_proj.weight", dtype: o.dtype, shape: [H, H] },
    { name: "model.layers.0.self_attn.q_norm.weight", dtype: o.dtype, shape: [headDim] },
    { name: "model.layers.0.self_attn.k_norm.weight", dtype: o.dtype, shape: [headDim] },
    { name: "model.layers.0.post_attention_layernorm.weight", dtype: o.dtype, shape: [H] },
    { name: "model.layers.0.mlp.gate_proj.weight", dtype: o.dtype, shape: [2 * H, H] },
    { name: "model.layers.0.mlp.up_proj.weight", dtype: o.dtype, shape: [2 * H, H] },
    { name: "model.layers.0.mlp.down_proj.weight", dtype: o.dtype, shape: [H, 2 * H] },
    { name: "model.norm.weight", dtype: o.dtype, shape: [H] },
  ];
  if (!o.tied) plan.push({ name: HEAD, dtype: o.dtype, shape: [rows, H] });
  const n = o.shards ?? 1;
  const fileOf = new Map<string, string>();
  const shardName = (i: number): string =>
    n === 1
      ? "model.safetensors"
      : `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`;
  plan.forEach((t, i) => {
    fileOf.set(t.name, shardName(t.name === emb ? 0 : t.name === HEAD ? n - 1 : i % n));
  });
  const rnd = xorshiftUniforms(o.seed ?? 1);
  for (let s = 0; s < n; s++) {
    const mine = plan.filter((t) => fileOf.get(t.name) === shardName(s));
    const w = new SafetensorsWriter(join(dir, shardName(s)), mine, { format: "pt" });
    for (const t of mine) {
      const total = t.shape.reduce((a, b) => a * b, 1);
      const chunk = 1 << 20;
      for (let at = 0; at < total; at += chunk) {
        const part = new Float32Array(Math.min(chunk, total - at));
        for (let i = 0; i < part.length; i++) part[i] = (rnd() - 0.5) * 0.1;
        w.writePart(t.name, part);
      }
    }
    w.close();
  }
  if (n > 1) {
    const idx = {
      metadata: { total_size: plan.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * dtypeSize(t.dtype), 0) },
      weight_map: Object.fromEntries(fileOf),
    };
    writeFileSync(join(dir, INDEX_FILE), JSON.stringify(idx, null, 2));
  }
  const config = {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    hidden_size: H,
    intermediate_size: 2 * H,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: headDim,
    rope_theta: 1000000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: o.tied,
    torch_dtype: o.dtype === "BF16" ? "bfloat16" : o.dtype === "F16" ? "float16" : "float32",
    vocab_size: rows,
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeFileSync(
    join(dir, "generation_config.json"),
    JSON.stringify({ do_sample: true, temperature: 0.6, top_p: 0.95, top_k: 20 }),
  );
  writeFileSync(join(dir, "pytorch_model.bin"), "stale weights");
  mkdirSync(join(dir, "subdir"));
  const tokDir = defaultTokenizerDir();
  copyFileSync(join(tokDir, "tokenizer.json"), join(dir, "tokenizer.json"));
  copyFileSync(join(tokDir, "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
}

let dirCount = 0;
function fake(o: FakeOptions): { dir: string; out: string } {
  const dir = join(tmp, `in-${dirCount}`);
  const out = join(tmp, `out-${dirCount++}`);
  makeFakeQwen3(dir, o);
  return { dir, out };
}

/** The distinct ids of the related words, encoded with and without a leading space (the documented rule). */
function wordIds(token: (typeof MEMENTO_SPECIAL_TOKENS)[number]): number[] {
  const tok = loadTokenizer();
  const ids = new Set<number>();
  for (const w of MEMENTO_INIT_WORDS[token]) for (const t of [w, ` ${w}`]) for (const i of tok.encode(t)) ids.add(i);
  return [...ids].sort((a, b) => a - b);
}

/** Row `id` of a matrix in a checkpoint, as float32 and as raw bytes. */
function row(c: SafetensorsCheckpoint, name: string, id: number): { values: Float32Array; bytes: Uint8Array } {
  const t = c.info(name);
  const rb = t.shape[1] * dtypeSize(t.dtype);
  const bytes = c.fileOf(name).readBytes(name, id * rb, (id + 1) * rb);
  return { values: decodeFloats(bytes, t.dtype as FloatDtype), bytes };
}

/** Exact expected row: float64 mean of the word rows (ascending ids), rounded to float32, stored in the dtype. */
function expectedMeanBytes(c: SafetensorsCheckpoint, name: string, ids: number[]): Uint8Array {
  const t = c.info(name);
  const acc = new Float64Array(t.shape[1]);
  for (const id of ids) {
    const r = row(c, name, id).values;
    for (let j = 0; j < acc.length; j++) acc[j] += r[j];
  }
  return encodeFloats(
    Float32Array.from(acc, (x) => x / ids.length),
    t.dtype as FloatDtype,
  );
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Checks everything that must hold for any run; returns the opened checkpoints (caller closes). */
function checkCommon(
  dir: string,
  out: string,
  r: AddTokensReport,
  matrices: string[],
): { src: SafetensorsCheckpoint; dst: SafetensorsCheckpoint } {
  const src = SafetensorsCheckpoint.open(dir);
  const dst = SafetensorsCheckpoint.open(out);
  // Same tensors in the same shards, same metadata.
  expect(dst.sharded).toBe(src.sharded);
  expect([...dst.weightMap.entries()].sort()).toEqual([...src.weightMap.entries()].sort());
  for (const f of src.files) expect(dst.file(f).header.metadata).toEqual(src.file(f).header.metadata);
  // Every other tensor byte-identical, same dtype and shape.
  for (const name of src.names()) {
    const a = src.info(name);
    const b = dst.info(name);
    expect(b.dtype).toBe(a.dtype);
    if (matrices.includes(name)) continue;
    expect(b.shape).toEqual(a.shape);
    expect(bytesEqual(src.fileOf(name).readBytes(name), dst.fileOf(name).readBytes(name))).toBe(true);
  }
  // In the updated matrices, every row other than the new ids (and padding) is byte-identical.
  for (const name of matrices) {
    const a = src.info(name);
    const rb = a.shape[1] * dtypeSize(a.dtype);
    const lo = Math.min(...NEW_IDS);
    const hi = Math.min(a.shape[0], Math.max(...NEW_IDS) + 1);
    expect(bytesEqual(src.fileOf(name).readBytes(name, 0, lo * rb), dst.fileOf(name).readBytes(name, 0, lo * rb))).toBe(
      true,
    );
    if (hi < a.shape[0]) {
      expect(
        bytesEqual(
          src.fileOf(name).readBytes(name, hi * rb),
          dst.fileOf(name).readBytes(name, hi * rb, a.shape[0] * rb),
        ),
      ).toBe(true);
    }
  }
  // The tokenizer in OUT has the markers as single ids, equal to the rows written; loading it adds nothing.
  const tok = loadTokenizer(out);
  expect(tok.addedMementoTokens).toEqual([]);
  MEMENTO_SPECIAL_TOKENS.forEach((t, i) => {
    expect(tok.encode(t)).toEqual([NEW_IDS[i]]);
    expect(r.tokens[i]).toMatchObject({ token: t, id: NEW_IDS[i], meanOf: wordIds(t) });
  });
  expect(tok.encode(`x${BLOCK_START}y${BLOCK_END}${SUMMARY_START}z${SUMMARY_END}`)).toEqual([
    ...tok.encode("x"),
    151669,
    ...tok.encode("y"),
    151670,
    151671,
    ...tok.encode("z"),
    151672,
  ]);
  // Other files: copied, stale weights and subdirectories skipped, report written.
  expect(readFileSync(join(out, "generation_config.json"), "utf8")).toBe(
    readFileSync(join(dir, "generation_config.json"), "utf8"),
  );
  expect(existsSync(join(out, "pytorch_model.bin"))).toBe(false);
  expect(r.filesSkipped).toEqual(["pytorch_model.bin", "subdir/"]);
  expect(JSON.parse(readFileSync(join(out, REPORT_FILE), "utf8"))).toEqual(JSON.parse(JSON.stringify(r)));
  return { src, dst };
}

describe("the related words", () => {
  it("are the paper's lists, and the Qwen3 ids averaged are the documented ones", () => {
    expect(MEMENTO_INIT_WORDS[BLOCK_START]).toEqual(["block", "start", "begin", "section", "step"]);
    expect(MEMENTO_INIT_WORDS[BLOCK_END]).toEqual(["block", "end", "finish", "section", "done"]);
    expect(MEMENTO_INIT_WORDS[SUMMARY_START]).toEqual(["summary", "summarize", "brief", "recap", "overview"]);
    expect(MEMENTO_INIT_WORDS[SUMMARY_END]).toEqual(["summary", "end", "finish", "done", "complete"]);
    // "block" = 4574, " block" = 2504, ...; every word is one token either way.
    expect(wordIds(BLOCK_START)).toEqual([1191, 2468, 2504, 2809, 3019, 3161, 3772, 4574, 7265, 9520]);
    // "summarize" without a space is sum|mar|ize and "recap" is rec|ap: those pieces are averaged too.
    expect(wordIds(SUMMARY_START)).toEqual([
      391, 551, 1242, 1708, 2758, 5612, 6658, 9814, 12126, 23251, 49278, 53999, 62079,
    ]);
  });
});

describe("gaussian", () => {
  it("is seeded, and standard normal", () => {
    const a = gaussian(3);
    const b = gaussian(3);
    const xs = Array.from({ length: 200_000 }, () => a());
    expect(xs.slice(0, 10)).toEqual(Array.from({ length: 10 }, () => b()));
    expect(gaussian(4)()).not.toBe(xs[0]);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(sd - 1)).toBeLessThan(0.01);
    expect(xs.filter((x) => Math.abs(x) < 1).length / xs.length).toBeCloseTo(0.6827, 2);
    expect(xs.every(Number.isFinite)).toBe(true);
  });
});

describe("memento model add-tokens (library)", () => {
  it("bf16, tied, single file, spare rows: exact means with std 0, everything else untouched", () => {
    const { dir, out } = fake({ dtype: "BF16", hidden: 8, tied: true });
    const r = addMementoTokensToCheckpoint(dir, out, { std: 0 });
    expect(r).toMatchObject({
      grown: false,
      rowsBefore: QWEN3_ROWS,
      rowsAfter: QWEN3_ROWS,
      tiedEmbeddings: true,
      lmHead: null,
      dtype: "BF16",
      tokenizerSize: 151673,
    });
    expect(readFileSync(join(out, "config.json"), "utf8")).toBe(readFileSync(join(dir, "config.json"), "utf8"));
    const { src, dst } = checkCommon(dir, out, r, [EMB]);
    try {
      expect(dst.info(EMB).shape).toEqual([QWEN3_ROWS, 8]);
      MEMENTO_SPECIAL_TOKENS.forEach((t, i) => {
        expect(bytesEqual(row(dst, EMB, NEW_IDS[i]).bytes, expectedMeanBytes(src, EMB, wordIds(t)))).toBe(true);
      });
    } finally {
      src.close();
      dst.close();
    }
  });

  it("f32, untied, sharded: both matrices get their own means; index rewritten", () => {
    const { dir, out } = fake({ dtype: "F32", hidden: 8, tied: false, shards: 3 });
    const r = addMementoTokensToCheckpoint(dir, out, { std: 0 });
    expect(r).toMatchObject({ grown: false, tiedEmbeddings: false, lmHead: HEAD, dtype: "F32" });
    expect(r.shards).toHaveLength(3);
    const { src, dst } = checkCommon(dir, out, r, [EMB, HEAD]);
    try {
      for (const m of [EMB, HEAD]) {
        MEMENTO_SPECIAL_TOKENS.forEach((t, i) => {
          expect(bytesEqual(row(dst, m, NEW_IDS[i]).bytes, expectedMeanBytes(src, m, wordIds(t)))).toBe(true);
        });
      }
      expect([...row(dst, EMB, NEW_IDS[0]).values]).not.toEqual([...row(dst, HEAD, NEW_IDS[0]).values]);
    } finally {
      src.close();
      dst.close();
    }
    const idxIn = readSafetensorsIndex(join(dir, INDEX_FILE));
    const idxOut = readSafetensorsIndex(join(out, INDEX_FILE));
    expect(idxOut.metadata).toEqual(idxIn.metadata); // same total_size: no growth
  });

  it("noise: seeded, N(0, std^2) around the exact mean (bf16, hidden 256, tied + stored lm_head keeps the tie)", () => {
    const { dir, out } = fake({ dtype: "BF16", hidden: 256, tied: false, seed: 9 });
    // A tied config that still stores lm_head.weight: the stored head must get the embedding's rows.
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, tie_word_embeddings: true }));
    const r = addMementoTokensToCheckpoint(dir, out, { std: 0.01, seed: 7 });
    expect(r).toMatchObject({ tiedEmbeddings: true, lmHead: HEAD, std: 0.01, seed: 7 });
    const src = SafetensorsCheckpoint.open(dir);
    const dst = SafetensorsCheckpoint.open(out);
    const diffs: number[] = [];
    try {
      MEMENTO_SPECIAL_TOKENS.forEach((t, i) => {
        const got = row(dst, EMB, NEW_IDS[i]);
        const mean = decodeFloats(expectedMeanBytes(src, EMB, wordIds(t)), "BF16");
        for (let j = 0; j < 256; j++) diffs.push(got.values[j] - mean[j]);
        expect(bytesEqual(row(dst, HEAD, NEW_IDS[i]).bytes, got.bytes)).toBe(true);
      });
    } finally {
      src.close();
      dst.close();
    }
    const n = diffs.length; // 1024
    const m = diffs.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(diffs.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1));
    expect(Math.abs(m)).toBeLessThan((4 * 0.01) / Math.sqrt(n)); // 4 standard errors
    expect(sd).toBeGreaterThan(0.01 * 0.9); // sd of the sample sd is ~2.2% here
    expect(sd).toBeLessThan(0.01 * 1.1);
    expect(diffs.filter((d) => Math.abs(d) < 0.01).length / n).toBeGreaterThan(0.62); // ~68% within 1 sd
    expect(diffs.filter((d) => Math.abs(d) < 0.01).length / n).toBeLessThan(0.74);

    // The same seed gives the same bytes; another seed other bytes.
    const again = addMementoTokensToCheckpoint(dir, `${out}-again`, { std: 0.01, seed: 7 });
    addMementoTokensToCheckpoint(dir, `${out}-other`, { std: 0.01, seed: 8 });
    expect(again.tokens).toEqual(r.tokens);
    const a = SafetensorsCheckpoint.open(out);
    const b = SafetensorsCheckpoint.open(`${out}-again`);
    const c = SafetensorsCheckpoint.open(`${out}-other`);
    try {
      expect(bytesEqual(row(a, EMB, NEW_IDS[2]).bytes, row(b, EMB, NEW_IDS[2]).bytes)).toBe(true);
      expect(bytesEqual(row(a, EMB, NEW_IDS[2]).bytes, row(c, EMB, NEW_IDS[2]).bytes)).toBe(false);
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });

  it("grows a full matrix to a multiple of 64 (bf16, untied, sharded): padding rows = mean of the old rows, vocab_size updated", () => {
    const rows = 151669; // exactly the ids Qwen3's tokenizer uses: no spare rows
    const { dir, out } = fake({ dtype: "BF16", hidden: 8, rows, tied: false, shards: 2 });
    const r = addMementoTokensToCheckpoint(dir, out, { std: 0, chunkBytes: 4096 });
    expect(r).toMatchObject({
      grown: true,
      rowsBefore: rows,
      rowsAfter: 151680,
      configVocabSize: { before: rows, after: 151680 },
    });
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8"))).toEqual({
      ...JSON.parse(readFileSync(join(dir, "config.json"), "utf8")),
      vocab_size: 151680,
    });
    const { src, dst } = checkCommon(dir, out, r, [EMB, HEAD]);
    try {
      for (const m of [EMB, HEAD]) {
        expect(dst.info(m).shape).toEqual([151680, 8]);
        MEMENTO_SPECIAL_TOKENS.forEach((t, i) => {
          expect(bytesEqual(row(dst, m, NEW_IDS[i]).bytes, expectedMeanBytes(src, m, wordIds(t)))).toBe(true);
        });
        const all = Array.from({ length: rows }, (_, i) => i);
        const pad = expectedMeanBytes(src, m, all);
        for (let id = 151673; id < 151680; id++) expect(bytesEqual(row(dst, m, id).bytes, pad)).toBe(true);
      }
    } finally {
      src.close();
      dst.close();
    }
    const idxOut = readSafetensorsIndex(join(out, INDEX_FILE));
    const idxIn = readSafetensorsIndex(join(dir, INDEX_FILE));
    expect(idxOut.metadata!.total_size).toBe((idxIn.metadata!.total_size as number) + 2 * 11 * 8 * 2);
  });
});

describe("memento model add-tokens (CLI)", () => {
  it("writes OUT and prints a summary; --json prints the report", async () => {
    const { dir, out } = fake({ dtype: "BF16", hidden: 8, tied: true });
    const r = await cli(["model", "add-tokens", dir, out, "--seed", "3"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("spare rows used, 151936 rows kept");
    expect(r.out).toContain("<|block_start|> id 151669 <- block, start, begin, section, step");
    const j = await cli(["model", "add-tokens", dir, `${out}-json`, "--seed", "3", "--json"]);
    expect(j.code).toBe(0);
    const report = JSON.parse(j.out) as AddTokensReport;
    expect(report.tokens.map((t) => t.id)).toEqual(NEW_IDS);
    expect(report.seed).toBe(3);
  });

  it("user errors exit 2 with one line", async () => {
    const { dir, out } = fake({ dtype: "BF16", hidden: 8, tied: true });
    const cases: [string[], RegExp][] = [];
    cases.push([[join(tmp, "nope"), join(tmp, "x1")], /no such directory/]);
    const noCfg = join(tmp, "no-config");
    mkdirSync(noCfg);
    cases.push([[noCfg, join(tmp, "x2")], /no config\.json/]);
    const noWeights = join(tmp, "no-weights");
    mkdirSync(noWeights);
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"])
      copyFileSync(join(dir, f), join(noWeights, f));
    cases.push([[noWeights, join(tmp, "x3")], /no model\.safetensors or model\.safetensors\.index\.json/]);
    const garbage = join(tmp, "garbage");
    mkdirSync(garbage);
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"])
      copyFileSync(join(dir, f), join(garbage, f));
    writeFileSync(join(garbage, "model.safetensors"), "this is not a safetensors file at all\n");
    cases.push([[garbage, join(tmp, "x4")], /not a safetensors file|not a valid safetensors file/]);
    const noEmb = fake({ dtype: "BF16", hidden: 8, tied: true, embeddingName: "transformer.wte.weight" });
    cases.push([[noEmb.dir, noEmb.out], /no embedding tensor model\.embed_tokens\.weight/]);
    const untiedNoHead = join(tmp, "untied-no-head");
    const u = fake({ dtype: "BF16", hidden: 8, tied: true });
    const cfg = JSON.parse(readFileSync(join(u.dir, "config.json"), "utf8"));
    writeFileSync(join(u.dir, "config.json"), JSON.stringify({ ...cfg, tie_word_embeddings: false }));
    cases.push([[u.dir, untiedNoHead], /tie_word_embeddings is false but the checkpoint has no lm_head\.weight/]);
    cases.push([[dir, dir], /OUT must differ from DIR/]);
    cases.push([[dir, out, "--std", "-1"], /--std/]);
    cases.push([[dir, out, "--seed", "x"], /--seed/]);
    // Non-empty OUT, then re-running on an output that already has the tokens.
    expect((await cli(["model", "add-tokens", dir, out])).code).toBe(0);
    cases.push([[dir, out], /not empty/]);
    cases.push([[out, join(tmp, "x5")], /already has the four Memento tokens/]);
    for (const [args, re] of cases) {
      const r = await cli(["model", "add-tokens", ...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err.trim().split("\n"), r.err).toHaveLength(1);
      expect(r.err).toMatch(re);
    }
    expect(existsSync(join(tmp, "x4", "model.safetensors"))).toBe(false);
  });
});
