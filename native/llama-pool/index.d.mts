// index.d.mts: TypeScript types of the llama-pool addon (native/llama-pool/src/*.cc) and its loader.

export interface LlamaPoolModelInfo {
  description: string;
  vocabSize: number;
  trainContext: number;
  layers: number;
  embedding: number;
  heads: number;
  kvHeads: number;
  sizeBytes: number;
}

export interface LlamaPoolContextOptions {
  /** KV cells of the shared pool (llama.cpp pads it up to a multiple of 256). Default 4096. */
  contextSize?: number;
  /** Sequence ids 0..sequences-1 (n_seq_max). Default 1. */
  sequences?: number;
  /** Most tokens per decode call (n_batch). Default 512. */
  batchSize?: number;
  /** Physical micro-batch (n_ubatch). Default min(batchSize, 512). */
  ubatchSize?: number;
  /** Threads for single-token decoding. Default: hardware concurrency. */
  threads?: number;
  /** Threads for multi-token batches. Default: threads. */
  threadsBatch?: number;
  /** Force flash attention on/off (default: llama.cpp's auto). */
  flashAttention?: boolean;
  /** KV storage type (default f16). */
  kvType?: "f16" | "f32";
}

export interface LlamaPoolStats {
  cells: number;
  used: number;
  free: number;
  perSequence: number[];
}

export interface LlamaPoolContext {
  /**
   * One llama_decode of a multi-sequence batch. Row i puts tokens[i] at positions[i] of sequence seqIds[i];
   * a sequence's rows must continue its largest held position and be contiguous. Rows with logits[i] != 0
   * produce logits: row k (k-th flagged row, batch order) is copied, off the main thread, into
   * out[k*V .. (k+1)*V) when `out` is given. Resolves with the number of logit rows.
   * Only one decode at a time per context; other calls throw while it is in flight.
   */
  decode(
    tokens: Int32Array,
    positions: Int32Array,
    seqIds: Int32Array,
    logits: Uint8Array,
    out?: Float32Array,
  ): Promise<number>;
  /** Zero-copy view of the k-th logit row of the last decode; INVALID after the next decode or dispose. */
  logitsView(k?: number): Float32Array;
  /** Removes positions [p0, p1) of a sequence (p1 < 0: to the end); nothing moves. Returns cells freed. */
  removeRange(seq: number, p0: number, p1: number): number;
  /** Removes a whole sequence; returns cells freed. */
  clearSequence(seq: number): number;
  clearAll(): void;
  /** llama.cpp's own min/max position of a sequence (-1 when empty). */
  seqPosRange(seq: number): { min: number; max: number };
  /** Resident positions by the addon's record: [start0, end0, start1, end1, ...]. */
  seqRuns(seq: number): Int32Array;
  /** Pool cells used/free (counted by the addon; llama.cpp has no query). */
  stats(): LlamaPoolStats;
  /** llama_state_get_size (grows by a fixed size per held cell; for cross-checks). */
  stateSize(): number;
  /** llama_state_seq_get_size: a header plus a fixed record per cell llama.cpp holds for the sequence. */
  seqStateSize(seq: number): number;
  setThreads(threads: number, threadsBatch?: number): void;
  info(): {
    cells: number;
    cellsPerSequenceLimit: number;
    sequences: number;
    batchSize: number;
    ubatchSize: number;
    vocabSize: number;
    threads: number;
    threadsBatch: number;
    kvUnified: true;
  };
  dispose(): void;
}

export interface LlamaPoolModel {
  createContext(options?: LlamaPoolContextOptions): Promise<LlamaPoolContext>;
  info(): LlamaPoolModelInfo;
  /** Throws while contexts of this model are alive. */
  dispose(): void;
}

export interface LlamaPoolRuntime {
  llamaVersion: string;
  expectedLlamaVersion: string;
  systemInfo: string;
  maxParallelSequences: number;
  devices: string[];
}

export interface LlamaPoolDevice {
  name: string;
  description: string;
  /** A discrete or integrated GPU. */
  gpu: boolean;
}

export interface LlamaPoolBinding {
  init(libDir?: string): LlamaPoolRuntime;
  /** Registers one more ggml backend library; `loaded` false when dlopen failed, with ggml's `reason`. */
  loadBackend(path: string): { loaded: boolean; reason?: string; devices: LlamaPoolDevice[] };
  loadModel(path: string, options?: { gpuLayers?: number }): Promise<LlamaPoolModel>;
  setLogLevel(level: "debug" | "info" | "warn" | "error" | "none"): void;
}

export interface LlamaPoolBuildInfo {
  addon: string;
  nodeLlamaCpp: string;
  platformPackage: string;
  binsDir: string;
  llamaCppRelease: string;
  llamaVersion: string;
  nodeAbi: string;
  napiVersion: number;
  builtAt: string;
}

export type LlamaPoolLoadResult =
  | { ok: true; binding: LlamaPoolBinding; build: LlamaPoolBuildInfo; runtime: LlamaPoolRuntime }
  | { ok: false; reason: string };

export function loadLlamaPool(): LlamaPoolLoadResult;

export interface LlamaPoolGpuResult {
  /** GPU devices registered (empty: serve on the CPU). */
  gpuDevices: LlamaPoolDevice[];
  /** Each GPU backend tried, in order (CUDA, then Vulkan), and why one did not load. */
  tried: { backend: "cuda" | "vulkan"; library?: string; loaded: boolean; reason?: string }[];
  /** Every device registered after the attempt. */
  devices: LlamaPoolDevice[];
}

/** Registers node-llama-cpp's CUDA or Vulkan ggml backend when one loads here (once per process). */
export function loadGpuBackends(): LlamaPoolGpuResult;
