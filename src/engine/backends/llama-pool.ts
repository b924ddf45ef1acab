/**
 * The llama.cpp backend over our own addon (native/llama-pool): any GGUF model through node-llama-cpp's
 * prebuilt libllama, in ONE llama.cpp context whose KV cache is unified (kv_unified = true): a single pool of
 * cells shared by every sequence. node-llama-cpp hard-codes kv_unified = false, so its backend
 * (./llamacpp.ts) gives each sequence a fixed slice of n_ctx / n_seq cells; here the cells one request's
 * evictions free serve any other request at once, which is what the engine's one KV budget assumes.
 *
 * Invariants:
 *   - positions are LOGICAL: a token goes in at the position the engine gives; `evict` frees the cells of
 *     [start, end) (llama_memory_seq_rm) and moves nothing, so later tokens keep their positions and keys;
 *   - llama.cpp accepts, per sequence and batch, contiguous positions starting one past the largest position
 *     the sequence holds. Memento evictions are interior, and the engine rebuilds a preempted request chunk
 *     by chunk with its evictions in between, so both meet the rule; a memento rewritten after its evicted
 *     block (restart mode) does not, hence `capabilities.restartMode` false;
 *   - resident cells are the addon's record (stats().perSequence), refreshed after every call that changes
 *     them; `verifyCells` cross-checks it against llama.cpp's own per-sequence state size and position range;
 *   - one llama_decode per call, on the addon's worker thread (the event loop stays free): `step` puts a whole
 *     engine step (decode rows and prefill chunks of many sequences, at most batchSize rows) in one
 *     multi-sequence batch and asks logits only for the rows that want them; `decode` is the one-row-per-
 *     sequence case; `prefill` sends one sequence's chunks of at most batchSize rows, logits for the last row;
 *   - step and decode copy their logit rows (off the main thread) into ONE preallocated Float32Array and return
 *     subarray views of it: they are valid until the next `step` or `decode` (the engine consumes them before
 *     its next forward call). `prefill` returns a fresh array.
 */
import { availableParallelism } from "node:os";
import {
  loadGpuBackends,
  loadLlamaPool,
  type LlamaPoolBinding,
  type LlamaPoolContext,
  type LlamaPoolModel,
} from "../../../native/llama-pool/index.mjs";
import type { Backend, BackendCapabilities, DecodeInput, SeqId, StepInput } from "../types.js";
import { LLAMACPP_CAPABILITIES } from "./capabilities.js";
import type { LlamaCppCommonOptions } from "./llamacpp.js";

/** No restart mode (llama.cpp's position rule, as for node-llama-cpp), but ONE pool of cells for all sequences. */
export const LLAMA_POOL_CAPABILITIES: BackendCapabilities = Object.freeze({
  restartMode: false,
  unifiedKvPool: true,
  limitations: LLAMACPP_CAPABILITIES.limitations,
});

/**
 * llama.cpp threads when none are given, for both llama.cpp backends: every core but one (the event loop's;
 * decode runs on a worker thread). node-llama-cpp's own default spins on every core: on a loaded 2-core
 * machine the README's toy prompt took minutes instead of a fraction of a second.
 */
export function defaultLlamaCppThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

export interface LlamaPoolBackendOptions extends LlamaCppCommonOptions {
  /** KV cells of the shared pool (llama.cpp pads it to a multiple of 256; kvCapacityTokens is the real figure). Default 8192. */
  cells?: number;
}

/** Why the addon cannot run here, or undefined when it can (loads it once). */
export function llamaPoolUnavailableReason(): string | undefined {
  const r = loadLlamaPool();
  return r.ok ? undefined : r.reason;
}

/** Whether the addon loads here, in the shape chooseLlamaCppBackend takes (loads it once). */
export function llamaPoolAvailability(): { ok: true } | { ok: false; reason: string } {
  const reason = llamaPoolUnavailableReason();
  return reason === undefined ? { ok: true } : { ok: false, reason };
}

/** Reusable input arrays of one llama_decode (batchSize rows). */
class DecodeRows {
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqIds: Int32Array;
  readonly logits: Uint8Array;

