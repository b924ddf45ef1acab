/**
 * Worker thread of RL training: holds the policy over the main thread's shared parameter memory (it sees every
 * optimizer update) and the frozen reference model, and runs the two heavy jobs on the share it is sent:
 * rollouts (an engine of its own over the shared weights) and CISPO gradient sums.
 */
import { parentPort } from "node:worker_threads";
import type { Qwen3Config } from "../model/config.js";
import type { Qwen3Model } from "../model/transformer.js";
import { modelOverShared } from "../train/grad-job.js";
import { toyTokenizer } from "../train/char-tokenizer.js";
import type { ToyDatasetItem } from "../train/toy-task.js";
import type { CispoOptions, RolloutSample } from "./cispo.js";
import { rlGradSum } from "./grad-job.js";
import { generateRollouts, type RolloutOptions } from "./engine-rollouts.js";

export type RlWorkerMessage =
  | {
      type: "init";
      config: Qwen3Config;
      params: [string, SharedArrayBuffer][];
      ref: [string, SharedArrayBuffer][] | null;
    }
  | { type: "rollouts"; items: ToyDatasetItem[]; group: number; opts: RolloutOptions }
  | { type: "grads"; samples: RolloutSample[]; batchTokens: number; cispo: CispoOptions };

let model: Qwen3Model | undefined;
let ref: Qwen3Model | undefined;
const tok = toyTokenizer();

parentPort!.on("message", async (msg: RlWorkerMessage) => {
  try {
    if (msg.type === "init") {
      model = modelOverShared(msg.config, new Map(msg.params));
      ref = msg.ref ? modelOverShared(msg.config, new Map(msg.ref)) : undefined;
      parentPort!.postMessage({ type: "ready" });
    } else if (msg.type === "rollouts") {
      const rollouts = await generateRollouts(model!, tok, msg.items, msg.group, msg.opts);
      parentPort!.postMessage({ type: "rollouts", rollouts });
    } else {
      const r = rlGradSum(model!, ref, msg.samples, msg.batchTokens, msg.cispo);
      const grads = [...r.grads];
      parentPort!.postMessage(
        { type: "grads", grads, stats: r.stats },
        grads.map(([, g]) => g.buffer as ArrayBuffer),
      );
    }
  } catch (e) {
    parentPort!.postMessage({ type: "error", message: (e as Error).stack ?? String(e) });
  }
});
