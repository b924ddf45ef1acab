/**
 * Worker thread of the trainer: holds a model over the trainer's shared parameter memory and the current
 * stage's sequences, and returns gradient sums for the example indices it is sent.
 */
import { parentPort } from "node:worker_threads";
import type { Qwen3Config } from "../model/config.js";
import type { Qwen3Model } from "../model/transformer.js";
import { gradSum, modelOverShared, type TrainSequence } from "./grad-job.js";

export type WorkerMessage =
  | { type: "init"; config: Qwen3Config; params: [string, SharedArrayBuffer][] }
  | { type: "sequences"; sequences: TrainSequence[] }
  | { type: "step"; indices: number[] };

let model: Qwen3Model | undefined;
let sequences: TrainSequence[] = [];

parentPort!.on("message", (msg: WorkerMessage) => {
  if (msg.type === "init") {
    model = modelOverShared(msg.config, new Map(msg.params));
    parentPort!.postMessage({ type: "ready" });
  } else if (msg.type === "sequences") {
    sequences = msg.sequences;
    parentPort!.postMessage({ type: "ready" });
  } else {
    const r = gradSum(model!, sequences, msg.indices);
    const grads = [...r.grads];
    parentPort!.postMessage(
      { type: "grads", grads, lossSum: r.lossSum, count: r.count, tokens: r.tokens },
      grads.map(([, g]) => g.buffer as ArrayBuffer),
    );
  }
});
