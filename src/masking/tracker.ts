import type { MaskingConfig, TrackerTokenIds } from "./config.js";

/** A block of reasoning as the tracker saw it; positions are logical token positions. */
export interface TrackedBlock {
  /** Index in creation order (0-based). */
  readonly index: number;
  /** Position of `<|block_start|>`. */
  readonly start: number;
  /** Position of `<|block_end|>`, once seen. */
  end: number | undefined;
  /** Position of the `<|summary_start|>` attached to this block, once seen. */
  summaryStart: number | undefined;
  /** Position of the `<|summary_end|>` that closed its memento, once seen. */
  summaryEnd: number | undefined;
  /** Whether the block was opened while scanning prompt tokens. */
  readonly inPrompt: boolean;
  /** Whether its range has been evicted. */
  evicted: boolean;
}

/**
 * One eviction: the logical positions `[start, end)` leave the KV cache right after the token at `trigger`
 * has become resident. In restart mode the memento's KV must then be recomputed from `recomputeFrom`
 * (its `<|summary_start|>`) up to and including `trigger`, without the block.
 */
export interface Eviction {
  readonly start: number;
  readonly end: number;
  readonly trigger: number;
  readonly block: number;
  readonly recomputeFrom?: number;
}

const NONE: readonly Eviction[] = Object.freeze([]);

/**
 * The per-request block-masking state machine, token by token, with the semantics of the reference vLLM
 * engine: a stack of open blocks, a FIFO of completed blocks waiting for eviction, at most one open memento,
 * and the assistant-section gate. It decides *what* to evict and *when*; it owns no KV memory.
 *
 * Feed every token of the sequence in order (prompt first, with `isPrompt`), each at the next logical position.
 * Prompt tokens update the state but never trigger an eviction; their completed blocks wait in the FIFO.
 */
export class BlockTracker {
  readonly config: Readonly<MaskingConfig>;
  private readonly ids: TrackerTokenIds;
  private readonly gateOn: boolean;

  /** Every block created so far, in creation order. */
  readonly blocks: TrackedBlock[] = [];
  private readonly openStack: TrackedBlock[] = [];
  /** Completed blocks (memento closed) not yet evicted, oldest first; `fifoHead` avoids O(n) shifts. */
  private readonly fifo: TrackedBlock[] = [];
  private fifoHead = 0;
  private openMemento: TrackedBlock | undefined;

  private inAssistant: boolean;
  private lastImStart = -Infinity;
  private pos = 0;
  private evictionCount = 0;

  constructor(config: Readonly<MaskingConfig>, ids: TrackerTokenIds) {
    this.config = config;
    this.ids = ids;
    // Without both ChatML ids there is no way to find the assistant section: the requirement is switched off.
    this.gateOn = config.requireAssistantSection && ids.imStart !== undefined && ids.assistant !== undefined;
    this.inAssistant = !this.gateOn;
  }

  /** Logical position the next token will take. */
  get position(): number {
    return this.pos;
  }

  /** Whether the assistant section has begun (always true when the gate is off). */
  get assistantStarted(): boolean {
    return this.inAssistant;
  }

  /** Number of evictions emitted so far. */
  get evictions(): number {
    return this.evictionCount;
  }

  /** Completed blocks still waiting in the FIFO. */
  get pendingBlocks(): number {
    return this.fifo.length - this.fifoHead;
  }

  /** The innermost open block, if any. */
  get openBlock(): TrackedBlock | undefined {
    return this.openStack[this.openStack.length - 1];
  }

  /**
   * With `maxBlockTokens` set: true when the innermost open block already holds that many content tokens
   * (after the last token fed), so the caller must make the next token `<|block_end|>`.
   */
  mustEndBlock(): boolean {
    const max = this.config.maxBlockTokens;
    if (max <= 0 || this.openStack.length === 0) return false;
    const open = this.openStack[this.openStack.length - 1];
    return this.pos - 1 - open.start >= max;
  }

  /**
   * Feeds the token at the next logical position and returns the evictions it triggers (usually none;
   * at most one: one range per trigger). The returned array must not be mutated.
   */
  push(token: number, isPrompt = false): readonly Eviction[] {
    const p = this.pos++;
    const ids = this.ids;

    if (!this.inAssistant) {
      if (token === ids.imStart) {
        this.lastImStart = p;
      } else if (token === ids.assistant && p - this.lastImStart <= 2) {
        this.inAssistant = true; // tokens at this position are still ignored
      }
      return NONE;
    }

    if (token === ids.blockStart) {
      let out = NONE;
      if (
        !isPrompt &&
        this.config.keepLastBlockForAnswer &&
        this.config.keepLastNBlocks === 0 &&
        this.pendingBlocks > 0
      ) {
        out = [this.evictOldest(p)];
      }
      const block: TrackedBlock = {
        index: this.blocks.length,
        start: p,
        end: undefined,
        summaryStart: undefined,
        summaryEnd: undefined,
        inPrompt: isPrompt,
        evicted: false,
      };
      this.blocks.push(block);
      this.openStack.push(block);
      return out;
    }

    if (token === ids.blockEnd) {
      const block = this.openStack.pop();
      if (block) block.end = p;
      return NONE;
    }

    if (token === ids.summaryStart) {
      for (let i = this.blocks.length - 1; i >= 0; i--) {
        const b = this.blocks[i];
        if (b.end !== undefined && b.summaryStart === undefined) {
          b.summaryStart = p;
          this.openMemento = b;
          break;
        }
      }
      return NONE;
    }

    if (token === ids.summaryEnd) {
      const block = this.openMemento;
      if (!block) return NONE;
      this.openMemento = undefined;
      block.summaryEnd = p;
      this.fifo.push(block);
      if (isPrompt || !this.config.compactOnSummaryEnd) return NONE;
      const keep = this.config.keepLastNBlocks;
      if (keep < 0) return NONE;
      if (keep === 0 && this.config.keepLastBlockForAnswer) return NONE; // deferred to the next <|block_start|>
      if (this.pendingBlocks > keep) return [this.evictOldest(p)];
      return NONE;
    }

    return NONE;
  }

  /** Removes the oldest waiting block from the FIFO and describes its eviction. */
  private evictOldest(trigger: number): Eviction {
    const block = this.fifo[this.fifoHead++];
    if (this.fifoHead > 64 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo.splice(0, this.fifoHead);
      this.fifoHead = 0;
    }
    block.evicted = true;
    this.evictionCount++;
    // A completed block always has an end: it joined the FIFO after its memento, which needs an ended block.
    const end = block.end as number;
    const { restartMode, maskDelimiters } = this.config;
    if (restartMode) {
      return { start: block.start, end: end + 1, trigger, block: block.index, recomputeFrom: block.summaryStart };
    }
    return maskDelimiters
      ? { start: block.start, end: end + 1, trigger, block: block.index }
      : { start: block.start + 1, end, trigger, block: block.index };
  }
}
