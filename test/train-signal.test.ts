/**
 * `memento train toy` honours Ctrl-C / SIGTERM (issue #19, "signals are honoured"): a real signal to a child
 * process stops training after the step in progress, leaves a checkpoint, prints how to resume and exits 130;
 * the same command then resumes from that checkpoint. Needs the built CLI (`npm run build`, as `npm test` does).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel } from "../src/model/index.js";
import { runCli } from "./helpers/cli.js";
import { repoRoot } from "./helpers/reference.js";
import { tempDir } from "./helpers/tmp.js";

const CLI = join(repoRoot, "bin", "memento.js");

/** `train toy`'s arguments for a tiny plan (no answer stages, batch 2, one worker) into `out`, `extra` flags last. */
function trainToyArgs(out: string, plan: { examples: number; stage1: number; stage2: number }, extra: string[] = []) {
  const n = (v: number) => String(v);
  return [
    ...["train", "toy", "--out", out, "--train-examples", n(plan.examples), "--test-examples", "4"],
    ...["--short-steps", "0", "--stage1-steps", n(plan.stage1), "--stage2-steps", n(plan.stage2)],
    ...["--answer-steps", "0", "--answer-all-steps", "0", "--batch", "2", "--workers", "1"],
    ...extra,
  ];
}

/** Spawns `train toy` into `out`; resolves once stderr matches `ready`, with a promise of the exit code and stderr. */
function startTraining(out: string, ready: RegExp) {
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI, ...trainToyArgs(out, { examples: 40, stage1: 500, stage2: 10 })],
    {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, stderr })),
  );
  const started = new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (ready.test(stderr)) resolve();
    });
    child.on("exit", () => reject(new Error(`exited before ${ready}: ${stderr}`)));
  });
  return { child, started, exited };
}

describe("train toy: signals", () => {
  it("SIGINT stops after the step in progress with a checkpoint and exit 130; the same command resumes", async () => {
    const out = join(tempDir("memento-train-signal-"), "run");
    const first = startTraining(out, /stage1 step 1\/500/);
    await first.started;
    const sentAt = performance.now();
    first.child.kill("SIGINT");
    const a = await first.exited;
    const stopSeconds = (performance.now() - sentAt) / 1000;
    expect(a.code, a.stderr).toBe(130);
    expect(a.stderr).toMatch(/interrupted after \d+ steps this run; .*run the same command to resume/);
    expect(stopSeconds).toBeLessThan(20); // one step of the toy model at batch 2, plus the checkpoint
    const state = JSON.parse(readFileSync(join(out, "checkpoint", "state.json"), "utf8")) as { step: number };
    expect(state.step).toBeGreaterThan(0);
    expect(existsSync(join(out, "model"))).toBe(false); // not a finished run

    const second = startTraining(out, new RegExp(`resuming stage1 at step ${state.step}`));
    await second.started;
    second.child.kill("SIGTERM");
    const b = await second.exited;
    expect(b.code, b.stderr).toBe(130);
  }, 120_000);
});

describe("train toy: --stop-after-steps", () => {
  it("stops at a checkpoint that is a model directory, exit 0; the same command without it goes on", () => {
    const out = join(tempDir("memento-train-stop-"), "run");
    const args = (extra: string[]) => trainToyArgs(out, { examples: 20, stage1: 4, stage2: 2 }, extra);
    const a = runCli(args(["--stop-after-steps", "3"]));
    expect(a.status, a.stderr).toBe(0);
    expect(a.stderr).toMatch(/stopped after 3 steps as asked .*checkpoint holds the model/);
    expect(existsSync(join(out, "checkpoint", "tokenizer.json"))).toBe(true); // `serve --model` needs it
    const state = JSON.parse(readFileSync(join(out, "checkpoint", "state.json"), "utf8")) as { step: number };
    expect(state.step).toBe(3);
    expect(existsSync(join(out, "model"))).toBe(false);
    expect(loadModel(join(out, "checkpoint")).params.size).toBeGreaterThan(0);
    const b = runCli(args([]));
    expect(b.status, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/resuming stage1 at step 3/);
    expect(existsSync(join(out, "model", "model.safetensors"))).toBe(true);
  }, 120_000);
});
