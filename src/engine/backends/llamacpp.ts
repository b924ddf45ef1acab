/**
 * The llama.cpp backend: any GGUF model through node-llama-cpp (pinned 3.22.1, llama.cpp release v0.5.0 of its
 * prebuilt binaries), driven through the context's LOW-LEVEL native API so that positions stay logical:
 *
 *   initBatch(n) / addToBatch(seq, firstPosition, tokens, logitIndexes) / decodeBatch()
 *       tokens go in at the explicit positions we give (never at "the sequence's length");
 *   removeTokenCellsFromSequence(seq, start, end)      (llama_memory_seq_rm)
 *       frees the cells with position in [start, end) and moves nothing: later tokens keep their positions and
 *       their already-rotated keys, so the next token still goes in at its logical position, past the
 *       sequence's cell count;
 *   sampleToken(batchIndex, greedySampler, ..., logits = true)
 *       hands back the full logit vector of one batch row (the engine samples in TypeScript).
 *
 * node-llama-cpp's public `LlamaContextSequence.eraseContextTokenRanges` must NOT be used: after removing a
 * range it SHIFTS every later cell down (llama_memory_seq_add, re-rotating their keys), which is the
 * opposite of Memento's semantics. test/llamacpp-guard.test.ts fails if an upgrade changes what the
 * low-level calls do (position drift after a removal).
 *
 * Constraints of this llama.cpp version (checked in llama_batch_allocr::init) that shape the API:
 *   - the positions one batch writes for a sequence must be contiguous, and the first one must be exactly one
 *     past the largest position the sequence holds (any position when it holds none). Memento evictions
 *     remove INTERIOR ranges (the trigger token after the block stays), so generation continues normally;
 *     the engine rebuilds a preempted request chunk by chunk with the evictions in between, which meets it too;
 *   - restart mode cannot be served: recomputing a memento means writing it again after a gap at the end of
 *     the sequence (its block was just evicted), which llama.cpp rejects. `recompute` throws a clear error in
 *     that case (and works when there is no gap before the recomputed tokens). The backend declares it
 *     (`capabilities.restartMode` false), so the engine refuses such requests before they reach it.
 *
 * Memory: llama.cpp's KV cache is not unified here (node-llama-cpp does not expose `kv_unified`), so each of a
 * context's `sequences` gets its own fixed stream of cells, allocated up front; a full sequence cannot borrow
 * cells from another. The engine's shared budget therefore maps onto `sequences x cellsPerSequence` cells,
 * and a user configures the two numbers:
 *   - cellsPerSequence: the most KV cells ONE request may hold at once, i.e. its Memento PEAK (prompt + the
 *     largest resident working set), not its total length. With block eviction the peak is 2-3x below the
 *     length (`memento kv simulate` gives it for real traces), so the same memory holds 2-3x more sequences
 *     than a vanilla deployment, which must size cellsPerSequence = prompt + max_tokens;
 *   - sequences: how many requests run at once (= memory / (cellsPerSequence x bytes per token)).
 * `kvCapacityTokens = sequences x cellsPerSequence` caps the engine's budget; a request that outgrows its
 * own sequence gets an Error ("sequence N is full") from prefill/decode before llama.cpp is called.
 *
 * Resident cells are MEASURED: llama.cpp's state size (llama_state_get_size) is a fixed part plus, for every
 * sequence that holds cells, a stream header plus one fixed-size record per cell; the backend calibrates
 * these two sizes when it starts (one and two tokens in sequence 0), after which the state size gives the
 * exact number of cells held. Every eviction reports the cells llama.cpp actually freed (state size before
 * and after), and is checked against the positions the backend wrote; any mismatch throws.
 */
import type { Backend, DecodeInput, SeqId } from "../types.js";
import { LLAMACPP_CAPABILITIES } from "./capabilities.js";

