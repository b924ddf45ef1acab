/**
 * memento: the library behind the `memento` CLI, one export per concept.
 *   format, masking, kv     the foundation, exported flat (parseResponse, BlockTracker, simulateKv, loadTokenizer, ...)
 *   model                   the reference Qwen3 transformer, safetensors and GGUF (model.Qwen3Model, ...)
 *   engine                  the serving runtime (engine.createEngine, engine.loadServingModel, engine.Sampler, ...)
 *   data, train, evaluation the OpenMementos pipeline, SFT and the toy task, grading and the eval runner
 *   report, bench           the HTML report and trace viewer; the benchmarks
 *   server                  the OpenAI-compatible HTTP server (server.startServer, ...)
 */
export * from "./errors.js";
export * from "./format/index.js";
export * from "./format/tokenizer.js";
export * from "./format/chat.js";
export * from "./masking/index.js";
export * from "./kv/index.js";
export * as model from "./model/index.js";
export * as engine from "./engine/index.js";
export * as data from "./data/index.js";
export * as train from "./train/index.js";
export * as evaluation from "./eval/index.js";
export * as report from "./report/index.js";
export * as bench from "./bench/index.js";
export * as server from "./server/index.js";
export * as analyze from "./analyze/index.js";
export * as rl from "./rl/index.js";
