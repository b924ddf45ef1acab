/**
 * `memento model add-tokens`: adds the four Memento markers to a Hugging Face safetensors checkpoint and its
 * tokenizer, streaming the weights so that a multi-GB checkpoint never sits whole in memory.
 *
 * Exactly what it does:
 *   1. Tokenizer: DIR's tokenizer.json/tokenizer_config.json get the markers as special added tokens
 *      (src/format/tokenizer.ts; next free ids in the order block_start, block_end, summary_start, summary_end;
 *      Qwen3: 151669-151672) and are written to OUT. An added_tokens.json in DIR (slow tokenizers) gets them too.
 *   2. Rows: a marker needs a row when the input tokenizer lacked it (or its id is past the matrix). If the
 *      embedding matrix already has a row for every new id (Qwen3: 151936 rows > 151673 ids in use), those
 *      spare rows are overwritten and the shape and config.json's vocab_size are kept. Otherwise the matrix
 *      grows to the next multiple of 64 above the largest new id (the padding Hugging Face's
 *      `pad_to_multiple_of=64` gives; GPUs prefer it), config.json's vocab_size is set to that, and the
 *      padding rows that no token uses are set to the mean of all the old rows of that matrix.
 *   3. Initial value of a marker's row, per matrix (embedding `model.embed_tokens.weight`, and the output head
 *      `lm_head.weight` when present in the checkpoint):
 *        - its related words (MEMENTO_INIT_WORDS, from the paper) are each tokenised twice, as `word` and
 *          as ` word` (with a leading space, the form they take inside a sentence with a byte-level BPE);
 *        - the row is the arithmetic mean of the rows of the DISTINCT token ids among all those encodings
 *          (summed in float64 in ascending id order, rounded to float32),
 *        - plus independent N(0, std^2) noise per element (std 0.01 by default), drawn from a seeded PRNG
 *          (a Weyl sequence through a 32-bit avalanche mix, turned into normals by Box-Muller), in the order:
 *          embedding rows first (markers in id order, elements in order), then the output head's rows;
 *        - then stored in the tensor's own dtype (BF16/F16 rounded to nearest even).
 *      When the embeddings are tied (config.tie_word_embeddings) and the checkpoint still stores lm_head.weight,
 *      that copy gets exactly the embedding's new rows so the tie holds. When they are not tied, lm_head.weight
 *      must exist and gets its own mean (of its rows) and its own noise.
 *   4. Every other tensor is copied byte for byte, in chunks (positioned reads and writes), into the same
 *      shard layout (same file names, same tensors per shard, same __metadata__); the index's total_size is
 *      recomputed. The updated matrices are streamed in chunks too, so peak memory is about one chunk
 *      (16 MiB by default) plus the tokenizer, whatever the checkpoint size.
 *   5. Other top-level files (generation_config.json, vocab.json, merges.txt, README.md, ...) are copied;
 *      weights in other formats (*.bin, *.pt, *.pth, *.ckpt, *.h5, *.msgpack, *.gguf, *.onnx) would be stale
 *      and are skipped, as are subdirectories and dot-files. A report (`memento_add_tokens.json`) lists the new
 *      ids, the words and token ids each row was averaged from, and what was written, copied and skipped.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { loadTokenizer, type MementoTokenizer } from "../format/tokenizer.js";
import { BLOCK_END, BLOCK_START, MEMENTO_SPECIAL_TOKENS, SUMMARY_END, SUMMARY_START } from "../format/tokens.js";
import { dtypeSize, encodeFloats, isFloatDtype, type FloatDtype } from "./dtype.js";
import {
  INDEX_FILE,
  SafetensorsCheckpoint,
  SafetensorsWriter,
  tensorByteLength,
  writeSafetensorsIndex,
  type SafetensorsFile,
  type TensorPlan,
} from "./safetensors.js";

/** The related words whose embeddings initialise each marker (reference README / paper). */
export const MEMENTO_INIT_WORDS: Readonly<Record<(typeof MEMENTO_SPECIAL_TOKENS)[number], readonly string[]>> = {
  [BLOCK_START]: ["block", "start", "begin", "section", "step"],
  [BLOCK_END]: ["block", "end", "finish", "section", "done"],
  [SUMMARY_START]: ["summary", "summarize", "brief", "recap", "overview"],
  [SUMMARY_END]: ["summary", "end", "finish", "done", "complete"],
};

