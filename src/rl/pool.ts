/**
 * Where RL's heavy work runs: in this thread, or split over worker threads that read the policy's weights from
 * shared memory (the optimizer updates them in place here; workers only read them, never during an update).
 *
 * 1. Rollouts: the problems are dealt round-robin to the workers, each generating its share with an engine of
 *    its own; results come back in problem order. Seeds depend on the problem's index, not on the worker; the
 *    logits of a batched decode step depend on the batch only through float rounding, so rollouts agree across
 *    worker counts up to that (and a sampled token it may tip), and are bitwise the same for the same count.
 * 2. Gradients: the samples are dealt longest first to the least-loaded worker; the workers' sums are added in
 *    worker order. Float addition is not associative, so updates are bitwise-reproducible for a given number
 *    of workers (resume with the same --workers; a run records it), equal up to rounding across counts.
 * 3. With one worker, or when the compiled worker script is absent (tests run the sources), everything runs here.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Qwen3Model } from "../model/transformer.js";
import type { CharTokenizer } from "../train/char-tokenizer.js";
import { dealByCost, modelOverShared, sharedParams } from "../train/grad-job.js";
import type { ToyDatasetItem } from "../train/toy-task.js";
import { addCispoStats, emptyCispoStats, type CispoOptions, type RolloutSample } from "./cispo.js";
import { rlGradSum, type RlGradSum } from "./grad-job.js";
import { generateRollouts, type Rollout, type RolloutOptions } from "./engine-rollouts.js";

type Reply =
  | { type: "ready" }
  | { type: "rollouts"; rollouts: Rollout[][] }
  | { type: "grads"; grads: [string, Float32Array][]; stats: RlGradSum["stats"] }
  | { type: "error"; message: string };

export class RlPool {
  private readonly workers: Worker[] = [];

  private constructor(
    /** The policy the pool computes with (over shared memory when there are workers): train this one. */
    readonly model: Qwen3Model,
    readonly ref: Qwen3Model | undefined,
    private readonly tok: CharTokenizer,
  ) {}

  /** A pool over `policy` (its weights are copied into shared memory when workers run: use `pool.model`). */
  static async create(
    policy: Qwen3Model,
    ref: Qwen3Model | undefined,
    tok: CharTokenizer,
    workers: number,
  ): Promise<RlPool> {
    const script = fileURLToPath(new URL("./rl-worker.js", import.meta.url));
    if (workers <= 1 || !existsSync(script)) return new RlPool(policy, ref, tok);
    const buffers = sharedParams(policy);
    const refBuffers = ref ? sharedParams(ref) : null;
    const pool = new RlPool(
      modelOverShared(policy.config, buffers),
      refBuffers ? modelOverShared(policy.config, refBuffers) : undefined,
      tok,
    );
    for (let i = 0; i < workers; i++) {
      const w = new Worker(script);
      pool.workers.push(w);
      await pool.call(w, {
        type: "init",
        config: policy.config,
        params: [...buffers],
        ref: refBuffers ? [...refBuffers] : null,
      });
    }
    return pool;
  }

  get threads(): number {
    return Math.max(1, this.workers.length);
  }

  private call<T extends Reply>(w: Worker, msg: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      w.once("error", onError);
      w.once("message", (m: Reply) => {
        w.off("error", onError);
        if (m.type === "error") reject(new Error(`RL worker: ${m.message}`));
        else resolve(m as T);
      });
      w.postMessage(msg);
    });
  }

  async rollouts(items: readonly ToyDatasetItem[], group: number, opts: RolloutOptions): Promise<Rollout[][]> {
    const ids = opts.problemIds ?? items.map((_, i) => i);
    if (this.workers.length === 0)
      return generateRollouts(this.model, this.tok, items, group, { ...opts, problemIds: ids });
    const n = this.workers.length;
    const shares = this.workers.map((_, k) => items.map((_, i) => i).filter((i) => i % n === k));
    // Fewer problems than workers: a worker dealt none answers with none (generateRollouts).
    const replies = await Promise.all(
      this.workers.map((w, k) =>
        this.call<Extract<Reply, { type: "rollouts" }>>(w, {
          type: "rollouts",
          items: shares[k].map((i) => items[i]),
          group,
          opts: { ...opts, problemIds: shares[k].map((i) => ids[i]) },
        }),
      ),
    );
    const out: Rollout[][] = new Array(items.length);
    for (const [k, r] of replies.entries()) for (const [j, g] of r.rollouts.entries()) out[shares[k][j]] = g;
    return out;
  }

  async grads(samples: readonly RolloutSample[], batchTokens: number, cispo: CispoOptions): Promise<RlGradSum> {
    if (this.workers.length === 0) return rlGradSum(this.model, this.ref, samples, batchTokens, cispo);
    const parts = dealByCost(
      samples.map((s) => s.ids.length),
      this.workers.length,
    ).map((part) => part.map((i) => samples[i]));
    const replies = await Promise.all(
      this.workers.map((w, k) =>
        this.call<Extract<Reply, { type: "grads" }>>(w, { type: "grads", samples: parts[k], batchTokens, cispo }),
      ),
    );
    const total: RlGradSum = { grads: new Map(replies[0].grads), stats: emptyCispoStats() };
    for (const [k, r] of replies.entries()) {
      addCispoStats(total.stats, r.stats);
      if (k === 0) continue;
      for (const [name, g] of r.grads) {
        const acc = total.grads.get(name)!;
        for (let i = 0; i < g.length; i++) acc[i] += g[i];
      }
    }
    return total;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