  constructor(capacity: number) {
    this.tokens = new Int32Array(capacity);
    this.positions = new Int32Array(capacity);
    this.seqIds = new Int32Array(capacity);
    this.logits = new Uint8Array(capacity);
  }
}

/**
 * llama.cpp's own count of a sequence's cells, from llama_state_seq_get_size (a fixed header plus a fixed
 * record per held cell), calibrated once with one and two tokens.
 */
class CellProbe {
  private constructor(
    private readonly header: number,
    private readonly perCell: number,
  ) {}

  static async calibrate(ctx: LlamaPoolContext): Promise<CellProbe> {
    ctx.clearSequence(0);
    const put = (pos: number) => ctx.decode(Int32Array.of(0), Int32Array.of(pos), Int32Array.of(0), Uint8Array.of(0));
    await put(0);
    const one = ctx.seqStateSize(0);
    await put(1);
    const two = ctx.seqStateSize(0);
    ctx.clearSequence(0);
    const perCell = two - one;
    if (!(perCell > 0)) throw new Error(`llama.cpp state-size calibration failed (one ${one}, two ${two})`);
    return new CellProbe(one - perCell, perCell);
  }

  cells(ctx: LlamaPoolContext, seq: SeqId): number {
    if (ctx.seqPosRange(seq).max < 0) return 0;
    return (ctx.seqStateSize(seq) - this.header) / this.perCell;
  }
}

export class LlamaPoolBackend implements Backend {
  readonly name = "llama.cpp (shared KV pool)";
  readonly capabilities = LLAMA_POOL_CAPABILITIES;
  readonly vocabSize: number;
  readonly maxSequences: number;
  /** Cells of the shared pool (llama.cpp's n_ctx, after its padding). */
  readonly kvCapacityTokens: number;
  /** Most rows per llama_decode (llama.cpp's n_batch, after its clamping). */
  readonly batchSize: number;
  /** The engine's per-step token budget is capped to one llama_decode. */
  readonly maxStepTokens: number;
  /** llama_decode calls made (each step, decode and prefill chunk is one). */
  decodeCalls = 0;
  /** Most cells the pool held at once (measured after every call that adds cells). */
  peakUsedCells = 0;
  private readonly freeIds: SeqId[] = [];
  private readonly live = new Set<SeqId>();
  /** Cells each sequence holds (the addon's record, refreshed after every change). */
  private readonly resident: Float64Array;
  private readonly rows: DecodeRows;
  /** step's and decode's logit rows, at most one per sequence: [min(sequences, batchSize) x vocabSize]. */
  private readonly out: Float32Array;
  private used = 0;
  private closed = false;

  private constructor(
    private readonly model: LlamaPoolModel,
    private readonly ctx: LlamaPoolContext,
    private readonly probe: CellProbe | undefined,
    /** Where the weights run (gpu "auto" found a GPU, or the CPU and why). */
    readonly deviceChoice: LlamaPoolDeviceChoice,
  ) {
    const info = ctx.info();
    this.vocabSize = info.vocabSize;
    this.maxSequences = info.sequences;
    this.kvCapacityTokens = info.cells;
    this.batchSize = info.batchSize;
    this.maxStepTokens = info.batchSize;
    this.resident = new Float64Array(info.sequences);
    this.rows = new DecodeRows(info.batchSize);
    this.out = new Float32Array(Math.min(info.sequences, info.batchSize) * info.vocabSize);
    for (let s = info.sequences - 1; s >= 0; s--) this.freeIds.push(s);
  }

