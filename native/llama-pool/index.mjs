// index.mjs: loader of the llama-pool addon. Finds build/llama_pool.node (built by native/build.mjs), starts
// llama.cpp's backends from node-llama-cpp's prebuilt library dir, and reports why it is unavailable instead
// of throwing, so the engine can fall back to node-llama-cpp.
import { existsSync, readdirSync, readFileSync } from "node:fs";
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

let gpuCached;

/**
 * GPU backends for `gpu: "auto"`: registers the CUDA, then the Vulkan ggml backend of node-llama-cpp's GPU
 * platform packages installed beside the CPU one the addon was built against (same version). Each needs only
 * libggml-base, which is the same file in every package; one that cannot load (no driver, no runtime) is
 * reported and skipped. Once per process.
 * @returns {import("./index.mjs").LlamaPoolGpuResult}
 */
export function loadGpuBackends() {
  if (gpuCached) return gpuCached;
  const loaded = loadLlamaPool();
  if (!loaded.ok) return (gpuCached = { gpuDevices: [], tried: [], devices: [] });
  const { binding, build } = loaded;
  const scopeDir = path.resolve(build.binsDir, "..", "..", ".."); // node_modules/@node-llama-cpp
  const base = build.platformPackage.split("/")[1]; // e.g. linux-x64
  const tried = [];
  let devices = [];
  for (const gpu of ["cuda", "vulkan"]) {
    const pkgDir = path.join(scopeDir, `${base}-${gpu}`);
    const lib = findBackendLibrary(pkgDir, gpu);
    if (typeof lib !== "string") {
      tried.push({ backend: gpu, loaded: false, reason: lib.reason });
      continue;
    }
    const version = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
    if (version !== build.nodeLlamaCpp) {
      tried.push({ backend: gpu, loaded: false, reason: `${base}-${gpu} ${version} is not ${build.nodeLlamaCpp}` });
      continue;
    }
    const r = binding.loadBackend(lib);
    devices = r.devices;
    tried.push({ backend: gpu, library: lib, loaded: r.loaded, ...(r.loaded ? {} : { reason: shortReason(r.reason) }) });
    if (r.devices.some((d) => d.gpu)) break; // one GPU backend is enough
  }
  gpuCached = { gpuDevices: devices.filter((d) => d.gpu), tried, devices };
  return gpuCached;
}

function findBackendLibrary(pkgDir, gpu) {
  const binsRoot = path.join(pkgDir, "bins");
  if (!existsSync(binsRoot)) return { reason: `${path.basename(pkgDir)} is not installed` };
  const ext = process.platform === "darwin" ? "dylib" : "so";
  for (const d of readdirSync(binsRoot)) {
    const file = path.join(binsRoot, d, `libggml-${gpu}.${ext}`);
    if (existsSync(file)) return file;
  }
  return { reason: `no libggml-${gpu}.${ext} in ${binsRoot}` };
}

/** ggml's "load_backend: failed to load <path>: <dlerror>" without the prefix and the path we already report. */
const shortReason = (why) => (why ?? "dlopen failed").replace(/^load_backend: failed to load \S+: /, "");
