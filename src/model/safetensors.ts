/**
 * The safetensors checkpoint format (Hugging Face), read and written without loading whole files.
 *
 * Layout of a file:
 *   - 8 bytes: N, the header length, an unsigned 64-bit little-endian integer;
 *   - N bytes: a UTF-8 JSON object `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`,
 *     padded at the end with spaces (0x20) so that N is a multiple of 8 (the byte buffer then starts 8-aligned);
 *   - the byte buffer: every tensor's elements, row-major, little-endian; `data_offsets` are relative to the
 *     start of the buffer, and the tensors cover the buffer exactly (no holes, no overlaps, nothing after).
 *
 * The writer lays tensors out like the reference implementation: sorted by element size (largest first), then
 * by name, packed back to back; since every tensor's byte length is a multiple of its element size, each tensor
 * starts at an offset aligned to its element size. The reader accepts any order that covers the buffer exactly.
 *
 * Reading is by positioned reads on a file descriptor: `readSafetensorsHeader` reads only the header,
 * `readTensor`/`SafetensorsFile.read` only that tensor's bytes. Writing is by positioned writes:
 * `SafetensorsWriter` takes the header plan first, then each tensor (whole, or in sequential parts) at its
 * offset, so a checkpoint never needs to be in memory at once. A sharded checkpoint
 * (`model.safetensors.index.json`, `{metadata?, weight_map: {tensor: file}}`) is read through
 * `SafetensorsCheckpoint`. Malformed input raises UserError with a one-line message.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  readFileSync,
} from "node:fs";
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import { UserError } from "../errors.js";
import {
  decodeFloats,
  dtypeSize,
  encodeFloats,
  isFloatDtype,
  isSafetensorsDtype,
  type FloatDtype,
  type SafetensorsDtype,
} from "./dtype.js";

export type { FloatDtype, SafetensorsDtype } from "./dtype.js";

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;
/** The file name of a single-file checkpoint. */
export const SINGLE_FILE = "model.safetensors";
/** The index file of a sharded checkpoint. */
export const INDEX_FILE = "model.safetensors.index.json";
/** Largest single read/write call (readSync/writeSync take at most 2^31-1 bytes). */
const IO_CHUNK = 1 << 30;

/** One tensor's entry in a header. */
export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the byte buffer. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  path: string;
  /** N: the JSON header's length in bytes, padding included. */
  headerLength: number;
  /** Absolute file offset of the byte buffer (8 + N). */
  dataStart: number;
  /** Size of the whole file in bytes. */
  fileSize: number;
  /** The tensors, in file order (by begin offset). */
  tensors: Map<string, TensorInfo>;
  /** `__metadata__` (string to string), if present. */
  metadata?: Record<string, string>;
}

/** A tensor converted to float32. */
export interface Tensor {
  dtype: FloatDtype;
  shape: number[];
  data: Float32Array;
}

/** A tensor's raw little-endian bytes, any dtype. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

/** Input to writeSafetensors: float32 data, stored as `dtype` (default F32). */
export interface TensorInput {
  shape: number[];
  data: Float32Array;
  dtype?: FloatDtype;
}