export const DEFAULT_EMBEDDING = "model.embed_tokens.weight";
export const DEFAULT_LM_HEAD = "lm_head.weight";
export const REPORT_FILE = "memento_add_tokens.json";
/** New matrices are padded to a multiple of this many rows when they must grow. */
export const VOCAB_PAD_MULTIPLE = 64;

const SKIP_WEIGHT_EXT = [".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx", ".safetensors"];
const HANDLED_FILES = new Set([
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "added_tokens.json",
  INDEX_FILE,
  "model.safetensors",
]);

// ------------------------------------------------------------------------------------------------------------
// Seeded normal noise

/** Uniform numbers in [0, 1) from a 32-bit seed: a Weyl sequence (step 0x9e3779b9) through a 32-bit avalanche mix. */
export function uniform32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

/** Standard normal numbers from a seed (Box-Muller: two uniforms give two normals; the second is kept for the next call). */
export function gaussian(seed: number): () => number {
  const u = uniform32(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u1 = 1 - u(); // (0, 1], so the log is finite
    const u2 = u();
    const r = Math.sqrt(-2 * Math.log(u1));
    spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
}

// ------------------------------------------------------------------------------------------------------------
// Word tokens

export interface WordForm {
  /** The text encoded: the word, or the word with a leading space. */
  text: string;
  ids: number[];
  tokens: string[];
}

export interface MarkerInit {
  token: string;
  id: number;
  words: string[];
  forms: WordForm[];
  /** The distinct token ids (ascending) whose rows are averaged. */
  meanOf: number[];
}

/** Encodes each word as `word` and ` word` and collects the distinct ids (ascending). */
export function markerInit(tok: MementoTokenizer, token: string, id: number, words: readonly string[]): MarkerInit {
  const forms: WordForm[] = [];
  const ids = new Set<number>();
  for (const w of words) {
    for (const text of [w, ` ${w}`]) {
      const e = tok.encode(text);
      forms.push({ text, ids: e, tokens: tok.tokenize(text) });
      for (const i of e) ids.add(i);
    }
  }
  return { token, id, words: [...words], forms, meanOf: [...ids].sort((a, b) => a - b) };
}

// ------------------------------------------------------------------------------------------------------------
// The command

export interface AddTokensOptions {
  /** PRNG seed for the noise (default 0). */
  seed?: number;
  /** Standard deviation of the noise (default 0.01; 0 gives the exact means). */
  std?: number;
  /** Embedding tensor name (default model.embed_tokens.weight). */
  embedding?: string;
  /** Output-head tensor name (default lm_head.weight). */
  lmHead?: string;
  /** Allow a non-empty OUT directory (files there are overwritten). */
  force?: boolean;
  /** Bytes per streamed chunk (default 16 MiB; at least one row). */
  chunkBytes?: number;
  /** Called after each weight file is written. */
  onFile?: (file: string, bytes: number) => void;
}

export interface AddTokensReport {
  source: string;
  output: string;
  seed: number;
  std: number;
  tiedEmbeddings: boolean;
  embedding: string;
  /** The output head updated, or null (tied and not stored). */
  lmHead: string | null;
  dtype: string;
  hiddenSize: number;
  rowsBefore: number;
  rowsAfter: number;
  /** Whether the matrices grew (else spare rows were used). */
  grown: boolean;
  configVocabSize: { before: number | null; after: number | null };
  /** Tokenizer size (ids in use) after adding the markers. */
  tokenizerSize: number;
  tokens: MarkerInit[];
  /** Markers the input tokenizer already had (they keep their ids; rows are initialised only if missing). */
  alreadyInTokenizer: string[];
  shards: string[];
  tensorsCopied: number;
  filesCopied: string[];
  filesSkipped: string[];
}

function readConfig(dir: string): { raw: string; json: Record<string, unknown> } {
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new UserError(`${dir}: no config.json (not a Hugging Face checkpoint directory)`);
  const raw = readFileSync(path, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message.replace(/\s+/g, " ")})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new UserError(`${path}: expected a JSON object`);
  return { raw, json: json as Record<string, unknown> };
}

/** New values of the updated rows of one matrix: target id -> row, plus the padding row when growing. */
interface RowPlan {
  rows: Map<number, Float32Array>;
  padding: Float32Array | undefined;
}