  /** Loads the GGUF model and creates one unified-KV context of `cells` cells and `sequences` sequence ids. */
  static async create(opts: LlamaPoolBackendOptions): Promise<LlamaPoolBackend> {
    const loaded = loadLlamaPool();
    if (!loaded.ok) throw new Error(loaded.reason);
    const sequences = opts.sequences ?? 4;
    const cells = opts.cells ?? 8192;
    if (!Number.isInteger(sequences) || sequences < 1)
      throw new Error(`sequences must be a positive integer, got ${sequences}`);
    if (!Number.isInteger(cells) || cells < 2) throw new Error(`cells must be an integer >= 2, got ${cells}`);
    const threads = opts.threads ?? defaultLlamaCppThreads();
    // Errors only, as the node-llama-cpp backend logs: llama.cpp warns that a unified pool's n_ctx_seq (all of
    // the pool) exceeds the model's training context, but positions are bounded by the server's maxModelLen.
    loaded.binding.setLogLevel("error");
    const choice = chooseLlamaPoolDevice(opts);
    const model = await loadModel(loaded.binding, opts, choice.gpuLayers);
    let ctx: LlamaPoolContext | undefined;
    try {
      ctx = await model.createContext({
        contextSize: cells,
        sequences,
        batchSize: opts.batchSize ?? Math.max(sequences, 512),
        threads,
        threadsBatch: threads,
        ...(opts.flashAttention !== undefined ? { flashAttention: opts.flashAttention } : {}),
        ...(opts.kvCacheType ? { kvType: opts.kvCacheType === "F32" ? ("f32" as const) : ("f16" as const) } : {}),
      });
      const probe = opts.verifyCells ? await CellProbe.calibrate(ctx) : undefined;
      return new LlamaPoolBackend(model, ctx, probe, choice);
    } catch (e) {
      ctx?.dispose();
      model.dispose();
      throw e;
    }
  }

  /** "CPU", or the GPU device(s) the layers were offloaded to. */
  get device(): string {
    return this.deviceChoice.device;
  }

  /** Sequences alive. */
  get sequences(): number {
    return this.live.size;
  }

  /** Cells the pool holds now, over all sequences. */
  get usedCells(): number {
    return this.used;
  }

  /** The addon's pool counters (cells, used, free, per sequence). */
  poolStats(): { cells: number; used: number; free: number; perSequence: number[] } {
    return this.ctx.stats();
  }

  /** llama.cpp's smallest and largest position of a sequence (-1 when it holds none). */
  positionRange(seq: SeqId): { min: number; max: number } {
    this.requireLive(seq);
    return this.ctx.seqPosRange(seq);
  }

  /** Resident logical positions of a sequence, ascending. */
  residentPositions(seq: SeqId): number[] {
    this.requireLive(seq);
    const runs = this.ctx.seqRuns(seq);
    const out: number[] = [];
    for (let i = 0; i < runs.length; i += 2) for (let p = runs[i]; p < runs[i + 1]; p++) out.push(p);
    return out;
  }

  async allocate(): Promise<SeqId> {
    this.requireOpen();
    const id = this.freeIds.pop();
    if (id === undefined) throw new Error(`no free sequence (${this.maxSequences} in use)`);
    this.ctx.clearSequence(id); // empty already; make sure
    this.live.add(id);
    this.refresh();
    return id;
  }