/** One entry of a writer's header plan. */
export interface TensorPlan {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/** Number of elements of a shape (1 for a scalar, []). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Byte length of a tensor. */
export function tensorByteLength(dtype: SafetensorsDtype, shape: readonly number[]): number {
  return numel(shape) * dtypeSize(dtype);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function openForRead(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new UserError(`${path}: cannot open (${errCode(e)})`);
  }
}

/** Reads exactly `length` bytes at `position` into `buf` from offset `bufOffset`; throws on a short file. */
function readFully(
  fd: number,
  buf: Uint8Array,
  bufOffset: number,
  length: number,
  position: number,
  path: string,
): void {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, bufOffset + done, Math.min(length - done, IO_CHUNK), position + done);
    if (n === 0) throw new UserError(`${path}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

function writeFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = writeSync(fd, buf, done, Math.min(buf.length - done, IO_CHUNK), position + done);
    done += n;
  }
}

function checkShape(shape: unknown, where: string): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new Error(`${where}: shape must be an array of non-negative integers`);
  }
  return shape as number[];
}

/** Parses and validates a header from its JSON bytes; `bufferLength` is the byte buffer's size. */
function parseHeader(path: string, json: Uint8Array, headerLength: number, fileSize: number): SafetensorsHeader {
  const bad = (why: string): never => {
    throw new UserError(`${path}: not a valid safetensors file (${why})`);
  };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch {
    return bad("header is not UTF-8");
  }
  if (!text.startsWith("{")) bad("header does not start with '{'");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return bad(`header is not JSON: ${(e as Error).message.replace(/\s+/g, " ")}`);
  }
  if (!isObject(parsed)) return bad("header is not a JSON object");
  const dataStart = 8 + headerLength;
  const bufferLength = fileSize - dataStart;
  let metadata: Record<string, string> | undefined;
  const entries: [string, TensorInfo][] = [];
  for (const [name, v] of Object.entries(parsed)) {
    if (name === "__metadata__") {
      if (!isObject(v) || !Object.values(v).every((x) => typeof x === "string"))
        bad("__metadata__ must map strings to strings");
      metadata = v as Record<string, string>;
      continue;
    }
    if (!isObject(v)) bad(`entry ${JSON.stringify(name)} is not an object`);
    const { dtype, shape, data_offsets: offs } = v as Record<string, unknown>;
    if (!isSafetensorsDtype(dtype)) bad(`tensor ${JSON.stringify(name)} has unknown dtype ${JSON.stringify(dtype)}`);
    let s: number[] = [];
    try {
      s = checkShape(shape, `tensor ${JSON.stringify(name)}`);
    } catch (e) {
      bad((e as Error).message);
    }
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      bad(`tensor ${JSON.stringify(name)} has invalid data_offsets`);
    }
    const [b, e] = offs as [number, number];
    const want = tensorByteLength(dtype as SafetensorsDtype, s);
    if (e < b || e - b !== want)
      bad(
        `tensor ${JSON.stringify(name)}: data_offsets [${b}, ${e}] do not match ${dtype} ${JSON.stringify(s)} (${want} bytes)`,
      );
    entries.push([name, { dtype: dtype as SafetensorsDtype, shape: s, dataOffsets: [b, e] }]);
  }
  entries.sort((x, y) => x[1].dataOffsets[0] - y[1].dataOffsets[0] || x[1].dataOffsets[1] - y[1].dataOffsets[1]);
  let at = 0;
  for (const [name, t] of entries) {
    if (t.dataOffsets[0] !== at)
      bad(`tensor ${JSON.stringify(name)} starts at ${t.dataOffsets[0]}, expected ${at} (hole or overlap)`);
    at = t.dataOffsets[1];
  }
  if (at !== bufferLength) bad(`tensors cover ${at} bytes but the byte buffer has ${bufferLength}`);
  return { path, headerLength, dataStart, fileSize, tensors: new Map(entries), ...(metadata ? { metadata } : {}) };
}

function readHeaderFd(fd: number, path: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw new UserError(`${path}: not a safetensors file (only ${fileSize} bytes)`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, 8, 0, path);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES))
    throw new UserError(`${path}: not a safetensors file (header length ${n} is too large)`);
  const headerLength = Number(n);
  if (headerLength < 2) throw new UserError(`${path}: not a safetensors file (header length ${headerLength})`);
  if (8 + headerLength > fileSize) {
    throw new UserError(
      `${path}: not a safetensors file (header length ${headerLength} exceeds the file size ${fileSize})`,
    );
  }
  const json = Buffer.alloc(headerLength);
  readFully(fd, json, 0, headerLength, 8, path);
  return parseHeader(path, json, headerLength, fileSize);
}

/** Reads and validates only the header of a safetensors file. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openForRead(path);
  try {
    return readHeaderFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * An open safetensors file: the header, plus positioned reads of single tensors or parts of them. Keep one
 * open while reading many tensors; call close() when done.
 */
export class SafetensorsFile {
  readonly header: SafetensorsHeader;
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    try {
      this.header = readHeaderFd(fd, path);
    } catch (e) {
      closeSync(fd);
      this.fd = undefined;
      throw e;
    }
  }

  static open(path: string): SafetensorsFile {
    return new SafetensorsFile(path, openForRead(path));
  }

  /** Tensor names in file order. */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new UserError(`${this.path}: no tensor named ${JSON.stringify(name)}`);
    return t;
  }

  private handle(): number {
    if (this.fd === undefined) throw new Error(`${this.path}: file is closed`);
    return this.fd;
  }

  /**
   * Raw bytes [start, end) of a tensor's data (byte offsets relative to the tensor; default: the whole tensor),
   * read into `into` when given (it must be at least end - start bytes long).
   */
  readBytes(name: string, start = 0, end?: number, into?: Uint8Array): Uint8Array {
    const t = this.info(name);
    const size = t.dataOffsets[1] - t.dataOffsets[0];
    const e = end ?? size;
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(e) && 0 <= start && start <= e && e <= size)) {
      throw new RangeError(`${this.path}: byte range [${start}, ${e}) outside tensor ${name} (${size} bytes)`);
    }
    const buf = into ? into.subarray(0, e - start) : new Uint8Array(e - start);
    if (buf.length < e - start) throw new RangeError(`readBytes: buffer of ${into?.length} bytes is too small`);
    readFully(this.handle(), buf, 0, e - start, this.header.dataStart + t.dataOffsets[0] + start, this.path);
    return buf;
  }

  /** A tensor's raw bytes with its dtype and shape. */
  readRaw(name: string): RawTensor {
    const t = this.info(name);
    return { dtype: t.dtype, shape: [...t.shape], bytes: this.readBytes(name) };
  }

  private floatDtype(name: string): FloatDtype {
    const { dtype } = this.info(name);
    if (!isFloatDtype(dtype)) {
      throw new UserError(`${this.path}: tensor ${name} has dtype ${dtype}; only F32, F16 and BF16 convert to float32`);
    }
    return dtype;
  }

  /** A float tensor converted to float32. */
  read(name: string): Tensor {
    const dtype = this.floatDtype(name);
    return { dtype, shape: [...this.info(name).shape], data: decodeFloats(this.readBytes(name), dtype) };
  }

  /** Elements [start, start + count) of a float tensor (row-major flat indices), as float32. */
  readElements(name: string, start: number, count: number): Float32Array {
    const dtype = this.floatDtype(name);
    const size = dtypeSize(dtype);
    return decodeFloats(this.readBytes(name, start * size, (start + count) * size), dtype);
  }

  /** Row `row` of a float tensor of rank >= 1 (a row is the product of the trailing dimensions), as float32. */
  readRow(name: string, row: number): Float32Array {
    const { shape } = this.info(name);
    if (shape.length === 0) throw new RangeError(`${this.path}: tensor ${name} is a scalar`);
    if (!Number.isInteger(row) || row < 0 || row >= shape[0])
      throw new RangeError(`${this.path}: row ${row} outside tensor ${name} (${shape[0]} rows)`);
    const width = numel(shape.slice(1));
    return this.readElements(name, row * width, width);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Reads every tensor of a file, converted to float32 (one tensor's bytes in memory at a time besides the result). */
export function readSafetensors(path: string): Map<string, Tensor> {
  const f = SafetensorsFile.open(path);
  try {
    const out = new Map<string, Tensor>();
    for (const name of f.names()) out.set(name, f.read(name));
    return out;
  } finally {
    f.close();
  }
}

/** Reads one tensor (positioned read of its bytes only), converted to float32. */
export function readTensor(path: string, name: string): Tensor {
  const f = SafetensorsFile.open(path);
  try {
    return f.read(name);
  } finally {
    f.close();
  }
}

/** Reads one tensor's raw bytes. */
export function readTensorBytes(path: string, name: string): RawTensor {
  const f = SafetensorsFile.open(path);
  try {
    return f.readRaw(name);
  } finally {
    f.close();
  }
}

// -----------------------------------------------------------------------------------------------------------
// Writing

interface Slot extends TensorPlan {
  begin: number;
  end: number;
  written: number;
}

/**
 * Lays out a header for `plan`: tensors sorted by element size (largest first) then name, packed from offset
 * 0. Returns the padded header bytes (length prefix not included) and each tensor's [begin, end).
 */
export function planLayout(
  plan: readonly TensorPlan[],
  metadata?: Record<string, string>,
): {
  header: Uint8Array;
  offsets: Map<string, [number, number]>;
  bufferLength: number;
} {
  const seen = new Set<string>();
  for (const t of plan) {
    if (typeof t.name !== "string" || t.name.length === 0)
      throw new Error("safetensors: tensor names must be non-empty strings");
    if (t.name === "__metadata__") throw new Error("safetensors: a tensor cannot be named __metadata__");
    if (seen.has(t.name)) throw new Error(`safetensors: duplicate tensor name ${JSON.stringify(t.name)}`);
    seen.add(t.name);
    if (!isSafetensorsDtype(t.dtype))
      throw new Error(`safetensors: tensor ${t.name}: unknown dtype ${JSON.stringify(t.dtype)}`);
    checkShape(t.shape, `safetensors: tensor ${t.name}`);
  }
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string")
        throw new Error(`safetensors: metadata value for ${JSON.stringify(k)} must be a string`);
    }
  }
  const order = [...plan].sort(
    (a, b) => dtypeSize(b.dtype) - dtypeSize(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const offsets = new Map<string, [number, number]>();
  const obj: Record<string, unknown> = {};
  if (metadata !== undefined) obj.__metadata__ = { ...metadata };
  let at = 0;
  for (const t of order) {
    const end = at + tensorByteLength(t.dtype, t.shape);
    offsets.set(t.name, [at, end]);
    obj[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [at, end] };
    at = end;
  }
  const json = Buffer.from(JSON.stringify(obj), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(padded, 0x20);
  json.copy(header);
  return { header, offsets, bufferLength: at };
}

/**
 * A streaming safetensors writer. The constructor takes the header plan (every tensor's name, dtype and shape,
 * plus optional `__metadata__`), writes the header into `<path>.partial`, and fixes each tensor's offset;
 * then each tensor is written, in any order, either whole (`write`) or as consecutive parts (`writePart`),
 * with positioned writes. `close()` checks that every tensor was written completely and renames the file to
 * `path`; `abort()` removes the partial file. Only the data passed to one call is in memory.
 */
export class SafetensorsWriter {
  /** [begin, end) of each tensor, relative to the byte buffer. */
  readonly offsets: ReadonlyMap<string, readonly [number, number]>;
  /** Absolute file offset of the byte buffer. */
  readonly dataStart: number;
  /** Total bytes of tensor data. */
  readonly bufferLength: number;
  private readonly slots = new Map<string, Slot>();
  private readonly tmpPath: string;
  private fd: number | undefined;

  constructor(
    readonly path: string,
    plan: readonly TensorPlan[],
    metadata?: Record<string, string>,
  ) {
    const { header, offsets, bufferLength } = planLayout(plan, metadata);
    this.offsets = offsets;
    this.bufferLength = bufferLength;
    this.dataStart = 8 + header.length;
    for (const t of plan) {
      const [begin, end] = offsets.get(t.name)!;
      this.slots.set(t.name, { name: t.name, dtype: t.dtype, shape: [...t.shape], begin, end, written: 0 });
    }
    this.tmpPath = `${path}.partial`;
    try {
      this.fd = openSync(this.tmpPath, "w");
    } catch (e) {
      throw new UserError(`${path}: cannot create (${errCode(e)})`);
    }
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFully(this.fd, len, 0);
    writeFully(this.fd, header, 8);
  }

  private slot(name: string): Slot {
    const s = this.slots.get(name);
    if (!s) throw new Error(`SafetensorsWriter: ${JSON.stringify(name)} is not in the header plan`);
    return s;
  }

  private toBytes(s: Slot, data: Float32Array | Uint8Array): Uint8Array {
    if (data instanceof Float32Array) {
      if (!isFloatDtype(s.dtype))
        throw new Error(`SafetensorsWriter: tensor ${s.name} is ${s.dtype}; pass its raw bytes as a Uint8Array`);
      return encodeFloats(data, s.dtype);
    }
    if (data instanceof Uint8Array) return data;
    throw new TypeError(`SafetensorsWriter: tensor ${s.name}: data must be a Float32Array or a Uint8Array`);
  }

  /**
   * Writes the next part of a tensor, right after the bytes already written for it. A Float32Array is
   * converted to the tensor's float dtype; a Uint8Array is taken as raw little-endian bytes.
   */
  writePart(name: string, data: Float32Array | Uint8Array): void {
    if (this.fd === undefined) throw new Error("SafetensorsWriter: already closed");
    const s = this.slot(name);
    const bytes = this.toBytes(s, data);
    const size = s.end - s.begin;
    if (bytes.length % dtypeSize(s.dtype) !== 0) {
      throw new Error(
        `SafetensorsWriter: tensor ${name}: ${bytes.length} bytes is not a whole number of ${s.dtype} elements`,
      );
    }
    if (s.written + bytes.length > size) {
      throw new Error(
        `SafetensorsWriter: tensor ${name}: writing ${bytes.length} bytes after ${s.written} exceeds its ${size} bytes`,
      );
    }
    writeFully(this.fd, bytes, this.dataStart + s.begin + s.written);
    s.written += bytes.length;
  }

  /** Writes a whole tensor (its element count must match the plan). */
  write(name: string, data: Float32Array | Uint8Array): void {
    const s = this.slot(name);
    if (s.written !== 0) throw new Error(`SafetensorsWriter: tensor ${name} was already (partly) written`);
    const n = data instanceof Float32Array ? data.length * dtypeSize(s.dtype) : data.length;
    if (n !== s.end - s.begin) {
      throw new Error(
        `SafetensorsWriter: tensor ${name} ${s.dtype} ${JSON.stringify(s.shape)} needs ${s.end - s.begin} bytes, got ${n}`,
      );
    }
    this.writePart(name, data);
  }

  /** Names of tensors not yet completely written. */
  pending(): string[] {
    return [...this.slots.values()].filter((s) => s.written !== s.end - s.begin).map((s) => s.name);
  }

  /** Checks that every tensor is complete, closes the file and moves it to `path`. */
  close(): void {
    if (this.fd === undefined) throw new Error("SafetensorsWriter: already closed");
    const missing = this.pending();
    if (missing.length > 0) {
      this.abort();
      throw new Error(
        `SafetensorsWriter: ${missing.length} tensor(s) not completely written (${missing.slice(0, 5).join(", ")})`,
      );
    }
    closeSync(this.fd);
    this.fd = undefined;
    renameSync(this.tmpPath, this.path);
  }

  /** Closes and deletes the partial file (no-op after close). */
  abort(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    try {
      unlinkSync(this.tmpPath);
    } catch {
      // already gone
    }
  }
}

/** Writes float32 tensors (stored as each one's dtype, default F32) to a safetensors file. */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, TensorInput>,
  metadata?: Record<string, string>,
): void {
  const plan: TensorPlan[] = [];
  for (const [name, t] of tensors) {
    const dtype = t.dtype ?? "F32";
    if (!isFloatDtype(dtype)) throw new Error(`writeSafetensors: tensor ${name}: dtype must be F32, F16 or BF16`);
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`writeSafetensors: tensor ${name}: ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    }
    plan.push({ name, dtype, shape: t.shape });
  }
  const w = new SafetensorsWriter(path, plan, metadata);
  try {
    for (const [name, t] of tensors) w.write(name, t.data);
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
}

