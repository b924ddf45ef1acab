#!/usr/bin/env node
// native/build.mjs: install-time build of native/llama-pool (llama_pool.node) against the llama.cpp that
// node-llama-cpp ships: headers from its gitRelease.bundle, libraries from its prebuilt platform package.
// Never fails an install: when something is missing (compiler, cmake, git, headers, platform package, an
// unsupported OS) or the compile fails, it prints ONE warning line and exits 0, and the engine keeps using
// node-llama-cpp. `--strict` (or LLAMA_POOL_STRICT=1) turns those into exit 1 (CI, development).
// Environment: LLAMA_POOL_GPU=cuda|vulkan links the matching platform package instead of the CPU one;
// LLAMA_POOL_SKIP=1 skips the build; CXX picks the compiler; LLAMA_POOL_JOBS the parallel compile jobs (2).
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const addonDir = path.join(here, "llama-pool");
const buildDir = path.join(addonDir, "build");
const strict = process.argv.includes("--strict") || process.env.LLAMA_POOL_STRICT === "1";
const verbose = process.argv.includes("--verbose");

class Skip extends Error {}
const skip = (why) => {
  throw new Skip(why);
};
const log = (...a) => {
  if (verbose) console.log("[llama-pool]", ...a);
};

/** Nearest node_modules/<name> walking up from `from` (how Node resolves a package, hoisting included). */
function findPackageDir(name, from = path.dirname(here)) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const cand = path.join(dir, "node_modules", name);
    if (existsSync(path.join(cand, "package.json"))) return cand;
    if (path.dirname(dir) === dir) return undefined;
  }
}
const pkgVersion = (dir) => JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")).version;

function have(cmd, args = ["--version"]) {
  const r = spawnSync(cmd, args, { stdio: "ignore" });
  return r.status === 0;
}

function platformPackage(nlcDir) {
  const gpu = process.env.LLAMA_POOL_GPU ?? "";
  const plat = { linux: "linux", darwin: "mac", win32: "win" }[process.platform];
  if (!plat || process.platform === "win32")
    skip(`platform ${process.platform} is not supported by the prototype build (Linux, macOS)`);
  let name = `${plat}-${process.arch}`;
  if (plat === "mac" && process.arch === "arm64") name += "-metal";
  if (gpu) name += `-${gpu}`;
  const dir = findPackageDir(`@node-llama-cpp/${name}`, nlcDir);
  if (!dir) skip(`platform package @node-llama-cpp/${name} is not installed`);
  const nlcVer = pkgVersion(nlcDir);
  if (pkgVersion(dir) !== nlcVer)
    skip(`@node-llama-cpp/${name} ${pkgVersion(dir)} differs from node-llama-cpp ${nlcVer}`);
  const binsRoot = path.join(dir, "bins");
  const binsDir = readdirSync(binsRoot)
    .map((d) => path.join(binsRoot, d))
    .find((d) => existsSync(path.join(d, "_nlcBuildMetadata.json")));
  if (!binsDir) skip(`no prebuilt binaries in ${binsRoot}`);
  const files = readdirSync(binsDir);
  const ext = process.platform === "darwin" ? "dylib" : "so";
  const pick = (re, what) => {
    const f = files.find((x) => re.test(x));
    if (!f) skip(`${what} not found in ${binsDir}`);
    return path.join(binsDir, f);
  };
  return {
    name,
    binsDir,
    meta: JSON.parse(readFileSync(path.join(binsDir, "_nlcBuildMetadata.json"), "utf8")),
    llamaLib: pick(new RegExp(`^libllama(\\.[a-z]+)?\\.v[0-9.]+\\.${ext}$`), "libllama"),
    ggmlLib: pick(new RegExp(`^libggml(\\.[a-z]+)?\\.v[0-9.]+\\.${ext}$`), "libggml"),
    ggmlBaseLib: pick(new RegExp(`^libggml-base\\.${ext}$`), "libggml-base"),
  };
}

/** include/ and ggml/include/ of the llama.cpp release node-llama-cpp was built from (cached per tag). */
function llamaHeaders(nlcDir, tag) {
  const bundle = path.join(nlcDir, "llama", "gitRelease.bundle");
  if (!existsSync(bundle)) skip(`${bundle} is missing (llama.cpp headers)`);
  const dest = path.join(buildDir, "llama-headers", tag);
  const ready = path.join(dest, ".complete");
  if (!existsSync(ready)) {
    if (!have("git")) skip("git is not installed (needed to read llama.cpp headers from node-llama-cpp's bundle)");
    const tmpGit = path.join(os.tmpdir(), `llama-pool-bundle-${process.pid}.git`);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
    try {
      execFileSync("git", ["clone", "-q", "--bare", bundle, tmpGit], { stdio: verbose ? "inherit" : "pipe" });
      const tar = execFileSync(
        "git",
        ["--git-dir", tmpGit, "archive", "--format=tar", "HEAD", "include", "ggml/include", "CMakeLists.txt"],
        {
          maxBuffer: 64 << 20,
        },
      );
      execFileSync("tar", ["-x", "-C", dest], { input: tar });
    } finally {
      rmSync(tmpGit, { recursive: true, force: true });
    }
    writeFileSync(ready, `${bundle}\n`);
  }
  const llamaH = path.join(dest, "include", "llama.h");
  if (!existsSync(llamaH) || !existsSync(path.join(dest, "ggml", "include", "ggml.h")))
    skip(`llama.h / ggml.h not found after extracting ${bundle}`);
  // The llama.cpp version the headers belong to (its CMakeLists.txt), checked against llama_version() at run time.
  const cm = readFileSync(path.join(dest, "CMakeLists.txt"), "utf8");
  const v = (k) => cm.match(new RegExp(`set\\(LLAMA_VERSION_${k}\\s+(\\d+)\\)`))?.[1];
  return {
    include: path.join(dest, "include"),
    ggmlInclude: path.join(dest, "ggml", "include"),
    version: [v("MAJOR"), v("MINOR"), v("PATCH")].join("."),
  };
}

