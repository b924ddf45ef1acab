/**
 * memento: the library behind the `memento` CLI.
 *   format, masking, kv   the foundation, exported flat (parseResponse, BlockTracker, simulateKv, loadTokenizer, ...)
 *   data, model, train, evaluation   exported as namespaces (data.buildDataset, model.Qwen3Model, ...)
 */
export * from "./errors.js";
export * from "./format/index.js";
export * from "./format/tokenizer.js";
export * from "./format/chat.js";
export * from "./masking/index.js";
export * from "./kv/index.js";
export * as data from "./data/index.js";
export * as model from "./model/index.js";
export * as train from "./train/index.js";
export * as evaluation from "./eval/index.js";