// -----------------------------------------------------------------------------------------------------------
// Checkpoint directories (single file or sharded)

/** `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  metadata?: Record<string, unknown>;
  /** Tensor name -> shard file name (relative to the checkpoint directory). */
  weightMap: Map<string, string>;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UserError(`${path}: cannot read ${what} (${errCode(e)})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON in ${what} (${(e as Error).message.replace(/\s+/g, " ")})`);
  }
}

/** A shard name must stay inside the checkpoint directory. */
function checkShardName(file: string, indexPath: string): void {
  const n = normalize(file);
  if (file.length === 0 || isAbsolute(file) || n.startsWith("..") || n.split(sep).includes("..")) {
    throw new UserError(
      `${indexPath}: shard file name ${JSON.stringify(file)} points outside the checkpoint directory`,
    );
  }
}

/** Reads and validates a `model.safetensors.index.json`. */
export function readSafetensorsIndex(path: string): SafetensorsIndex {
  const j = readJson(path, "the safetensors index");
  if (!isObject(j) || !isObject(j.weight_map))
    throw new UserError(`${path}: not a safetensors index (no "weight_map" object)`);
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(j.weight_map)) {
    if (typeof file !== "string")
      throw new UserError(`${path}: weight_map[${JSON.stringify(name)}] is not a file name`);
    checkShardName(file, path);
    weightMap.set(name, file);
  }
  if (j.metadata !== undefined && !isObject(j.metadata)) throw new UserError(`${path}: "metadata" must be an object`);
  return { ...(j.metadata !== undefined ? { metadata: j.metadata as Record<string, unknown> } : {}), weightMap };
}