/** Float64 mean of the given rows of a matrix. */
function meanRows(f: SafetensorsFile, name: string, ids: readonly number[], hidden: number): Float64Array {
  const acc = new Float64Array(hidden);
  for (const id of ids) {
    const row = f.readRow(name, id);
    for (let j = 0; j < hidden; j++) acc[j] += row[j];
  }
  for (let j = 0; j < hidden; j++) acc[j] /= ids.length;
  return acc;
}

/** Float64 mean of all rows of a matrix, streamed in chunks. */
function meanAllRows(f: SafetensorsFile, name: string, rows: number, hidden: number, chunkRows: number): Float32Array {
  const acc = new Float64Array(hidden);
  for (let r0 = 0; r0 < rows; r0 += chunkRows) {
    const r1 = Math.min(rows, r0 + chunkRows);
    const block = f.readElements(name, r0 * hidden, (r1 - r0) * hidden);
    for (let r = 0; r < r1 - r0; r++) for (let j = 0; j < hidden; j++) acc[j] += block[r * hidden + j];
  }
  const out = new Float32Array(hidden);
  for (let j = 0; j < hidden; j++) out[j] = acc[j] / rows;
  return out;
}

/**
 * Adds the Memento tokens to the checkpoint in `dir`, writing the result to `out`. See the module comment for
 * the exact rules. Returns (and writes to OUT/memento_add_tokens.json) the report.
 */
