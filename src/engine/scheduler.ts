/**
 * The scheduler decides, once per engine step and from measured counts only, which running requests are
 * preempted, which waiting ones are admitted, and which are decoded together. It touches no KV itself.
 *
 * Policy (first come, first served):
 *  1. Every running request decodes one token per step, so the step needs one new cell per running request.
 *     While resident + that does not fit the budget, the NEWEST running request (latest arrival) is preempted:
 *     the engine frees its KV and puts it back in the waiting queue, to be recomputed later.
 *  2. A request that is alone and still cannot add a cell can never progress: it is aborted (finish "length").
 *  3. If nobody was preempted, waiting requests are admitted in arrival order while their need (prompt, or for a
 *     preempted request the peak it reached, which bounds its recompute) plus the reserve fits; the first that
 *     does not fit stops admission (no overtaking, so a large request cannot starve).
 *  4. Admitted requests start catching up: the engine computes their prompt (or, after a preemption, their
 *     tokens so far) in chunks under its per-step token budget, mixed into the decode steps of the others; a
 *     request joins the decode batch the step after its catch-up ends (the prompt's last logits give its first
 *     token). Until then it counts for the cells its admission promised, so nobody is admitted into them.
 */
import type { KvBudget } from "./kv-budget.js";

export interface Schedulable {
  /** Arrival order: smaller = older. */
  readonly arrival: number;
  /**
   * Cells a running request counts for: those resident now, or while its prefill is still catching up (in
   * chunks, over several steps) the cells its admission promised it.
   */
  readonly claimedTokens: number;
  /** Cells an admission must be able to hold (waiting requests). */
  readonly admissionNeed: number;
}

export interface StepPlan<S extends Schedulable> {
  preempt: S[];
  abort: S[];
  admit: S[];
  decode: S[];
}

export class Scheduler {
  constructor(
    readonly budget: KvBudget,
    readonly maxRunning: number,
  ) {}

  /** `running` and `waiting` in any order; the plan lists requests oldest first. */
  plan<S extends Schedulable>(runningIn: readonly S[], waitingIn: readonly S[]): StepPlan<S> {
    const running = [...runningIn].sort((a, b) => a.arrival - b.arrival);
    const waiting = [...waitingIn].sort((a, b) => a.arrival - b.arrival);
    const plan: StepPlan<S> = { preempt: [], abort: [], admit: [], decode: [] };
    let used = 0;
    for (const s of running) used += s.claimedTokens;

    while (running.length > 1 && !this.budget.fitsDecode(used, running.length)) {
      const victim = running.pop() as S;
      used -= victim.claimedTokens;
      plan.preempt.push(victim);
    }
    if (running.length === 1 && !this.budget.fitsDecode(used, 1)) {
      const lone = running.pop() as S;
      used -= lone.claimedTokens;
      plan.abort.push(lone);
    }
    plan.decode = running;

    if (plan.preempt.length === 0) {
      let promised = running.length;
      for (const w of waiting) {
        if (running.length + plan.admit.length >= this.maxRunning) break;
        const alone = running.length === 0 && plan.admit.length === 0;
        if (!this.budget.fitsAdmission(used, promised, w.admissionNeed, alone)) break;
        plan.admit.push(w);
        used += w.admissionNeed;
        promised += 1;
      }
    }
    return plan;
  }
}