  async prefill(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array> {
    this.requireLive(seq);
    if (tokens.length === 0) throw new Error("prefill of no tokens");
    if (positions.length !== tokens.length)
      throw new Error(`prefill: ${tokens.length} tokens but ${positions.length} positions`);
    this.checkContinues(seq, positions[0]);
    for (let i = 1; i < positions.length; i++) {
      if (positions[i] !== positions[0] + i) {
        throw new Error(
          `prefill: llama.cpp needs contiguous positions in one call (got ${positions[i - 1]} then ${positions[i]}); ` +
            "rebuild a cache with gaps chunk by chunk with the evictions in between",
        );
      }
    }
    const logits = new Float32Array(this.vocabSize);
    for (let from = 0; from < tokens.length; from += this.batchSize) {
      const n = Math.min(this.batchSize, tokens.length - from);
      const last = from + n === tokens.length;
      const flags = new Uint8Array(n);
      if (last) flags[n - 1] = 1;
      const chunk = Int32Array.from({ length: n }, (_, i) => tokens[from + i]);
      const pos = Int32Array.from({ length: n }, (_, i) => positions[from + i]);
      try {
        this.decodeCalls++;
        await this.ctx.decode(chunk, pos, new Int32Array(n).fill(seq), flags, last ? logits : undefined);
      } finally {
        this.refresh();
      }
    }
    this.check();
    return logits;
  }

  async step(inputs: readonly StepInput[]): Promise<(Float32Array | undefined)[]> {
    if (inputs.length === 0) return [];
    this.requireOpen();
    let n = 0;
    for (const input of inputs) n += input.tokens.length;
    if (n > this.batchSize) throw new Error(`step of ${n} tokens exceeds batchSize ${this.batchSize}`);
    const logitRows = inputs.reduce((k, input) => k + (input.logits ? 1 : 0), 0);
    if (logitRows * this.vocabSize > this.out.length)
      throw new Error(
        `step asks logits for ${logitRows} rows, more than ${this.out.length / this.vocabSize} sequences`,
      );
    const { tokens, positions, seqIds, logits } = this.rows;
    const seen = new Set<SeqId>();
    let row = 0;
    for (const input of inputs) {
      this.requireLive(input.seq);
      if (seen.has(input.seq)) throw new Error(`step: sequence ${input.seq} appears twice in one batch`);
      seen.add(input.seq);
      if (input.tokens.length === 0) throw new Error(`step: no tokens for sequence ${input.seq}`);
      this.checkContinues(input.seq, input.position);
      for (let k = 0; k < input.tokens.length; k++, row++) {
        tokens[row] = input.tokens[k];
        positions[row] = input.position + k;
        seqIds[row] = input.seq;
        logits[row] = input.logits && k === input.tokens.length - 1 ? 1 : 0;
      }
    }
    try {
      this.decodeCalls++;
      await this.ctx.decode(
        tokens.subarray(0, n),
        positions.subarray(0, n),
        seqIds.subarray(0, n),
        logits.subarray(0, n),
        this.out,
      );
    } finally {
      this.refresh();
    }
    this.check();
    const V = this.vocabSize;
    let k = 0; // the k-th row that asked for logits is the k-th row of `out`
    return inputs.map((input) => {
      if (!input.logits) return undefined;
      const view = this.out.subarray(k * V, (k + 1) * V);
      k++;
      return view;
    });
  }

  /** One row per listed sequence: `step` with single-token inputs, every one asking for its logits. */
  async decode(batch: readonly DecodeInput[]): Promise<Float32Array[]> {
    const out = await this.step(
      batch.map((b) => ({ seq: b.seq, tokens: [b.token], position: b.position, logits: true })),
    );
    return out as Float32Array[];
  }

  async evict(seq: SeqId, start: number, end: number): Promise<number> {
    this.requireLive(seq);
    if (!(end > start)) return 0;
    if (!Number.isInteger(start) || start < 0) throw new Error(`evict: bad start ${start}`);
    const freed = this.ctx.removeRange(seq, start, Math.min(end, 2 ** 31 - 1));
    this.refresh();
    this.check();
    return freed;
  }

  async recompute(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array> {
    this.requireLive(seq);
    if (tokens.length === 0) throw new Error("recompute of no tokens");
    const first = positions[0];
    const last = positions[positions.length - 1];
    const runs = this.ctx.seqRuns(seq);
    const end = runs.length ? runs[runs.length - 1] : -1;
    if (end !== last + 1 || last - first + 1 !== tokens.length || !this.holdsAll(runs, first, end)) {
      throw new Error(
        `recompute: positions ${first}..${last} must be the resident, contiguous tail of sequence ${seq} ` +
          "(llama.cpp can only rewrite the tail)",
      );
    }
    // After removing them, llama.cpp accepts new tokens only right after the largest position left.
    let before = -1;
    for (let i = 0; i < runs.length; i += 2) if (runs[i] < first) before = Math.min(runs[i + 1], first) - 1;
    if (before >= 0 && before + 1 !== first) {
      throw new Error(
        `restart mode is not supported by the ${this.name} backend: recomputing positions ${first}..${last} of ` +
          `sequence ${seq} means writing them after the evicted gap ${before + 1}..${first - 1}, and llama.cpp only ` +
          "accepts positions continuing the sequence's largest one",
      );
    }
    await this.evict(seq, first, last + 1);
    return this.prefill(seq, tokens, positions);
  }

  async free(seq: SeqId): Promise<void> {
    if (!this.live.has(seq) || this.closed) return;
    this.ctx.clearSequence(seq);
    this.live.delete(seq);
    this.freeIds.push(seq);
    this.refresh();
    this.check();
  }

  residentTokens(seq: SeqId): number {
    return this.live.has(seq) ? this.resident[seq] : 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.live.clear();
    this.ctx.dispose();
    this.model.dispose();
  }

  // -------------------------------------------------------------------------------------------------------

  private requireOpen(): void {
    if (this.closed) throw new Error(`the ${this.name} backend is closed`);
  }

  private requireLive(seq: SeqId): void {
    this.requireOpen();
    if (!this.live.has(seq)) throw new Error(`unknown sequence ${seq}`);
  }

  /** llama.cpp's rule: a sequence's next token goes one past its largest held position (anywhere when empty). */
  private checkContinues(seq: SeqId, first: number): void {
    if (!Number.isInteger(first) || first < 0) throw new Error(`bad position ${first}`);
    const runs = this.ctx.seqRuns(seq);
    const max = runs.length ? runs[runs.length - 1] - 1 : -1;
    if (max >= 0 && first !== max + 1) {
      throw new Error(
        `sequence ${seq}: position ${first} does not continue its largest resident position ${max} (llama.cpp requires ${max + 1})`,
      );
    }
  }

  private holdsAll(runs: Int32Array, first: number, end: number): boolean {
    let n = 0;
    for (let i = 0; i < runs.length; i += 2) n += Math.max(0, Math.min(runs[i + 1], end) - Math.max(runs[i], first));
    return n === end - first;
  }

  /** Re-reads the addon's cell record. */
  private refresh(): void {
    const st = this.ctx.stats();
    for (let s = 0; s < st.perSequence.length; s++) this.resident[s] = st.perSequence[s];
    this.used = st.used;
    if (st.used > this.peakUsedCells) this.peakUsedCells = st.used;
  }

  /** verifyCells: the addon's record must match llama.cpp's own cells and position ranges. */
  private check(): void {
    if (!this.probe) return;
    let sum = 0;
    for (let s = 0; s < this.maxSequences; s++) {
      const measured = this.probe.cells(this.ctx, s);
      if (measured !== this.resident[s])
        throw new Error(`sequence ${s}: llama.cpp holds ${measured} cells, the addon recorded ${this.resident[s]}`);
      const { min, max } = this.ctx.seqPosRange(s);
      const runs = this.ctx.seqRuns(s);
      const eMin = runs.length ? runs[0] : -1;
      const eMax = runs.length ? runs[runs.length - 1] - 1 : -1;
      if (min !== eMin || max !== eMax)
        throw new Error(`sequence ${s}: llama.cpp positions ${min}..${max}, recorded ${eMin}..${eMax}`);
      sum += measured;
    }
    if (sum !== this.used) throw new Error(`the pool holds ${sum} cells, the addon counts ${this.used}`);
  }
}

/** Where the weights run: "CPU", or the GPU devices `gpu: "auto"` found; why not a GPU, when one was sought. */
export interface LlamaPoolDeviceChoice {
  device: string;
  gpuLayers: number;
  /** gpu "auto" found no GPU: each GPU backend tried and why it did not load. */
  noGpuReason?: string;
}

/**
 * `gpu: "auto"`: offload every layer (or `gpuLayers`) to the GPU when node-llama-cpp's CUDA or Vulkan backend
 * loads here and finds one; otherwise, and with `gpu` false, every layer stays on the CPU.
 */
export function chooseLlamaPoolDevice(opts: Pick<LlamaPoolBackendOptions, "gpu" | "gpuLayers">): LlamaPoolDeviceChoice {
  if (opts.gpu !== "auto") return { device: "CPU", gpuLayers: 0 };
  const g = loadGpuBackends();
  if (g.gpuDevices.length === 0) {
    const why = g.tried.map((t) => `${t.backend}: ${t.reason ?? "no GPU device"}`).join("; ");
    return { device: "CPU", gpuLayers: 0, noGpuReason: why || "no GPU backend package installed" };
  }
  return {
    device: g.gpuDevices.map((d) => `${d.name} (${d.description})`).join(", "),
    gpuLayers: opts.gpuLayers ?? -1, // llama.cpp: -1 = every layer
  };
}

async function loadModel(
  binding: LlamaPoolBinding,
  opts: LlamaPoolBackendOptions,
  gpuLayers: number,
): Promise<LlamaPoolModel> {
  return binding.loadModel(opts.modelPath, { gpuLayers });
}
