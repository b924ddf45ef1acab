/**
 * memento: the library behind the `memento` CLI.
 *   format   - tokens, parse/render/validate, OpenMementos rows, tokenizer, chat templates
 *   masking  - block tracker (state machine) and attention patterns
 *   kv       - KV simulation and accounting
 */
export * from "./errors.js";
export * from "./format/index.js";
export * from "./format/tokenizer.js";
export * from "./format/chat.js";
export * from "./masking/index.js";
export * from "./kv/index.js";
