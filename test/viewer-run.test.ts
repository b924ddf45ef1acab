import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { generateDataset } from "../src/train/toy-task.js";
import { DEFAULT_VIEW_ARCHITECTURE, resolveViewerSetup } from "../src/report/viewer-run.js";
import type { TraceView } from "../src/report/viewer.js";
import { repoRoot } from "./helpers/reference.js";

const toyDir = join(repoRoot, "models", "toy");
const toyConfig = join(toyDir, "config.json");
const toyResponse = generateDataset(1, 1)[0].response;
const toyOutputTokens = loadTokenizer(toyDir).count(toyResponse);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "memento-viewer-run-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A run directory as `memento eval run` writes it: run.json and one generation with its recorded KV. */
function runDir(name: string, manifest: Record<string, unknown>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "run.json"), JSON.stringify({ label: "memento", model: "toy", ...manifest }));
  const generation = {
    problemId: "toy-test-0000",
    sample: 0,
    status: "ok",
    response: toyResponse,
    correct: true,
    kv: { outputTokens: toyOutputTokens },
  };
  writeFileSync(join(dir, "generations.jsonl"), JSON.stringify(generation) + "\n");
  return dir;
}

describe("which architecture and tokenizer `memento view` uses", () => {
  it("a run's recorded config.json gives the architecture, and the tokenizer beside it when none is recorded", () => {
    const s = resolveViewerSetup(runDir("toy", { architecture: toyConfig }), {});
    expect([s.architecture.origin, s.architecture.value.name]).toEqual(["run", toyConfig]);
    expect([s.tokenizerDir.origin, s.tokenizerDir.value]).toEqual(["run", toyDir]);
    expect(s.tokenizerDir.why).toMatch(/beside the architecture recorded in .*run\.json \(no tokenizer recorded\)/);
  });

  it("a recorded preset is used; the generations file inside a run directory counts as the run", () => {
    const dir = runDir("preset", { architecture: "Qwen3-32B" });
    const s = resolveViewerSetup(join(dir, "generations.jsonl"), {});
    expect([s.architecture.origin, s.architecture.value.name]).toEqual(["run", "Qwen3-32B"]);
    expect([s.tokenizerDir.origin, s.tokenizerDir.value]).toEqual(["default", undefined]);
    expect(s.tokenizerDir.why).toMatch(/records no tokenizer/);
  });

  it("a recorded tokenizer is used as recorded; null records the default tokenizer", () => {
    const recorded = resolveViewerSetup(runDir("tok", { architecture: "qwen3-8b", tokenizer: toyDir }), {});
    expect([recorded.tokenizerDir.origin, recorded.tokenizerDir.value]).toEqual(["run", toyDir]);
    const none = resolveViewerSetup(runDir("tok-null", { architecture: toyConfig, tokenizer: null }), {});
    expect([none.tokenizerDir.origin, none.tokenizerDir.value]).toEqual(["run", undefined]);
  });

  it("flags win over the run's records", () => {
    const s = resolveViewerSetup(runDir("flags", { architecture: toyConfig }), {
      architecture: "phi-4-reasoning",
      tokenizer: toyDir,
    });
    expect([s.architecture.origin, s.architecture.value.name]).toEqual(["flag", "Phi-4-reasoning"]);
    expect([s.tokenizerDir.origin, s.tokenizerDir.why]).toEqual(["flag", `-t ${toyDir}`]);
  });

  it("the defaults apply only when nothing is recorded, and say so", () => {
    const plain = join(tmp, "plain.txt");
    writeFileSync(plain, toyResponse);
    const s = resolveViewerSetup(plain, {});
    expect([s.architecture.origin, s.architecture.value.name.toLowerCase()]).toEqual([
      "default",
      DEFAULT_VIEW_ARCHITECTURE,
    ]);
    expect(s.architecture.why).toMatch(/not a run directory/);
    const bare = resolveViewerSetup(runDir("bare", {}), {});
    expect(bare.architecture.why).toMatch(/records no architecture/);
    expect(resolveViewerSetup(null, {}).tokenizerDir.origin).toBe("default");
  });

  it("a recorded architecture or tokenizer that cannot be found is a one-line error naming run.json and the flag", () => {
    expect(() => resolveViewerSetup(runDir("lost-arch", { architecture: "gone/config.json" }), {})).toThrow(
      /run\.json: records architecture "gone\/config\.json".*pass -a/,
    );
    expect(() =>
      resolveViewerSetup(runDir("lost-tok", { architecture: "qwen3-8b", tokenizer: "gone-tokenizer" }), {}),
    ).toThrow(/run\.json: records tokenizer "gone-tokenizer".*pass -t/);
  });

  it("`memento view RUN_DIR` counts tokens with the run's tokenizer and sizes KV with its architecture", async () => {
    const dir = runDir("cli", { architecture: toyConfig });
    const child = spawn(process.execPath, [join(repoRoot, "bin", "memento.js"), "view", dir, "--no-open"], {
      cwd: repoRoot,
    });
    try {
      let out = "";
      const url = await new Promise<string>((resolve, reject) => {
        let err = "";
        const timer = setTimeout(() => reject(new Error(`no URL printed; stderr: ${err}`)), 30_000);
        child.stdout.setEncoding("utf8").on("data", (d: string) => {
          out += d;
          const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m && out.includes("tokenizer:")) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
        child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
        child.on("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
      });
      const info = (await (await fetch(new URL("/api/info", url))).json()) as {
        architecture: string;
        setup: { architecture: { origin: string }; tokenizer: { origin: string; why: string } };
      };
      expect(info.architecture).toBe(toyConfig);
      expect([info.setup.architecture.origin, info.setup.tokenizer.origin]).toEqual(["run", "run"]);
      const t = (await (await fetch(new URL("/api/trace?i=0", url))).json()) as TraceView;
      expect(t.outputTokens).toBe(toyOutputTokens);
      expect(t.recordedOutputTokens).toBe(toyOutputTokens);
      expect(out).toContain(`KV bytes for ${toyConfig} (recorded in`);
    } finally {
      child.kill("SIGKILL");
    }
  }, 40_000);
});