// The parts of node-llama-cpp's internal native objects this backend uses (node_modules/node-llama-cpp/dist/
// bindings/AddonTypes.d.ts). They are internal: the guard test pins their behaviour.
interface NativeContext {
  getContextSize(): number;
  initBatch(size: number): void;
  addToBatch(
    sequenceId: number,
    firstTokenSequenceIndex: number,
    tokens: Uint32Array,
    logitIndexes: Uint32Array,
  ): Uint32Array;
  decodeBatch(): Promise<void>;
  sampleToken(
    batchLogitIndex: number,
    sampler: NativeSampler,
    probabilities: boolean,
    confidence?: boolean,
    logits?: boolean,
  ): Promise<
    [token: number, probabilities: number[] | undefined, confidence: number | undefined, logits: number[] | undefined]
  >;
  disposeSequence(sequenceId: number): void;
  removeTokenCellsFromSequence(sequenceId: number, startPos: number, endPos: number): boolean;
  getSequenceKvCacheMinPosition(sequenceId: number): number;
  getSequenceKvCacheMaxPosition(sequenceId: number): number;
  getStateSize(): number;
  setThreads(threads: number): void;
}
interface NativeSampler {
  applyConfig(config: Record<string, unknown>): void;
  dispose(): void;
}
interface NativeBindings {
  AddonSampler: new (model: unknown) => NativeSampler;
}

/** Serving's GPU choice for both llama.cpp backends: a GPU when the machine has one. */
export const DEFAULT_LLAMACPP_GPU = "auto" as const;

/** The node-llama-cpp package version this backend was written and measured against. */
export const NODE_LLAMA_CPP_VERSION = "3.22.1";

/** Options both llama.cpp backends take (node-llama-cpp's per-sequence KV and the shared-pool addon). */
export interface LlamaCppCommonOptions {
  /** Path of a GGUF model file. */
  modelPath: string;
  /** Sequences in the context: the most requests alive at once (default 4). */
  sequences?: number;
  /** Most tokens per llama_decode call (prefill chunk; also bounds the decode batch). Default max(sequences, 512). */
  batchSize?: number;
  /** CPU threads (default: node-llama-cpp's choice; the pool: defaultLlamaCppThreads()). */
  threads?: number;
  /**
   * "auto": use node-llama-cpp's CUDA or Vulkan build when one loads here and finds a GPU (every layer offloaded
   * unless gpuLayers says otherwise), else the CPU; false: the CPU (the backends' default; serving defaults to
   * DEFAULT_LLAMACPP_GPU).
   */
  gpu?: false | "auto";
  /** Layers to offload when `gpu` is "auto" (default: llama.cpp's choice, all). */
  gpuLayers?: number;
  /**
   * Storage type of the KV cache (default "F16", llama.cpp's default; "F32" doubles the memory and matches the
   * reference transformer more closely). node-llama-cpp sets it through its experimental KV-type option.
   */
  kvCacheType?: "F16" | "F32";
  /** llama.cpp flash attention (default: llama.cpp's automatic choice for the model). */
  flashAttention?: boolean;
  /** Check the backend's record of cells against llama.cpp's measured state after every call (tests). */
  verifyCells?: boolean;
}

export interface LlamaCppBackendOptions extends LlamaCppCommonOptions {
  /**
   * KV cells of each sequence: the most tokens one request may hold at once (its Memento peak). llama.cpp
   * rounds the context up (node-llama-cpp pads it to a multiple of 256 cells); `cellsPerSequence` on the
   * backend reports the real figure. Default 2048.
   */
  cellsPerSequence?: number;
}

/** A contiguous run [start, end) of resident positions. */
type Run = [number, number];

interface SeqState {
  /** Resident positions as sorted, disjoint runs. */
  runs: Run[];
  resident: number;
}

interface Loaded {
  llama: { dispose?: () => Promise<void> } & Record<string, unknown>;
  model: { dispose(): Promise<void>; _model: unknown } & Record<string, unknown>;
  context: { dispose(): Promise<void>; _ctx: NativeContext } & Record<string, unknown>;
  bindings: NativeBindings;
}

/** Why node-llama-cpp cannot run here, or undefined when it can (loads the native binary once). */
export async function llamaCppUnavailableReason(): Promise<string | undefined> {
  try {
    const { getLlama } = await import("node-llama-cpp");
    const llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: "error" as never });
    await llama.dispose();
    return undefined;
  } catch (e) {
    return `node-llama-cpp ${NODE_LLAMA_CPP_VERSION} cannot load its native binary here: ${(e as Error).message.split("\n")[0]}`;
  }
}

