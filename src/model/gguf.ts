/**
 * GGUF (version 3) export of the project's Qwen3 models, for llama.cpp (node-llama-cpp), and a small reader
 * used by the tests and by `memento model export-gguf --check`.
 *
 * File layout (all little-endian): magic "GGUF", version u32 = 3, tensor count u64, metadata count u64; the
 * metadata (key string, value type u32, value); the tensor infos (name, n_dims u32, dims u64[] in ggml order,
 * i.e. innermost first, ggml type u32, data offset u64 relative to the data section); zero padding up to
 * `general.alignment` (32); then each tensor's bytes, each one starting at an aligned offset.
 *
 * Model mapping (what llama.cpp's `convert_hf_to_gguf.py` does for Qwen3ForCausalLM):
 *   - `general.architecture` "qwen3" and the `qwen3.*` hyperparameters (context length, widths, heads, head
 *     dims, rope base, RMSNorm epsilon);
 *   - tensors renamed to llama.cpp's convention (model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight,
 *     ...), a torch [out, in] matrix becoming ggml dims [in, out] with the very same bytes;
 *   - Q and K are NOT permuted: llama.cpp runs qwen3 with NEOX-style RoPE (rotate the two halves of each head),
 *     which is exactly Hugging Face's rotate_half; the interleaving permutation of the convert script is for
 *     the llama architecture only. test/llamacpp.test.ts checks this against the reference transformer;
 *   - tied embeddings: no `output.weight` (llama.cpp then reuses token_embd);
 *   - 2-D weights in F32 (default) or F16; 1-D norm weights always F32, as llama.cpp expects.
 *
 * Tokenizer: a full `tokenizer.ggml.model = "gpt2"` (byte-level BPE) vocabulary, so the file also works with
 * llama.cpp's own tools and its tokenizer. Tokens come from `tokenizer.json` by id; a tokenizer that is not
 * byte-level itself (the toy char tokenizer: a BPE over raw characters with no merges) has every normal token
 * rewritten through GPT-2's byte-to-unicode table (" " -> "Ġ", "\n" -> "Ċ"), which is what llama.cpp's BPE
 * vocabulary expects; with no merges every character then stays one token, as in the original. Special added
 * tokens are typed CONTROL, other added tokens USER_DEFINED (both matched atomically by llama.cpp), ids past
 * the tokenizer up to the model's vocab_size are "[PADn]" UNUSED. The engine itself never asks llama.cpp to
 * tokenize: it passes token ids, so the exported vocabulary only has to load and be consistent.
 */
