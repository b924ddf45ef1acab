/** Training: optimizer, two-stage SFT trainer, toy task, character tokenizer, SFT data. */
export * from "./optim.js";
export * from "./grad-job.js";
export * from "./trainer.js";
export * from "./toy-task.js";
export * from "./char-tokenizer.js";
export * from "./sft-data.js";
export * from "./toy.js";