export class LlamaCppBackend implements Backend {
  readonly name = "llama.cpp";
  /** No restart mode, one fixed slice of cells per sequence (see the module comment). */
  readonly capabilities = LLAMACPP_CAPABILITIES;
  /** Logit vector length (measured from llama.cpp's first logits at start-up). */
  vocabSize = 0;
  readonly maxSequences: number;
  readonly kvCapacityTokens: number;
  /** Cells of each sequence (llama.cpp's n_ctx / sequences). */
  readonly cellsPerSequence: number;
  readonly batchSize: number;
  private readonly ctx: NativeContext;
  private readonly samplers: NativeSampler[];
  private readonly freeIds: number[] = [];
  private readonly seqs = new Map<SeqId, SeqState>();
  private readonly verify: boolean;
  /** State-size calibration: bytes with no cells, per non-empty sequence stream, per cell. */
  private baseBytes = 0;
  private streamBytes = 0;
  private cellBytes = 0;

  private constructor(
    private readonly loaded: Loaded,
    opts: { sequences: number; batchSize: number; verify: boolean },
  ) {
    this.ctx = loaded.context._ctx;
    this.maxSequences = opts.sequences;
    this.batchSize = opts.batchSize;
    this.cellsPerSequence = Math.floor(this.ctx.getContextSize() / opts.sequences);
    this.kvCapacityTokens = this.cellsPerSequence * opts.sequences;
    this.verify = opts.verify;
    this.samplers = [];
    for (let i = 0; i < opts.sequences; i++) {
      const s = new loaded.bindings.AddonSampler(loaded.model._model);
      s.applyConfig({ temperature: 0 }); // greedy: the candidate list stays the full, untouched logit vector
      this.samplers.push(s);
      this.freeIds.push(opts.sequences - 1 - i);
    }
  }

  /** Loads the GGUF model and creates one context with `sequences` x `cellsPerSequence` cells. */
  static async create(opts: LlamaCppBackendOptions): Promise<LlamaCppBackend> {
    const sequences = opts.sequences ?? 4;
    const cells = opts.cellsPerSequence ?? 2048;
    if (!Number.isInteger(sequences) || sequences < 1)
      throw new Error(`sequences must be a positive integer, got ${sequences}`);
    if (!Number.isInteger(cells) || cells < 2)
      throw new Error(`cellsPerSequence must be an integer >= 2, got ${cells}`);
    const batchSize = opts.batchSize ?? Math.max(sequences, 512);
    const { getLlama } = await import("node-llama-cpp");
    const llama = await getLlama({
      gpu: opts.gpu === "auto" ? "auto" : false,
      build: "never",
      progressLogs: false,
      logLevel: "error" as never,
    });
    const model = await llama.loadModel({
      modelPath: opts.modelPath,
      ...(opts.gpuLayers !== undefined ? { gpuLayers: opts.gpuLayers } : {}),
    });
    // A LlamaContext is created through the public API (memory checks, padding, threads), but its own
    // sequence objects and batch dispatcher are never used: this backend owns every sequence id.
    const context = await model.createContext({
      sequences,
      contextSize: cells,
      batchSize,
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      ...(opts.flashAttention !== undefined ? { flashAttention: opts.flashAttention } : {}),
      ...(opts.kvCacheType
        ? { experimentalKvCacheKeyType: opts.kvCacheType, experimentalKvCacheValueType: opts.kvCacheType }
        : {}),
    });
    const bindings = (llama as unknown as { _bindings: NativeBindings })._bindings;
    const loaded = { llama, model, context, bindings } as unknown as Loaded;
    const backend = new LlamaCppBackend(loaded, {
      sequences,
      batchSize,
      verify: opts.verifyCells ?? false,
    });
    try {
      await backend.calibrate();
    } catch (e) {
      await backend.close();
      throw e;
    }
    return backend;
  }

  /** "CPU", or the GPU kind node-llama-cpp loaded its build for (gpu "auto" on a machine with one). */
  get device(): string {
    const gpu = (this.loaded.llama as { gpu?: unknown }).gpu;
    return typeof gpu === "string" ? gpu : "CPU";
  }

  /** Sequences alive. */
  get sequences(): number {
    return this.seqs.size;
  }

