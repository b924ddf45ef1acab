/** The Memento text format: markers, parsing, validation, building, and dataset/reference conversions. */
export * from "./tokens.js";
export * from "./response.js";
export * from "./validate.js";
export * from "./openmementos.js";
export * from "./reference.js";
export * from "./load.js";