/** Writes a `model.safetensors.index.json` (`metadata.total_size` = the tensors' total bytes, as Hugging Face does). */
export function writeSafetensorsIndex(
  path: string,
  weightMap: ReadonlyMap<string, string>,
  totalSize: number,
  metadata: Record<string, unknown> = {},
): void {
  const sorted = [...weightMap.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out = { metadata: { ...metadata, total_size: totalSize }, weight_map: Object.fromEntries(sorted) };
  writeFileSync(path, JSON.stringify(out, null, 2) + "\n");
}

/**
 * The safetensors weights of a Hugging Face checkpoint directory: `model.safetensors.index.json` with its
 * shards when the index exists, else `model.safetensors`. Shards are opened lazily and kept open until close().
 */
export class SafetensorsCheckpoint {
  /** Shard file names (relative to dir) in first-use order of the weight map; ["model.safetensors"] if single. */
  readonly files: string[];
  /** Tensor name -> shard file name. */
  readonly weightMap: Map<string, string>;
  /** The index's metadata, when sharded. */
  readonly indexMetadata: Record<string, unknown> | undefined;
  private readonly open = new Map<string, SafetensorsFile>();

  private constructor(
    readonly dir: string,
    readonly sharded: boolean,
    weightMap: Map<string, string>,
    indexMetadata?: Record<string, unknown>,
  ) {
    this.weightMap = weightMap;
    this.indexMetadata = indexMetadata;
    this.files = [...new Set(weightMap.values())];
  }

  /**
   * Opens a checkpoint directory (or the path of a single .safetensors file, or of an index file). Reads every
   * shard's header and checks that each weight_map entry is in its shard. Throws UserError when there are no
   * weights or a file is malformed.
   */
  static open(path: string): SafetensorsCheckpoint {
    const p = resolve(path);
    if (!existsSync(p)) throw new UserError(`${p}: no such file or directory`);
    let dir = p;
    let indexPath: string | undefined;
    let single: string | undefined;
    if (statSync(p).isFile()) {
      dir = dirname(p);
      if (p.endsWith(".index.json")) indexPath = p;
      else single = basename(p);
    } else if (existsSync(join(p, INDEX_FILE))) {
      indexPath = join(p, INDEX_FILE);
    } else if (existsSync(join(p, SINGLE_FILE))) {
      single = SINGLE_FILE;
    } else {
      throw new UserError(`${p}: no ${SINGLE_FILE} or ${INDEX_FILE} (not a safetensors checkpoint)`);
    }
    let ckpt: SafetensorsCheckpoint;
    if (indexPath) {
      const index = readSafetensorsIndex(indexPath);
      if (index.weightMap.size === 0) throw new UserError(`${indexPath}: empty weight_map`);
      ckpt = new SafetensorsCheckpoint(dir, true, index.weightMap, index.metadata);
      for (const file of ckpt.files) {
        if (!existsSync(join(dir, file))) throw new UserError(`${indexPath}: shard ${file} is missing`);
      }
    } else {
      const header = readSafetensorsHeader(join(dir, single!));
      ckpt = new SafetensorsCheckpoint(dir, false, new Map([...header.tensors.keys()].map((n) => [n, single!])));
    }
    try {
      for (const file of ckpt.files) {
        const f = ckpt.file(file);
        for (const [name, shard] of ckpt.weightMap) {
          if (shard === file && !f.has(name))
            throw new UserError(`${f.path}: tensor ${name} listed in the index is not in this shard`);
        }
      }
    } catch (e) {
      ckpt.close();
      throw e;
    }
    return ckpt;
  }

  /** The open SafetensorsFile of a shard (relative name). */
  file(file: string): SafetensorsFile {
    let f = this.open.get(file);
    if (!f) {
      f = SafetensorsFile.open(join(this.dir, file));
      this.open.set(file, f);
    }
    return f;
  }

  /** Tensor names (weight-map order). */
  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** The open file holding a tensor. */
  fileOf(name: string): SafetensorsFile {
    const file = this.weightMap.get(name);
    if (file === undefined)
      throw new UserError(`${this.dir}: no tensor named ${JSON.stringify(name)} in the checkpoint`);
    return this.file(file);
  }

  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }

  read(name: string): Tensor {
    return this.fileOf(name).read(name);
  }

  readRaw(name: string): RawTensor {
    return this.fileOf(name).readRaw(name);
  }

  close(): void {
    for (const f of this.open.values()) f.close();
    this.open.clear();
  }
}

/** Reads every tensor of a checkpoint directory (single file or sharded), converted to float32. */
export function readCheckpoint(path: string): Map<string, Tensor> {
  const c = SafetensorsCheckpoint.open(path);
  try {
    const out = new Map<string, Tensor>();
    for (const name of c.names()) out.set(name, c.read(name));
    return out;
  } finally {
    c.close();
  }
}