  /** Cells the backend's own record says are held, over all sequences. */
  get totalResidentTokens(): number {
    let n = 0;
    for (const s of this.seqs.values()) n += s.resident;
    return n;
  }

  /**
   * Cells llama.cpp holds over all sequences, measured from its state size (see the module comment). Costs
   * one pass over the cell metadata, no tensor copies.
   */
  measuredResidentTokens(): number {
    let nonEmpty = 0;
    for (let s = 0; s < this.maxSequences; s++) if (this.ctx.getSequenceKvCacheMinPosition(s) >= 0) nonEmpty++;
    const bytes = this.ctx.getStateSize() - this.baseBytes - nonEmpty * this.streamBytes;
    const cells = bytes / this.cellBytes;
    if (!Number.isInteger(cells) || cells < 0)
      throw new Error(
        `llama.cpp state size ${this.ctx.getStateSize()} does not match the calibration (cells ${cells})`,
      );
    return cells;
  }

  /** llama.cpp's smallest and largest position of a sequence (-1 when it holds none). */
  positionRange(seq: SeqId): { min: number; max: number } {
    this.state(seq);
    return { min: this.ctx.getSequenceKvCacheMinPosition(seq), max: this.ctx.getSequenceKvCacheMaxPosition(seq) };
  }

  /** Resident logical positions of a sequence, ascending (the backend's record, checked against llama.cpp). */
  residentPositions(seq: SeqId): number[] {
    const out: number[] = [];
    for (const [a, b] of this.state(seq).runs) for (let p = a; p < b; p++) out.push(p);
    return out;
  }

  async allocate(): Promise<SeqId> {
    const id = this.freeIds.pop();
    if (id === undefined) throw new Error(`no free sequence (${this.maxSequences} in use)`);
    this.ctx.disposeSequence(id); // should be empty already; make sure
    this.seqs.set(id, { runs: [], resident: 0 });
    return id;
  }

  async prefill(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new Error("prefill of no tokens");
    if (positions.length !== tokens.length)
      throw new Error(`prefill: ${tokens.length} tokens but ${positions.length} positions`);
    const st = this.state(seq);
    this.checkAppend(seq, st, positions[0], tokens.length);
    for (let i = 1; i < positions.length; i++) {
      if (positions[i] !== positions[0] + i) {
        throw new Error(
          `prefill: llama.cpp needs contiguous positions in one call (got ${positions[i - 1]} then ${positions[i]}); ` +
            "rebuild a cache with gaps chunk by chunk with the evictions in between",
        );
      }
    }
    let logits: Float32Array | undefined;
    for (let from = 0; from < tokens.length; from += this.batchSize) {
      const to = Math.min(tokens.length, from + this.batchSize);
      const last = to === tokens.length;
      this.ctx.initBatch(to - from);
      const idx = this.ctx.addToBatch(
        seq,
        positions[from],
        Uint32Array.from(tokens.slice(from, to)),
        last ? Uint32Array.of(to - from - 1) : new Uint32Array(0),
      );
      await this.decodeOrThrow(`prefill of ${to - from} tokens at ${positions[from]} in sequence ${seq}`);
      this.addRun(st, positions[from], to - from);
      if (last) logits = (await this.logitsOf([{ index: idx[0], seq }]))[0];
    }
    this.check();
    return logits as Float32Array;
  }

  async decode(batch: readonly DecodeInput[]): Promise<Float32Array[]> {
    if (batch.length === 0) return [];
    if (batch.length > this.batchSize)
      throw new Error(`decode batch of ${batch.length} exceeds batchSize ${this.batchSize}`);
    const seen = new Set<SeqId>();
    for (const b of batch) {
      if (seen.has(b.seq)) throw new Error(`decode: sequence ${b.seq} appears twice in one batch`);
      seen.add(b.seq);
      this.checkAppend(b.seq, this.state(b.seq), b.position, 1);
    }
    this.ctx.initBatch(batch.length);
    const rows: Array<{ index: number; seq: SeqId }> = [];
    for (const b of batch) {
      const idx = this.ctx.addToBatch(b.seq, b.position, Uint32Array.of(b.token), Uint32Array.of(0));
      rows.push({ index: idx[0], seq: b.seq });
    }
    await this.decodeOrThrow(`decode of ${batch.length} sequences`);
    for (const b of batch) this.addRun(this.state(b.seq), b.position, 1);
    const out = await this.logitsOf(rows);
    this.check();
    return out;
  }

