/**
 * The architecture as layers: every import in src/ points down (or stays inside its own folder).
 * The table below is the README's layout section in code; a new folder must be placed in it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers/reference.js";

/** Folder (or root file) of src/ -> its layer. Folders on one layer may not import each other. */
const LAYERS: Record<string, number> = {
  "errors.js": 0,
  util: 0,
  io: 1,
  format: 2,
  masking: 2,
  kv: 3,
  model: 4,
  engine: 5,
  data: 6,
  train: 7,
  eval: 7,
  report: 8,
  bench: 8,
  analyze: 8,
  rl: 8,
  demo: 8,
  server: 9,
  cli: 10,
  "index.js": 11,
};

const SRC = join(repoRoot, "src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

/** Relative module specifiers of a file: static imports, re-exports and dynamic import(). */
function relativeImports(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)"(\.{1,2}\/[^"]+)"/gm)) specs.push(m[1]);
  return specs;
}

/**
 * The folder of src/ a path lies in, or the root file itself (a specifier ends in .js, a file in .ts); "native"
 * for the addon's loader outside src/ (native/llama-pool), which only the engine's backends may import.
 */
const roomOf = (absPath: string) => {
  const rel = relative(SRC, absPath);
  if (rel.startsWith("../native/")) return "native";
  return rel.split("/")[0].replace(/\.ts$/, ".js");
};

interface Arrow {
  from: string;
  to: string;
  file: string;
  spec: string;
}

function arrows(): Arrow[] {
  return sourceFiles(SRC).flatMap((file) =>
    relativeImports(readFileSync(file, "utf8")).map((spec) => ({
      from: roomOf(file),
      to: roomOf(resolve(dirname(file), spec)),
      file: relative(repoRoot, file),
      spec,
    })),
  );
}

describe("layers", () => {
  const all = arrows();

  it("finds the imports it checks (the scanner is not blind)", () => {
    expect(all.length).toBeGreaterThan(200);
    expect(all.some((a) => a.from === "cli" && a.to === "engine")).toBe(true);
    expect(relativeImports('import x from "./a.js";\nexport * from "../b.js";\nawait import("./c.js");')).toEqual([
      "./a.js",
      "../b.js",
      "./c.js",
    ]);
  });

  it("places every folder of src/ on a layer", () => {
    const rooms = readdirSync(SRC).map((n) => roomOf(join(SRC, n)));
    expect(rooms.filter((r) => !(r in LAYERS))).toEqual([]);
  });

  it("has no arrow from a lower layer to a higher one, nor between folders of one layer", () => {
    const upward = all
      .filter((a) => a.from !== a.to && a.to !== "native" && !(LAYERS[a.to] < LAYERS[a.from]))
      .map((a) => `${a.file} imports ${a.spec} (${a.from}, layer ${LAYERS[a.from]} -> ${a.to}, layer ${LAYERS[a.to]})`);
    expect(upward).toEqual([]);
  });

  it("lets only the engine's backends load the native addon", () => {
    const native = all.filter((a) => a.to === "native");
    expect(native.length).toBeGreaterThan(0);
    expect(native.filter((a) => !a.file.startsWith("src/engine/backends/")).map((a) => a.file)).toEqual([]);
  });

  it("keeps src/cli a leaf: nothing outside it imports it", () => {
    expect(all.filter((a) => a.to === "cli" && a.from !== "cli" && a.from !== "index.js").map((a) => a.file)).toEqual(
      [],
    );
  });
});
