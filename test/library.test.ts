import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { repoRoot } from "./helpers/reference.js";

describe("library entry point", () => {
  it("the built package imports by its own name and exposes the foundation flat and the rest as namespaces", () => {
    const script = [
      'const m = await import("memento");',
      "const t = new m.BlockTracker(m.resolveMasking({}), { blockStart: 1, blockEnd: 2, summaryStart: 3, summaryEnd: 4 });",
      "const ev = [1, 9, 2, 3, 9, 4].flatMap((x) => t.push(x));",
      "console.log(JSON.stringify({ ev: ev.map((e) => [e.start, e.end]), ns: [typeof m.data.buildDataset, typeof m.model.Qwen3Model, typeof m.train.train, typeof m.evaluation.checkAnswer] }));",
    ].join("\n");
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: repoRoot, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ev: [[1, 2]], ns: ["function", "function", "function", "function"] });
  });
});