  async evict(seq: SeqId, start: number, end: number): Promise<number> {
    const st = this.state(seq);
    if (!(end > start)) return 0;
    const expected = this.countIn(st, start, end);
    const wasEmpty = st.resident === 0;
    const before = this.ctx.getStateSize();
    const ok = this.ctx.removeTokenCellsFromSequence(seq, start, end);
    if (!ok) throw new Error(`llama.cpp refused to remove positions [${start}, ${end}) of sequence ${seq}`);
    const after = this.ctx.getStateSize();
    const nowEmpty = this.ctx.getSequenceKvCacheMinPosition(seq) < 0;
    const header = !wasEmpty && nowEmpty ? this.streamBytes : 0;
    const freed = (before - after - header) / this.cellBytes;
    if (freed !== expected) {
      throw new Error(
        `evict [${start}, ${end}) of sequence ${seq}: llama.cpp freed ${freed} cells, expected ${expected} (semantics changed?)`,
      );
    }
    this.removeRange(st, start, end);
    this.check();
    return freed;
  }

  async recompute(seq: SeqId, tokens: readonly number[], positions: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new Error("recompute of no tokens");
    const st = this.state(seq);
    const first = positions[0];
    const last = positions[positions.length - 1];
    if (this.countIn(st, first, last + 1) !== tokens.length || last - first + 1 !== tokens.length) {
      throw new Error(`recompute: positions ${first}..${last} must be resident and contiguous in sequence ${seq}`);
    }
    const lastRun = st.runs[st.runs.length - 1];
    if (lastRun[1] !== last + 1)
      throw new Error(
        `recompute: tokens after ${last} are resident in sequence ${seq}; llama.cpp can only rewrite the tail`,
      );
    // After removing the recomputed tokens, llama.cpp accepts new tokens only right after the largest position left.
    let prevMax = -1;
    for (const [a, b] of st.runs) if (a < first) prevMax = Math.min(b, first) - 1;
    if (prevMax >= 0 && prevMax + 1 !== first) {
      throw new Error(
        `restart mode is not supported by the llama.cpp backend: recomputing positions ${first}..${last} of sequence ${seq} ` +
          `means writing them after the evicted gap ${prevMax + 1}..${first - 1}, and llama.cpp (node-llama-cpp ${NODE_LLAMA_CPP_VERSION}) ` +
          "only accepts positions continuing the sequence's largest one",
      );
    }
    await this.evict(seq, first, last + 1);
    return this.prefill(seq, tokens, positions);
  }

  async free(seq: SeqId): Promise<void> {
    if (!this.seqs.has(seq)) return;
    this.ctx.disposeSequence(seq);
    this.seqs.delete(seq);
    this.freeIds.push(seq);
    this.check();
  }

  residentTokens(seq: SeqId): number {
    return this.seqs.get(seq)?.resident ?? 0;
  }

  async close(): Promise<void> {
    for (const s of this.samplers) s.dispose();
    this.samplers.length = 0;
    this.seqs.clear();
    await this.loaded.context.dispose();
    await this.loaded.model.dispose();
  }

  // -------------------------------------------------------------------------------------------------------

  private state(seq: SeqId): SeqState {
    const s = this.seqs.get(seq);
    if (!s) throw new Error(`unknown sequence ${seq}`);
    return s;
  }

  /** Checks that n tokens can be appended at `first` (llama.cpp's position rule and the sequence's cells). */
  private checkAppend(seq: SeqId, st: SeqState, first: number, n: number): void {
    if (!Number.isInteger(first) || first < 0) throw new Error(`bad position ${first}`);
    const max = st.runs.length ? st.runs[st.runs.length - 1][1] - 1 : -1;
    if (max >= 0 && first !== max + 1) {
      throw new Error(
        `sequence ${seq}: position ${first} does not continue its largest resident position ${max} (llama.cpp requires ${max + 1})`,
      );
    }
    if (st.resident + n > this.cellsPerSequence) {
      throw new Error(
        `sequence ${seq} is full: ${st.resident} + ${n} cells > ${this.cellsPerSequence} cells per sequence`,
      );
    }
  }

