/**
 * The KV budget: a fixed number of token cells shared by every running request. It only does arithmetic on
 * counts the backend measured; the scheduler asks it whether a decode step or an admission fits.
 */
export class KvBudget {
  /** Cells in all. */
  readonly total: number;
  /** Cells an admitted request must leave free beyond what it needs (room for its first decode steps). */
  readonly reserve: number;
  private peak = 0;

  constructor(total: number, reserve = 16) {
    if (!Number.isInteger(total) || total < 1)
      throw new RangeError(`kvBudgetTokens must be a positive integer, got ${total}`);
    this.total = total;
    this.reserve = Math.max(1, Math.min(Math.floor(reserve), total - 1));
  }

  /** Most cells ever reported in use. */
  get peakUsed(): number {
    return this.peak;
  }

  /** Records a measured usage (for the peak). */
  observe(used: number): void {
    if (used > this.peak) this.peak = used;
  }

  /** Whether `n` sequences can each add one cell when `used` cells are resident. */
  fitsDecode(used: number, n: number): boolean {
    return used + n <= this.total;
  }

  /**
   * Whether a request needing `need` cells can start now: `used` cells resident and `pendingDecodes` cells
   * promised to the next decode step. A lone request (nothing else running) needs no reserve.
   */
  fitsAdmission(used: number, pendingDecodes: number, need: number, alone: boolean): boolean {
    const free = this.total - used - pendingDecodes;
    return alone ? need <= free : need + this.reserve <= free;
  }

  /** Whether a prompt can ever be admitted. */
  canEverHold(promptTokens: number): boolean {
    return promptTokens + this.reserve <= this.total;
  }
}