import { closeSync, openSync, readFileSync, readSync, writeSync, fstatSync, existsSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../errors.js";
import type { Qwen3Config } from "./config.js";
import { parameterShapes, parseQwen3Config } from "./config.js";
import { decodeFloats, encodeFloats } from "./dtype.js";
import { SafetensorsCheckpoint } from "./safetensors.js";
import type { Qwen3Model } from "./transformer.js";

// ---------------------------------------------------------------------------------------------------------
// Format constants
// ---------------------------------------------------------------------------------------------------------

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufScalarTypeName = Exclude<keyof typeof GgufType, "ARRAY">;

/** ggml tensor types this module writes and reads. */
export const GgmlType = { F32: 0, F16: 1 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** llama.cpp's token types (tokenizer.ggml.token_type). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** One metadata value with its GGUF type. Arrays hold scalars of one type (no nested arrays here). */
export type GgufValue =
  | { type: GgufScalarTypeName; value: number | bigint | boolean | string }
  | { type: "ARRAY"; itemType: GgufScalarTypeName; value: Array<number | bigint | boolean | string> };

export const gguf = {
  u32: (v: number): GgufValue => ({ type: "UINT32", value: v }),
  i32: (v: number): GgufValue => ({ type: "INT32", value: v }),
  u64: (v: number | bigint): GgufValue => ({ type: "UINT64", value: BigInt(v) }),
  f32: (v: number): GgufValue => ({ type: "FLOAT32", value: v }),
  bool: (v: boolean): GgufValue => ({ type: "BOOL", value: v }),
  str: (v: string): GgufValue => ({ type: "STRING", value: v }),
  arr: (itemType: GgufScalarTypeName, value: Array<number | bigint | boolean | string>): GgufValue => ({
    type: "ARRAY",
    itemType,
    value,
  }),
};

/** A tensor to write: `shape` in torch order (outermost first); `data()` is called once, when it is written. */
export interface GgufTensorSource {
  name: string;
  shape: number[];
  type: GgmlTypeName;
  data: () => Float32Array;
}

// ---------------------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------------------

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  i8(v: number): void {
    this.ensure(1);
    this.buf.writeInt8(v, this.length);
    this.length += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.length);
    this.length += 2;
  }
  i16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16LE(v, this.length);
    this.length += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  i64(v: number | bigint): void {
    this.ensure(8);
    this.buf.writeBigInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.length);
    this.length += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.ensure(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(
  w: ByteWriter,
  type: GgufScalarTypeName,
  v: number | bigint | boolean | string,
  key: string,
): void {
  const num = (): number => {
    if (typeof v !== "number") throw new Error(`gguf: ${key}: expected a number for ${type}, got ${typeof v}`);
    return v;
  };
  switch (type) {
    case "UINT8":
      w.u8(num());
      return;
    case "INT8":
      w.i8(num());
      return;
    case "UINT16":
      w.u16(num());
      return;
    case "INT16":
      w.i16(num());
      return;
    case "UINT32":
      w.u32(num());
      return;
    case "INT32":
      w.i32(num());
      return;
    case "FLOAT32":
      w.f32(num());
      return;
    case "FLOAT64":
      w.f64(num());
      return;
    case "UINT64":
      w.u64(typeof v === "bigint" ? v : num());
      return;
    case "INT64":
      w.i64(typeof v === "bigint" ? v : num());
      return;
    case "BOOL":
      if (typeof v !== "boolean") throw new Error(`gguf: ${key}: expected a boolean`);
      w.u8(v ? 1 : 0);
      return;
    case "STRING":
      if (typeof v !== "string") throw new Error(`gguf: ${key}: expected a string`);
      w.str(v);
      return;
  }
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

const bytesPerElement = (t: GgmlTypeName): number => (t === "F32" ? 4 : 2);

/**
 * Writes a GGUF v3 file: `metadata` in insertion order (general.alignment is added when missing), then the
 * tensors in order. Tensor data is produced and written one tensor at a time, so a large checkpoint is
 * streamed. Returns the file size in bytes.
 */
export function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensorSource[],
): number {
  const meta = new Map(metadata);
  const alignmentValue = meta.get("general.alignment");
  const alignment = alignmentValue ? Number(alignmentValue.value) : GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0)
    throw new Error(`gguf: bad alignment ${alignment}`);
  if (!alignmentValue) meta.set("general.alignment", gguf.u32(alignment));
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`gguf: duplicate tensor ${t.name}`);
    names.add(t.name);
  }

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(meta.size);
  for (const [key, v] of meta) {
    w.str(key);
    w.u32(GgufType[v.type]);
    if (v.type === "ARRAY") {
      w.u32(GgufType[v.itemType]);
      w.u64(v.value.length);
      for (const item of v.value) writeScalar(w, v.itemType, item, key);
    } else {
      writeScalar(w, v.type, v.value, key);
    }
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    w.str(t.name);
    w.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) w.u64(t.shape[i]); // ggml order: innermost dimension first
    w.u32(GgmlType[t.type]);
    w.u64(offset);
    const size = n * bytesPerElement(t.type);
    sizes.push(size);
    offset = alignUp(offset + size, alignment);
  }
  w.zeros(alignUp(w.length, alignment) - w.length);

  const fd = openSync(path, "w");
  try {
    let pos = 0;
    const put = (b: Uint8Array): void => {
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, Math.min(b.length - done, 1 << 30), pos + done);
      pos += b.length;
    };
    put(w.bytes());
    const dataStart = pos;
    let rel = 0;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const data = t.data();
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== n)
        throw new Error(`gguf: tensor ${t.name} has ${data.length} values, shape ${t.shape.join("x")} needs ${n}`);
      const bytes = encodeFloats(data, t.type);
      if (pos !== dataStart + rel) throw new Error("gguf: internal offset mismatch");
      put(bytes);
      const next = alignUp(rel + sizes[i], alignment);
      if (i < tensors.length - 1 && next > rel + sizes[i]) put(new Uint8Array(next - rel - sizes[i]));
      rel = next;
    }
    return pos;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------------------