  private async decodeOrThrow(what: string): Promise<void> {
    try {
      await this.ctx.decodeBatch();
    } catch (e) {
      throw new Error(`llama.cpp ${what} failed: ${(e as Error).message}`);
    }
  }

  /** Full logit vectors of batch rows (greedy samplers, one per sequence, so rows run in parallel). */
  private async logitsOf(rows: ReadonlyArray<{ index: number; seq: SeqId }>): Promise<Float32Array[]> {
    const V = this.vocabSize;
    return Promise.all(
      rows.map(async ({ index, seq }) => {
        const res = await this.ctx.sampleToken(index, this.samplers[seq], false, false, true);
        const flat = res[3];
        if (!flat || flat.length !== 2 * V)
          throw new Error(`llama.cpp returned ${flat ? flat.length / 2 : 0} logits, expected ${V}`);
        const out = new Float32Array(V);
        for (let i = 0; i < flat.length; i += 2) out[flat[i]] = flat[i + 1];
        return out;
      }),
    );
  }

  private addRun(st: SeqState, first: number, n: number): void {
    const last = st.runs[st.runs.length - 1];
    if (last && last[1] === first) last[1] += n;
    else st.runs.push([first, first + n]);
    st.resident += n;
  }

  private countIn(st: SeqState, start: number, end: number): number {
    let n = 0;
    for (const [a, b] of st.runs) n += Math.max(0, Math.min(b, end) - Math.max(a, start));
    return n;
  }

  private removeRange(st: SeqState, start: number, end: number): void {
    const next: Run[] = [];
    for (const [a, b] of st.runs) {
      if (b <= start || a >= end) next.push([a, b]);
      else {
        if (a < start) next.push([a, start]);
        if (b > end) next.push([end, b]);
      }
    }
    st.runs = next;
    st.resident = next.reduce((n, [a, b]) => n + b - a, 0);
  }

  /** verifyCells: measured cells and per-sequence position ranges must match the record. */
  private check(): void {
    if (!this.verify) return;
    const measured = this.measuredResidentTokens();
    if (measured !== this.totalResidentTokens)
      throw new Error(`llama.cpp holds ${measured} cells, the backend recorded ${this.totalResidentTokens}`);
    for (const [seq, st] of this.seqs) {
      const { min, max } = this.positionRange(seq);
      const eMin = st.runs.length ? st.runs[0][0] : -1;
      const eMax = st.runs.length ? st.runs[st.runs.length - 1][1] - 1 : -1;
      if (min !== eMin || max !== eMax)
        throw new Error(`sequence ${seq}: llama.cpp positions ${min}..${max}, recorded ${eMin}..${eMax}`);
    }
  }

  /** Measures the state-size layout with one and two tokens in sequence 0 (then removes them). */
  private async calibrate(): Promise<void> {
    const seq = 0;
    this.ctx.disposeSequence(seq);
    this.baseBytes = this.ctx.getStateSize();
    const put = async (pos: number): Promise<Uint32Array> => {
      this.ctx.initBatch(1);
      const idx = this.ctx.addToBatch(seq, pos, Uint32Array.of(0), Uint32Array.of(0));
      await this.decodeOrThrow("calibration");
      return idx;
    };
    await put(0);
    const one = this.ctx.getStateSize();
    const idx = await put(1);
    const two = this.ctx.getStateSize();
    const res = await this.ctx.sampleToken(idx[0], this.samplers[0], false, false, true);
    this.vocabSize = (res[3]?.length ?? 0) / 2;
    if (!(this.vocabSize > 0)) throw new Error("llama.cpp returned no logits (not a generative model?)");
    this.ctx.disposeSequence(seq);
    this.cellBytes = two - one;
    this.streamBytes = one - this.baseBytes - this.cellBytes;
    if (!(this.cellBytes > 0) || this.streamBytes < 0 || this.ctx.getStateSize() !== this.baseBytes) {
      throw new Error(`llama.cpp state-size calibration failed (base ${this.baseBytes}, one ${one}, two ${two})`);
    }
  }
}