function nodeHeaders() {
  const napiHeaders = findPackageDir("node-api-headers");
  let nodeApiInclude = napiHeaders && path.join(napiHeaders, "include");
  if (!nodeApiInclude || !existsSync(path.join(nodeApiInclude, "node_api.h"))) {
    nodeApiInclude = path.join(path.dirname(path.dirname(process.execPath)), "include", "node");
  }
  if (!existsSync(path.join(nodeApiInclude, "node_api.h"))) skip("node_api.h not found (install node-api-headers)");
  const addonApi = findPackageDir("node-addon-api");
  if (!addonApi || !existsSync(path.join(addonApi, "napi.h"))) skip("node-addon-api is not installed");
  return { nodeApiInclude, addonApi };
}

function main() {
  if (process.env.LLAMA_POOL_SKIP === "1") skip("LLAMA_POOL_SKIP=1");
  const nlcDir = findPackageDir("node-llama-cpp");
  if (!nlcDir) skip("node-llama-cpp is not installed");
  const info = JSON.parse(readFileSync(path.join(nlcDir, "llama", "llama.cpp.info.json"), "utf8"));
  const plat = platformPackage(nlcDir);
  const builtFrom = plat.meta?.buildOptions?.llamaCpp?.release;
  if (builtFrom && builtFrom !== info.tag)
    skip(`prebuilt binaries are llama.cpp ${builtFrom} but the bundled source is ${info.tag}`);
  const cxx = process.env.CXX ?? "c++";
  if (!have("cmake")) skip("cmake is not installed");
  if (!have(cxx)) skip(`no C++ compiler (${cxx})`);
  const hdr = llamaHeaders(nlcDir, info.tag);
  const node = nodeHeaders();
  log("platform", plat.name, plat.binsDir, "llama.cpp", info.tag, hdr.version);

  const cmakeBuild = path.join(buildDir, "cmake");
  const out = path.join(buildDir, "llama_pool.node");
  const origin = process.platform === "darwin" ? "@loader_path" : "$ORIGIN";
  const rpath = [`${origin}/${path.relative(buildDir, plat.binsDir)}`, plat.binsDir].join(";");
  const defs = {
    CMAKE_BUILD_TYPE: "Release",
    CMAKE_CXX_COMPILER: cxx,
    NODE_API_INCLUDE: node.nodeApiInclude,
    NODE_ADDON_API_DIR: node.addonApi,
    LLAMA_INCLUDE: hdr.include,
    GGML_INCLUDE: hdr.ggmlInclude,
    LLAMA_LIB: plat.llamaLib,
    GGML_LIB: plat.ggmlLib,
    GGML_BASE_LIB: plat.ggmlBaseLib,
    LLAMA_BIN_RPATH: rpath,
    EXPECTED_LLAMA_VERSION: hdr.version,
  };
  const run = (args) => {
    const r = spawnSync("cmake", args, { stdio: verbose ? "inherit" : "pipe", encoding: "utf8" });
    if (r.status !== 0) {
      const tail = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
      if (tail) console.error(tail);
      skip(`cmake ${args[0] === "--build" ? "build" : "configure"} failed`);
    }
  };
  run(["-S", addonDir, "-B", cmakeBuild, ...Object.entries(defs).map(([k, v]) => `-D${k}=${v}`)]);
  run(["--build", cmakeBuild, "--parallel", process.env.LLAMA_POOL_JOBS ?? "2"]);
  const built = path.join(cmakeBuild, "llama_pool.node");
  copyFileSync(built, `${out}.tmp`);
  renameSync(`${out}.tmp`, out);
  writeFileSync(
    path.join(buildDir, "build-info.json"),
    `${JSON.stringify(
      {
        addon: out,
        nodeLlamaCpp: pkgVersion(nlcDir),
        platformPackage: `@node-llama-cpp/${plat.name}`,
        binsDir: plat.binsDir,
        llamaCppRelease: info.tag,
        llamaVersion: hdr.version,
        nodeAbi: process.versions.modules,
        napiVersion: 8,
        builtAt: new Date().toISOString(),
      },
      null,
      2,
    )}\n`,
  );
  console.log(`llama-pool: built ${path.relative(process.cwd(), out)} (llama.cpp ${info.tag}, ${plat.name})`);
}

try {
  main();
} catch (e) {
  const why = e instanceof Skip ? e.message : `unexpected error: ${e?.message ?? e}`;
  console.warn(`llama-pool: native shared-KV addon not built (${why}); falling back to node-llama-cpp`);
  process.exit(strict ? 1 : 0);
}