export function addMementoTokensToCheckpoint(
  dirArg: string,
  outArg: string,
  opts: AddTokensOptions = {},
): AddTokensReport {
  const dir = resolve(dirArg);
  const out = resolve(outArg);
  const seed = opts.seed ?? 0;
  const std = opts.std ?? 0.01;
  const chunkBytes = opts.chunkBytes ?? 16 << 20;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new UserError(`--seed must be an integer in [0, 2^32), got ${seed}`);
  if (!Number.isFinite(std) || std < 0) throw new UserError(`--std must be a finite number >= 0, got ${std}`);

  if (!existsSync(dir)) throw new UserError(`${dir}: no such directory`);
  if (!statSync(dir).isDirectory()) throw new UserError(`${dir}: not a directory`);
  if (out === dir) throw new UserError(`OUT must differ from DIR (${dir}); the checkpoint is not modified in place`);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new UserError(`${out}: exists and is not a directory`);
    if (!opts.force && readdirSync(out).length > 0)
      throw new UserError(`${out}: directory is not empty (use --force to write into it)`);
  }

  const config = readConfig(dir);
  if (!existsSync(join(dir, "tokenizer.json"))) throw new UserError(`${dir}: no tokenizer.json`);
  const tok = loadTokenizer(dir);
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const embName = opts.embedding ?? DEFAULT_EMBEDDING;
    const headName = opts.lmHead ?? DEFAULT_LM_HEAD;
    if (!ckpt.has(embName)) {
      throw new UserError(`${dir}: no embedding tensor ${embName} in the checkpoint (use --embedding NAME)`);
    }
    const emb = ckpt.info(embName);
    if (emb.shape.length !== 2)
      throw new UserError(`${dir}: ${embName} has shape ${JSON.stringify(emb.shape)}, expected [vocab, hidden]`);
    if (!isFloatDtype(emb.dtype))
      throw new UserError(`${dir}: ${embName} has dtype ${emb.dtype}; expected F32, F16 or BF16`);
    const [rows, hidden] = emb.shape;
    const tiedCfg = config.json.tie_word_embeddings;
    const hasHead = ckpt.has(headName);
    // Hugging Face's default for a config without the key is tied; a stored head then means untied in practice.
    const tied = typeof tiedCfg === "boolean" ? tiedCfg : !hasHead;
    if (!tied && !hasHead) {
      throw new UserError(
        `${dir}: tie_word_embeddings is false but the checkpoint has no ${headName} (use --lm-head NAME)`,
      );
    }
    if (hasHead) {
      const h = ckpt.info(headName);
      if (h.shape.length !== 2 || h.shape[0] !== rows || h.shape[1] !== hidden || !isFloatDtype(h.dtype)) {
        throw new UserError(
          `${dir}: ${headName} is ${h.dtype} ${JSON.stringify(h.shape)}, expected a float [${rows}, ${hidden}] like ${embName}`,
        );
      }
    }

    // Which markers need rows.
    const idOf: Record<string, number> = {
      [BLOCK_START]: tok.specialTokens.blockStart,
      [BLOCK_END]: tok.specialTokens.blockEnd,
      [SUMMARY_START]: tok.specialTokens.summaryStart,
      [SUMMARY_END]: tok.specialTokens.summaryEnd,
    };
    const added = new Set(tok.addedMementoTokens);
    const targets = MEMENTO_SPECIAL_TOKENS.filter((t) => added.has(t) || idOf[t] >= rows);
    const alreadyInTokenizer = MEMENTO_SPECIAL_TOKENS.filter((t) => !added.has(t));
    if (targets.length === 0) {
      throw new UserError(
        `${dir}: the tokenizer already has the four Memento tokens (ids ${MEMENTO_SPECIAL_TOKENS.map((t) => idOf[t]).join(", ")}) and the embedding has their rows; nothing to add`,
      );
    }
    const targetIds = new Set(targets.map((t) => idOf[t]));
    const maxTarget = Math.max(...targetIds);
    const newRows = maxTarget < rows ? rows : Math.ceil((maxTarget + 1) / VOCAB_PAD_MULTIPLE) * VOCAB_PAD_MULTIPLE;
    const grown = newRows !== rows;

    const inits = targets.map((t) => markerInit(tok, t, idOf[t], MEMENTO_INIT_WORDS[t]));
    for (const m of inits) {
      for (const id of m.meanOf) {
        if (id >= rows || targetIds.has(id)) {
          throw new UserError(
            `${dir}: word token id ${id} (for ${m.token}) has no trained row in ${embName} (${rows} rows)`,
          );
        }
      }
    }

    // The new rows, per updated matrix.
    const rowBytes = hidden * dtypeSize(emb.dtype);
    const chunkRows = Math.max(1, Math.floor(chunkBytes / Math.max(rowBytes, 1)));
    const noise = gaussian(seed);
    const makePlan = (name: string): RowPlan => {
      const f = ckpt.fileOf(name);
      const plan: RowPlan = { rows: new Map(), padding: undefined };
      for (const m of inits) {
        const mean = meanRows(f, name, m.meanOf, hidden);
        const row = new Float32Array(hidden);
        for (let j = 0; j < hidden; j++) row[j] = mean[j] + std * noise();
        plan.rows.set(m.id, row);
      }
      if (grown) plan.padding = meanAllRows(f, name, rows, hidden, chunkRows);
      return plan;
    };
    const updates = new Map<string, RowPlan>();
    updates.set(embName, makePlan(embName));
    if (hasHead) updates.set(headName, tied ? updates.get(embName)! : makePlan(headName));

    // Write the weights, shard by shard, in the input's layout.
    mkdirSync(out, { recursive: true });
    const scratch = new Uint8Array(Math.max(chunkBytes, rowBytes, 8));
    let tensorsCopied = 0;
    let totalSize = 0;
    for (const file of ckpt.files) {
      const src = ckpt.file(file);
      const names = src.names().filter((n) => !ckpt.sharded || ckpt.weightMap.get(n) === file);
      const plan: TensorPlan[] = names.map((n) => {
        const t = src.info(n);
        return { name: n, dtype: t.dtype, shape: updates.has(n) ? [newRows, t.shape[1]] : [...t.shape] };
      });
      const w = new SafetensorsWriter(join(out, file), plan, src.header.metadata);
      try {
        for (const n of names) {
          const rowPlan = updates.get(n);
          if (rowPlan) {
            streamUpdatedMatrix(src, w, n, rows, newRows, hidden, rowPlan, chunkRows, scratch);
          } else {
            const size = tensorByteLength(src.info(n).dtype, src.info(n).shape);
            for (let s = 0; s < size; s += scratch.length) {
              const e = Math.min(size, s + scratch.length);
              w.writePart(n, src.readBytes(n, s, e, scratch));
            }
            tensorsCopied++;
          }
        }
        w.close();
      } catch (e) {
        w.abort();
        throw e;
      }
      const bytes = plan.reduce((a, t) => a + tensorByteLength(t.dtype, t.shape), 0);
      totalSize += bytes;
      opts.onFile?.(file, bytes);
    }
    if (ckpt.sharded) {
      const meta = { ...(ckpt.indexMetadata ?? {}) };
      delete meta.total_size;
      writeSafetensorsIndex(join(out, INDEX_FILE), ckpt.weightMap, totalSize, meta);
    }

    // config.json: vocab_size follows the matrix when it grew; otherwise the file is copied unchanged.
    const vocabBefore = typeof config.json.vocab_size === "number" ? config.json.vocab_size : null;
    if (grown) {
      writeFileSync(join(out, "config.json"), JSON.stringify({ ...config.json, vocab_size: newRows }, null, 2) + "\n");
    } else {
      copyFileSync(join(dir, "config.json"), join(out, "config.json"));
    }

    // Tokenizer files.
    tok.save(out);
    const addedTokensPath = join(dir, "added_tokens.json");
    if (existsSync(addedTokensPath)) {
      let j: unknown;
      try {
        j = JSON.parse(readFileSync(addedTokensPath, "utf8"));
      } catch {
        throw new UserError(`${addedTokensPath}: invalid JSON`);
      }
      const obj = typeof j === "object" && j !== null && !Array.isArray(j) ? { ...(j as Record<string, number>) } : {};
      for (const t of MEMENTO_SPECIAL_TOKENS) obj[t] = idOf[t];
      writeFileSync(join(out, "added_tokens.json"), JSON.stringify(obj, null, 2) + "\n");
    }

    // Everything else at the top level.
    const filesCopied: string[] = [];
    const filesSkipped: string[] = [];
    const weightFiles = new Set(ckpt.files);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const name = entry.name;
      if (HANDLED_FILES.has(name) || weightFiles.has(name) || name === REPORT_FILE) continue;
      if (name.startsWith(".") || !entry.isFile() || SKIP_WEIGHT_EXT.some((x) => name.endsWith(x))) {
        filesSkipped.push(entry.isDirectory() ? `${name}/` : name);
        continue;
      }
      copyFileSync(join(dir, name), join(out, name));
      filesCopied.push(name);
    }

    const report: AddTokensReport = {
      source: dir,
      output: out,
      seed,
      std,
      tiedEmbeddings: tied,
      embedding: embName,
      lmHead: hasHead ? headName : null,
      dtype: emb.dtype,
      hiddenSize: hidden,
      rowsBefore: rows,
      rowsAfter: newRows,
      grown,
      configVocabSize: { before: vocabBefore, after: grown ? newRows : vocabBefore },
      tokenizerSize: tok.vocabSize,
      tokens: inits,
      alreadyInTokenizer,
      shards: [...ckpt.files],
      tensorsCopied,
      filesCopied: filesCopied.sort(),
      filesSkipped: filesSkipped.sort(),
    };
    writeFileSync(join(out, REPORT_FILE), JSON.stringify(report, null, 2) + "\n");
    return report;
  } finally {
    ckpt.close();
  }
}