export interface GgufTensorInfo {
  name: string;
  /** ggml dims, innermost first (a torch [out, in] matrix is [in, out]). */
  dims: number[];
  type: number;
  /** Offset relative to the data section. */
  offset: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** Absolute file offset of the data section. */
  dataStart: number;
  fileSize: number;
}

class ByteReader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new UserError(`${this.what}: truncated GGUF header`);
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }
  i8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  i16(): number {
    this.need(2);
    const v = this.buf.readInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  f32(): number {
    this.need(4);
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
  count(): number {
    const v = this.u64();
    if (v > BigInt(this.buf.length)) throw new UserError(`${this.what}: bad length ${v} in GGUF header`);
    return Number(v);
  }
  str(): string {
    const n = this.count();
    this.need(n);
    const s = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

const TYPE_NAMES = Object.fromEntries(Object.entries(GgufType).map(([k, v]) => [v, k])) as Record<
  number,
  keyof typeof GgufType
>;

function readScalar(r: ByteReader, type: GgufScalarTypeName): number | bigint | boolean | string {
  switch (type) {
    case "UINT8":
      return r.u8();
    case "INT8":
      return r.i8();
    case "UINT16":
      return r.u16();
    case "INT16":
      return r.i16();
    case "UINT32":
      return r.u32();
    case "INT32":
      return r.i32();
    case "FLOAT32":
      return r.f32();
    case "FLOAT64":
      return r.f64();
    case "UINT64":
      return r.u64();
    case "INT64":
      return r.i64();
    case "BOOL":
      return r.u8() !== 0;
    case "STRING":
      return r.str();
  }
}

/** Reads a GGUF file's header (metadata and tensor infos); tensor data is read on demand by readGgufTensor. */
export function readGguf(path: string): GgufFile {
  if (!existsSync(path)) throw new UserError(`${path}: no such file`);
  const fd = openSync(path, "r");
  try {
    const fileSize = fstatSync(fd).size;
    // Headers with a large vocabulary run to a few MB; read growing prefixes until the header parses.
    let len = Math.min(fileSize, 1 << 20);
    for (;;) {
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, 0);
      try {
        return parseHeader(buf, path, fileSize);
      } catch (e) {
        if (e instanceof UserError && /truncated/.test(e.message) && len < fileSize) {
          len = Math.min(fileSize, len * 4);
          continue;
        }
        throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
}

function parseHeader(buf: Buffer, path: string, fileSize: number): GgufFile {
  const r = new ByteReader(buf, path);
  if (r.u32() !== GGUF_MAGIC) throw new UserError(`${path}: not a GGUF file (bad magic)`);
  const version = r.u32();
  if (version !== 2 && version !== 3) throw new UserError(`${path}: unsupported GGUF version ${version}`);
  const nTensors = r.count();
  const nKv = r.count();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = r.str();
    const t = TYPE_NAMES[r.u32()];
    if (t === undefined) throw new UserError(`${path}: ${key}: unknown metadata type`);
    if (t === "ARRAY") {
      const it = TYPE_NAMES[r.u32()];
      if (it === undefined || it === "ARRAY") throw new UserError(`${path}: ${key}: unsupported array item type`);
      const n = r.count();
      const value: Array<number | bigint | boolean | string> = new Array(n);
      for (let j = 0; j < n; j++) value[j] = readScalar(r, it);
      metadata.set(key, { type: "ARRAY", itemType: it, value });
    } else {
      metadata.set(key, { type: t, value: readScalar(r, t) });
    }
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.str();
    const nd = r.u32();
    if (nd > 4) throw new UserError(`${path}: tensor ${name} has ${nd} dims`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(Number(r.u64()));
    const type = r.u32();
    const offset = Number(r.u64());
    tensors.push({ name, dims, type, offset });
  }
  const al = metadata.get("general.alignment");
  const alignment = al ? Number(al.value) : GGUF_DEFAULT_ALIGNMENT;
  const dataStart = alignUp(r.pos, alignment);
  return { path, version, alignment, metadata, tensors, dataStart, fileSize };
}

/** One tensor's data as float32 (F32 or F16 tensors only). */
export function readGgufTensor(file: GgufFile, name: string): Float32Array {
  const t = file.tensors.find((x) => x.name === name);
  if (!t) throw new UserError(`${file.path}: no tensor ${name}`);
  const n = t.dims.reduce((a, b) => a * b, 1);
  let dtype: "F32" | "F16";
  if (t.type === GgmlType.F32) dtype = "F32";
  else if (t.type === GgmlType.F16) dtype = "F16";
  else throw new UserError(`${file.path}: tensor ${name} has ggml type ${t.type} (only F32/F16 are read)`);
  const size = n * (dtype === "F32" ? 4 : 2);
  const start = file.dataStart + t.offset;
  if (start + size > file.fileSize) throw new UserError(`${file.path}: tensor ${name} runs past the end of the file`);
  const buf = Buffer.alloc(size);
  const fd = openSync(file.path, "r");
  try {
    let done = 0;
    while (done < size) {
      const got = readSync(fd, buf, done, Math.min(size - done, 1 << 30), start + done);
      if (got <= 0) throw new UserError(`${file.path}: short read`);
      done += got;
    }
  } finally {
    closeSync(fd);
  }
  return decodeFloats(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), dtype);
}

/** A metadata value (scalar or array), or undefined. */
export function ggufGet(file: GgufFile, key: string): GgufValue["value"] | undefined {
  return file.metadata.get(key)?.value;
}

// ---------------------------------------------------------------------------------------------------------
// Qwen3 mapping
// ---------------------------------------------------------------------------------------------------------

const LAYER_NAMES: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "attn_q.weight",
  "self_attn.k_proj.weight": "attn_k.weight",
  "self_attn.v_proj.weight": "attn_v.weight",
  "self_attn.o_proj.weight": "attn_output.weight",
  "self_attn.q_norm.weight": "attn_q_norm.weight",
  "self_attn.k_norm.weight": "attn_k_norm.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
};

/** llama.cpp's name of a Hugging Face Qwen3 tensor name (throws for a name the mapping does not know). */
export function ggufTensorName(hfName: string): string {
  if (hfName === "model.embed_tokens.weight") return "token_embd.weight";
  if (hfName === "model.norm.weight") return "output_norm.weight";
  if (hfName === "lm_head.weight") return "output.weight";
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  if (m && LAYER_NAMES[m[2]]) return `blk.${m[1]}.${LAYER_NAMES[m[2]]}`;
  throw new Error(`no GGUF name for tensor ${hfName}`);
}

/** The Hugging Face name of a llama.cpp Qwen3 tensor name (inverse of ggufTensorName). */
export function hfTensorName(ggufName: string): string {
  if (ggufName === "token_embd.weight") return "model.embed_tokens.weight";
  if (ggufName === "output_norm.weight") return "model.norm.weight";
  if (ggufName === "output.weight") return "lm_head.weight";
  const m = /^blk\.(\d+)\.(.+)$/.exec(ggufName);
  if (m) for (const [hf, g] of Object.entries(LAYER_NAMES)) if (g === m[2]) return `model.layers.${m[1]}.${hf}`;
  throw new Error(`no Hugging Face name for GGUF tensor ${ggufName}`);
}

/** The `qwen3.*` and general metadata of a config. */
export function qwen3Metadata(
  c: Qwen3Config,
  opts: { name?: string; fileType?: GgmlTypeName } = {},
): Map<string, GgufValue> {
  const m = new Map<string, GgufValue>();
  m.set("general.architecture", gguf.str("qwen3"));
  m.set("general.type", gguf.str("model"));
  m.set("general.name", gguf.str(opts.name ?? "memento-qwen3"));
  m.set("general.alignment", gguf.u32(GGUF_DEFAULT_ALIGNMENT));
  // llama_ftype: 0 = all F32, 1 = mostly F16.
  m.set("general.file_type", gguf.u32(opts.fileType === "F16" ? 1 : 0));
  m.set("qwen3.context_length", gguf.u32(c.max_position_embeddings));
  m.set("qwen3.embedding_length", gguf.u32(c.hidden_size));
  m.set("qwen3.block_count", gguf.u32(c.num_hidden_layers));
  m.set("qwen3.feed_forward_length", gguf.u32(c.intermediate_size));
  m.set("qwen3.attention.head_count", gguf.u32(c.num_attention_heads));
  m.set("qwen3.attention.head_count_kv", gguf.u32(c.num_key_value_heads));
  m.set("qwen3.attention.key_length", gguf.u32(c.head_dim));
  m.set("qwen3.attention.value_length", gguf.u32(c.head_dim));
  m.set("qwen3.rope.freq_base", gguf.f32(c.rope_theta));
  m.set("qwen3.attention.layer_norm_rms_epsilon", gguf.f32(c.rms_norm_eps));
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer metadata
// ---------------------------------------------------------------------------------------------------------

/** GPT-2's byte -> unicode table (printable bytes map to themselves, the others to U+0100 and up). */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const table: string[] = new Array(256);
  const set = new Set(keep);
  for (const b of keep) table[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!set.has(b)) table[b] = String.fromCodePoint(256 + n++);
  return table;
}

export interface GgufTokenizer {
  tokens: string[];
  tokenTypes: number[];
  merges: string[];
  pre: string;
  bosId?: number;
  eosId?: number;
  padId?: number;
  chatTemplate?: string;
  /** Whether the source tokenizer was byte-level already (else normal tokens were byte-mapped). */
  byteLevelSource: boolean;
}

interface HfTokenizerJson {
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  pre_tokenizer?: unknown;
  decoder?: unknown;
  model?: { type?: string; vocab?: Record<string, number>; merges?: Array<string | [string, string]> };
}

function mentionsByteLevel(node: unknown): boolean {
  if (!node || typeof node !== "object") return false;
  const o = node as Record<string, unknown>;
  if (o.type === "ByteLevel") return true;
  for (const key of ["pretokenizers", "decoders"]) {
    const list = o[key];
    if (Array.isArray(list) && list.some(mentionsByteLevel)) return true;
  }
  return false;
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string")
    return (v as { content: string }).content;
  return undefined;
}

/**
 * The GGUF tokenizer vocabulary of a Hugging Face BPE `tokenizer.json` (+ `tokenizer_config.json`), padded
 * to `vocabSize` (the model's embedding rows).
 */
export function ggufTokenizerFromHf(
  json: HfTokenizerJson,
  config: Record<string, unknown>,
  vocabSize: number,
): GgufTokenizer {
  if (json.model?.type !== "BPE" || !json.model.vocab)
    throw new UserError(`tokenizer.json: only BPE tokenizers can be exported to GGUF (model type ${json.model?.type})`);
  const byteLevel = mentionsByteLevel(json.pre_tokenizer) || mentionsByteLevel(json.decoder);
  const table = bytesToUnicode();
  const mapText = (s: string): string => (byteLevel ? s : Array.from(Buffer.from(s, "utf8"), (b) => table[b]).join(""));
  const added = new Map<number, { content: string; special: boolean }>();
  for (const a of json.added_tokens ?? []) added.set(a.id, { content: a.content, special: a.special !== false });
  const byId = new Map<number, string>();
  for (const [tok, id] of Object.entries(json.model.vocab)) byId.set(id, tok);
  let maxId = -1;
  for (const id of byId.keys()) maxId = Math.max(maxId, id);
  for (const id of added.keys()) maxId = Math.max(maxId, id);
  if (maxId + 1 > vocabSize)
    throw new UserError(`tokenizer has ${maxId + 1} ids but the model has ${vocabSize} embedding rows`);
  const tokens: string[] = [];
  const tokenTypes: number[] = [];
  const seen = new Set<string>();
  for (let id = 0; id < vocabSize; id++) {
    const a = added.get(id);
    let text: string;
    let type: number;
    if (a) {
      text = a.content;
      type = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
    } else if (byId.has(id)) {
      text = mapText(byId.get(id)!);
      type = TokenType.NORMAL;
    } else {
      text = `[PAD${id}]`;
      type = TokenType.UNUSED;
    }
    if (seen.has(text)) throw new UserError(`tokenizer: token text ${JSON.stringify(text)} appears twice (id ${id})`);
    seen.add(text);
    tokens.push(text);
    tokenTypes.push(type);
  }
  const merges = (json.model.merges ?? []).map((m) => {
    const pair = Array.isArray(m) ? m : m.split(" ");
    return pair.map(mapText).join(" ");
  });
  const idOf = (v: unknown): number | undefined => {
    const c = tokenContent(v);
    if (c === undefined) return undefined;
    const i = tokens.indexOf(c);
    return i >= 0 ? i : undefined;
  };
  const eosId = idOf(config.eos_token);
  const padId = idOf(config.pad_token);
  // Qwen has no BOS (and never adds one); llama.cpp's gpt2 default (id 11) would be an arbitrary token, so
  // point it at the pad/end-of-text token as Qwen's own GGUFs do.
  const bosId = idOf(config.bos_token) ?? padId ?? eosId;
  const template = typeof config.chat_template === "string" ? config.chat_template : undefined;
  return {
    tokens,
    tokenTypes,
    merges,
    pre: "qwen2",
    bosId,
    eosId,
    padId,
    chatTemplate: template,
    byteLevelSource: byteLevel,
  };
}

/** The tokenizer.* metadata entries. */
export function tokenizerMetadata(t: GgufTokenizer): Map<string, GgufValue> {
  const m = new Map<string, GgufValue>();
  m.set("tokenizer.ggml.model", gguf.str("gpt2"));
  m.set("tokenizer.ggml.pre", gguf.str(t.pre));
  m.set("tokenizer.ggml.tokens", gguf.arr("STRING", t.tokens));
  m.set("tokenizer.ggml.token_type", gguf.arr("INT32", t.tokenTypes));
  m.set("tokenizer.ggml.merges", gguf.arr("STRING", t.merges));
  if (t.bosId !== undefined) m.set("tokenizer.ggml.bos_token_id", gguf.u32(t.bosId));
  if (t.eosId !== undefined) m.set("tokenizer.ggml.eos_token_id", gguf.u32(t.eosId));
  if (t.padId !== undefined) m.set("tokenizer.ggml.padding_token_id", gguf.u32(t.padId));
  m.set("tokenizer.ggml.add_bos_token", gguf.bool(false));
  if (t.chatTemplate !== undefined) m.set("tokenizer.chat_template", gguf.str(t.chatTemplate));
  return m;
}

/** Reads `tokenizer.json` and `tokenizer_config.json` (optional) from a directory. */
export function readHfTokenizerFiles(dir: string): { json: HfTokenizerJson; config: Record<string, unknown> } {
  const tj = join(dir, "tokenizer.json");
  if (!existsSync(tj)) throw new UserError(`${dir}: no tokenizer.json (needed for the GGUF vocabulary)`);
  const json = JSON.parse(readFileSync(tj, "utf8")) as HfTokenizerJson;
  const tc = join(dir, "tokenizer_config.json");
  const config = existsSync(tc) ? (JSON.parse(readFileSync(tc, "utf8")) as Record<string, unknown>) : {};
  return { json, config };
}

// ---------------------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------------------

export interface ExportGgufOptions {
  /** Storage type of the 2-D weights (default F32; norms stay F32). */
  dtype?: GgmlTypeName;
  /** general.name (default "memento-qwen3"). */
  name?: string;
}

export interface ExportGgufReport {
  output: string;
  bytes: number;
  tensors: number;
  dtype: GgmlTypeName;
  vocabSize: number;
  tokenizerTokens: number;
  tiedEmbeddings: boolean;
}

/** Tensor sources of a model in memory, in parameterShapes order. */
function modelSources(
  config: Qwen3Config,
  get: (hfName: string) => Float32Array,
  dtype: GgmlTypeName,
): GgufTensorSource[] {
  return parameterShapes(config).map(([name, shape]) => ({
    name: ggufTensorName(name),
    shape,
    type: shape.length === 1 ? "F32" : dtype,
    data: () => get(name),
  }));
}

/** Writes a Qwen3Model and a tokenizer (tokenizer.json objects) as one GGUF file. */
export function exportModelToGguf(
  model: Qwen3Model,
  tokenizer: { json: unknown; config: Record<string, unknown> },
  out: string,
  opts: ExportGgufOptions = {},
): ExportGgufReport {
  const dtype = opts.dtype ?? "F32";
  const c = model.config;
  const tok = ggufTokenizerFromHf(tokenizer.json as HfTokenizerJson, tokenizer.config, c.vocab_size);
  const meta = new Map([...qwen3Metadata(c, { name: opts.name, fileType: dtype }), ...tokenizerMetadata(tok)]);
  const sources = modelSources(c, (n) => model.params.get(n) as Float32Array, dtype);
  const bytes = writeGguf(out, meta, sources);
  return report(out, bytes, sources.length, dtype, c, tok);
}

function report(
  out: string,
  bytes: number,
  tensors: number,
  dtype: GgmlTypeName,
  c: Qwen3Config,
  tok: GgufTokenizer,
): ExportGgufReport {
  return {
    output: out,
    bytes,
    tensors,
    dtype,
    vocabSize: c.vocab_size,
    tokenizerTokens: tok.tokenTypes.filter((t) => t !== TokenType.UNUSED).length,
    tiedEmbeddings: c.tie_word_embeddings,
  };
}

/**
 * Exports a Hugging Face Qwen3 checkpoint directory (config.json, safetensors, tokenizer.json) to GGUF,
 * streaming one tensor at a time (peak memory ~ the largest tensor). `tokenizerDir` defaults to `dir`.
 */
export function exportCheckpointToGguf(
  dir: string,
  out: string,
  opts: ExportGgufOptions & { tokenizerDir?: string } = {},
): ExportGgufReport {
  const dtype = opts.dtype ?? "F32";
  const configPath = join(dir, "config.json");
  if (!existsSync(configPath)) throw new UserError(`${dir}: no config.json`);
  const c = parseQwen3Config(JSON.parse(readFileSync(configPath, "utf8")));
  const { json, config } = readHfTokenizerFiles(opts.tokenizerDir ?? dir);
  const tok = ggufTokenizerFromHf(json, config, c.vocab_size);
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    for (const [name, shape] of parameterShapes(c)) {
      if (!ckpt.has(name)) throw new UserError(`${dir}: checkpoint lacks ${name}`);
      const info = ckpt.info(name);
      if (info.shape.join("x") !== shape.join("x"))
        throw new UserError(`${dir}: ${name} has shape ${info.shape.join("x")}, expected ${shape.join("x")}`);
    }
    const meta = new Map([...qwen3Metadata(c, { name: opts.name, fileType: dtype }), ...tokenizerMetadata(tok)]);
    const sources = modelSources(c, (n) => ckpt.read(n).data, dtype);
    const bytes = writeGguf(out, meta, sources);
    return report(out, bytes, sources.length, dtype, c, tok);
  } finally {
    ckpt.close();
  }
}

/** The Qwen3 config and HF-named tensors of a GGUF this module wrote (for round-trip checks). */
export function readQwen3Gguf(path: string): {
  config: Qwen3Config;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  file: GgufFile;
} {
  const file = readGguf(path);
  const num = (k: string): number => {
    const v = ggufGet(file, k);
    if (typeof v !== "number") throw new UserError(`${path}: missing ${k}`);
    return v;
  };
  if (ggufGet(file, "general.architecture") !== "qwen3") throw new UserError(`${path}: not a qwen3 GGUF`);
  const embd = file.tensors.find((t) => t.name === "token_embd.weight");
  if (!embd) throw new UserError(`${path}: no token_embd.weight`);
  const config = parseQwen3Config({
    vocab_size: embd.dims[1],
    hidden_size: num("qwen3.embedding_length"),
    intermediate_size: num("qwen3.feed_forward_length"),
    num_hidden_layers: num("qwen3.block_count"),
    num_attention_heads: num("qwen3.attention.head_count"),
    num_key_value_heads: num("qwen3.attention.head_count_kv"),
    head_dim: num("qwen3.attention.key_length"),
    rope_theta: num("qwen3.rope.freq_base"),
    rms_norm_eps: num("qwen3.attention.layer_norm_rms_epsilon"),
    max_position_embeddings: num("qwen3.context_length"),
    tie_word_embeddings: !file.tensors.some((t) => t.name === "output.weight"),
  });
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of file.tensors)
    tensors.set(hfTensorName(t.name), { shape: [...t.dims].reverse(), data: readGgufTensor(file, t.name) });
  return { config, tensors, file };
}
