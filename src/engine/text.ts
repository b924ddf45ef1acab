/**
 * Incremental detokenization with stop strings. Text is decoded over a short window of recent ids (so a
 * multi-byte character split across tokens is released only once complete), appended to the completion
 * text, searched for stop strings, and released to the caller minus a tail that could still be the start of
 * a stop string.
 */
import type { EngineTokenizer } from "./types.js";

export class TextStream {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  private text = "";
  private released = 0;
  private readonly holdBack: number;
  /** The stop string that matched, once one has. */
  stopped: string | undefined;

  constructor(
    private readonly tokenizer: EngineTokenizer,
    private readonly stops: readonly string[] = [],
    private readonly skipSpecialTokens = false,
  ) {
    this.holdBack = stops.reduce((m, s) => Math.max(m, s.length - 1), 0);
  }

  /** The completion text so far (cut before a matched stop string). */
  get fullText(): string {
    return this.text;
  }

  /** Adds a token; returns true when a stop string matched (the text is then cut before it). */
  push(id: number): boolean {
    if (this.stopped !== undefined) return true;
    this.ids.push(id);
    const opts = { skipSpecialTokens: this.skipSpecialTokens };
    const before = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), opts);
    const after = this.tokenizer.decode(this.ids.slice(this.prefixOffset), opts);
    if (after.length <= before.length || after.endsWith("\uFFFD")) return false;
    const delta = after.slice(before.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    const from = Math.max(0, this.text.length - this.holdBack);
    this.text += delta;
    let cut = -1;
    for (const s of this.stops) {
      if (s.length === 0) continue;
      const at = this.text.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        this.stopped = s;
      }
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      return true;
    }
    return false;
  }

  /** Text that is final now; with `all`, everything not yet released (the request is ending). */
  release(all: boolean): string {
    const upTo =
      all || this.stopped !== undefined ? this.text.length : Math.max(this.released, this.text.length - this.holdBack);
    const out = this.text.slice(this.released, upTo);
    this.released = Math.max(this.released, upTo);
    return out;
  }
}