/**
 * Streams one [rows, hidden] matrix to the writer as [newRows, hidden]: old rows are copied in chunks of
 * `chunkRows`, the target rows replaced by their new values, rows past the old end set to the padding row.
 */
function streamUpdatedMatrix(
  src: SafetensorsFile,
  w: SafetensorsWriter,
  name: string,
  rows: number,
  newRows: number,
  hidden: number,
  plan: RowPlan,
  chunkRows: number,
  scratch: Uint8Array,
): void {
  const dtype = src.info(name).dtype as FloatDtype;
  const rowBytes = hidden * dtypeSize(dtype);
  const encodedRows = new Map<number, Uint8Array>();
  for (const [id, row] of plan.rows) encodedRows.set(id, encodeFloats(row, dtype));
  const paddingBytes = plan.padding ? encodeFloats(plan.padding, dtype) : undefined;
  const rowsPerChunk = Math.max(1, Math.min(chunkRows, Math.floor(scratch.length / Math.max(rowBytes, 1))));
  for (let r0 = 0; r0 < newRows; r0 += rowsPerChunk) {
    const r1 = Math.min(newRows, r0 + rowsPerChunk);
    const buf = scratch.subarray(0, (r1 - r0) * rowBytes);
    const copyEnd = Math.min(r1, rows);
    if (copyEnd > r0) src.readBytes(name, r0 * rowBytes, copyEnd * rowBytes, buf);
    for (let r = Math.max(r0, rows); r < r1; r++) buf.set(paddingBytes!, (r - r0) * rowBytes);
    for (const [id, bytes] of encodedRows) if (id >= r0 && id < r1) buf.set(bytes, (id - r0) * rowBytes);
    w.writePart(name, buf);
  }
}
