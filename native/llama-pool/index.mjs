// index.mjs: loader of the llama-pool addon. Finds build/llama_pool.node (built by native/build.mjs), starts
// llama.cpp's backends from node-llama-cpp's prebuilt library dir, and reports why it is unavailable instead
// of throwing, so the engine can fall back to node-llama-cpp.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
let cached;

/** @returns {import("./index.mjs").LlamaPoolLoadResult} */
export function loadLlamaPool() {
  if (cached) return cached;
  const file = path.join(here, "build", "llama_pool.node");
  const infoFile = path.join(here, "build", "build-info.json");
  if (!existsSync(file) || !existsSync(infoFile)) {
    cached = { ok: false, reason: "llama-pool addon not built (run: node native/build.mjs)" };
    return cached;
  }
  try {
    const build = JSON.parse(readFileSync(infoFile, "utf8"));
    // Node-API 8 is ABI-stable across Node versions: no check of process.versions.modules is needed.
    const binding = createRequire(import.meta.url)(file);
    const runtime = binding.init(build.binsDir);
    // llama_version() is "X.Y.Z" or "X.Y.Z-dev" (LLAMA_BUILD_IS_DEV); the headers give X.Y.Z.
    if (runtime.expectedLlamaVersion && runtime.llamaVersion.split("-")[0] !== runtime.expectedLlamaVersion) {
      throw new Error(
        `libllama reports version ${runtime.llamaVersion}, headers were ${runtime.expectedLlamaVersion}; rebuild (node native/build.mjs)`,
      );
    }
    cached = { ok: true, binding, build, runtime };
  } catch (e) {
    cached = { ok: false, reason: `llama-pool addon cannot load: ${e.message.split("\n")[0]}` };
  }
  return cached;
}
