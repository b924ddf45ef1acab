/**
 * Counts resident KV entries as tokens arrive and ranges leave. Positions are logical and never reused;
 * a position removed twice counts once. Optionally counts the resident tokens inside a trailing window,
 * for sliding-window layers.
 */
export class KvLedger {
  /** Tokens added so far (the next logical position). */
  length = 0;
  resident = 0;
  /** Resident tokens among the last `window` positions (equals `resident` when there is no window). */
  residentInWindow = 0;
  private removed: Uint8Array;
  private readonly window: number;

  constructor(window = Infinity, capacityHint = 1024) {
    this.window = window;
    this.removed = new Uint8Array(Math.max(16, capacityHint));
  }

  /** Adds the token at the next position; it becomes resident. */
  add(): number {
    const p = this.length++;
    if (p >= this.removed.length) {
      const grown = new Uint8Array(this.removed.length * 2);
      grown.set(this.removed);
      this.removed = grown;
    }
    this.resident++;
    this.residentInWindow++;
    const leaving = p - this.window; // slides out of the window now
    if (leaving >= 0 && this.removed[leaving] === 0) this.residentInWindow--;
    return p;
  }

  /** Removes `[start, end)`; positions not yet added or already removed are ignored. Returns how many left. */
  remove(start: number, end: number): number {
    const stop = Math.min(end, this.length);
    const windowStart = this.length - this.window; // positions >= this are inside the window
    let freed = 0;
    for (let k = Math.max(0, start); k < stop; k++) {
      if (this.removed[k] === 0) {
        this.removed[k] = 1;
        freed++;
        if (k >= windowStart) this.residentInWindow--;
      }
    }
    this.resident -= freed;
    return freed;
  }

  isResident(position: number): boolean {
    return position >= 0 && position < this.length && this.removed[position] === 0;
  }
}
