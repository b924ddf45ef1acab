/**
 * Resumes are checked (src/io/manifest.ts): every resumable job records its options and input fingerprint before
 * any work, a rerun with other ones is refused in one line naming them, and --force-new moves the old directory
 * aside and starts over. One block per job (data build, eval run, train toy), then the module's own rules.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syntheticTraceRecord } from "../src/bench/traces.js";
import {
  canonicalJson,
  checkJobIdentity,
  fileFingerprint,
  identityDifferences,
  moveAside,
} from "../src/io/manifest.js";
import { isUserError } from "../src/errors.js";
import { toyIdentity, trainToy, type ToyTrainOptions } from "../src/train/toy.js";
import { runInProcess } from "./helpers/cli.js";
import { startFakeChat, type FakeChat } from "./helpers/fake-chat.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "memento-resume-"));
});
afterEach(() => {
  process.exitCode = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));
/** The `memento: ...` lines of a CLI run's stderr. */
const errorLines = (err: string) => err.split("\n").filter((l) => l.startsWith("memento: "));

function writeTraces(path: string, count: number): string {
  writeFileSync(
    path,
    Array.from({ length: count }, (_, i) => JSON.stringify(syntheticTraceRecord(i))).join("\n") + "\n",
  );
  return path;
}

describe("data build: a resume with other options is refused", () => {
  it("records its options and input fingerprint in manifest.json, and refuses --min-block-tokens 200 then 600", async () => {
    const input = writeTraces(join(dir, "in.jsonl"), 2);
    const out = join(dir, "out");
    const first = await runInProcess(["data", "build", "-i", input, "-o", out, "--min-block-tokens", "200"]);
    expect(first.code, first.err).toBe(0);
    const manifest = json(join(out, "manifest.json"));
    expect(manifest.options).toMatchObject({ "--min-block-tokens": 200, "--provider": "offline", "--windows": [16] });
    expect(manifest.input["--input"]).toMatchObject({ bytes: readFileSync(input).length });

    const other = await runInProcess(["data", "build", "-i", input, "-o", out, "--min-block-tokens", "600"]);
    expect(other.code).toBe(2);
    expect(errorLines(other.err)).toHaveLength(1);
    expect(other.err).toMatch(/this build was started with other options: --min-block-tokens 200 \(now 600\);/);
    expect(other.err).toMatch(/--force-new/);
    expect(json(join(out, "manifest.json")).options["--min-block-tokens"]).toBe(200); // untouched

    // Options that only change how fast or how much may differ.
    const faster = await runInProcess(["data", "build", "-i", input, "-o", out, "--workers", "1", "--limit", "1"]);
    expect(faster.code, faster.err).toBe(0);
  });

  it("refuses the same directory over another input file", async () => {
    const out = join(dir, "out");
    expect((await runInProcess(["data", "build", "-i", writeTraces(join(dir, "a.jsonl"), 2), "-o", out])).code).toBe(0);
    const r = await runInProcess(["data", "build", "-i", writeTraces(join(dir, "a.jsonl"), 3), "-o", out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/other options: --input \(its contents differ\)/);
  });

  it("--force-new moves the old build aside and starts over", async () => {
    const input = writeTraces(join(dir, "in.jsonl"), 2);
    const out = join(dir, "out");
    expect((await runInProcess(["data", "build", "-i", input, "-o", out])).code).toBe(0);
    const r = await runInProcess(["data", "build", "-i", input, "-o", out, "--min-block-tokens", "300", "--force-new"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/moved the earlier build to .*out\.prev-\d{8}T\d{6}Z/);
    expect(r.err).toMatch(/; 0 from an earlier run\)/); // started over
    const aside = readdirSync(dir).filter((n) => n.startsWith("out.prev-"));
    expect(aside).toHaveLength(1);
    expect(json(join(dir, aside[0], "manifest.json")).options["--min-block-tokens"]).toBe(200);
    expect(json(join(out, "manifest.json")).options["--min-block-tokens"]).toBe(300);
  });

  it("adopts a build directory written before options were recorded", async () => {
    const input = writeTraces(join(dir, "in.jsonl"), 1);
    const out = join(dir, "out");
    mkdirSync(out);
    writeFileSync(join(out, "manifest.json"), JSON.stringify({ input, provider: "offline", completed: 0 }));
    const r = await runInProcess(["data", "build", "-i", input, "-o", out]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/had no recorded options/);
    expect(json(join(out, "manifest.json")).options["--min-block-tokens"]).toBe(200);
  });
});

describe("eval run: a resume with other options is refused", () => {
  let fake: FakeChat;
  beforeEach(async () => {
    fake = await startFakeChat();
  });
  afterEach(async () => {
    await fake.close();
  });

  const bench = () => {
    const path = join(dir, "bench.jsonl");
    const rows = [0, 1].map((i) =>
      JSON.stringify({ id: `p${i}`, problem: `What is ${i} + 1?`, answer: String(i + 1) }),
    );
    writeFileSync(path, rows.join("\n") + "\n");
    return path;
  };

  it("records its options in run.json and refuses another --temperature; -n may grow", async () => {
    const b = bench();
    const out = join(dir, "run");
    const args = ["eval", "run", "-b", b, "-e", fake.baseURL, "-m", "fake", "-o", out];
    expect((await runInProcess(args)).code).toBe(0);
    expect(json(join(out, "run.json")).options).toMatchObject({ "--temperature": 0.6, "--model": "fake" });

    const hotter = await runInProcess([...args, "--temperature", "1.0"]);
    expect(hotter.code).toBe(2);
    expect(errorLines(hotter.err)).toHaveLength(1);
    expect(hotter.err).toMatch(/this run was started with other options: --temperature 0\.6 \(now 1\);/);

    const more = await runInProcess([...args, "-n", "2"]);
    expect(more.code, more.err).toBe(0);
    expect(fake.bodies).toHaveLength(4); // 2 problems x 1, then the second sample of each
  });

  it("--force-new moves the old run aside", async () => {
    const b = bench();
    const out = join(dir, "run");
    const args = ["eval", "run", "-b", b, "-e", fake.baseURL, "-m", "fake", "-o", out];
    expect((await runInProcess(args)).code).toBe(0);
    const r = await runInProcess([...args, "--max-tokens", "50", "--force-new"]);
    expect(r.code, r.err).toBe(0);
    expect(readdirSync(dir).filter((n) => n.startsWith("run.prev-"))).toHaveLength(1);
    expect(fake.bodies).toHaveLength(4); // started over: both problems asked again
  });
});

describe("train toy: a resume with other options is refused", () => {
  /** A toy run small enough to train and evaluate in about a second. */
  const tinyRun = (outDir: string, lr: number): ToyTrainOptions => ({
    outDir,
    seed: 1,
    trainExamples: 4,
    testExamples: 1,
    stage1Steps: 1,
    stage2Steps: 1,
    batchSize: 2,
    lr,
    workers: 1,
    task: { minBlocks: 1, maxBlocks: 1, stepsPerBlock: 2 },
    trainMinBlocks: 1,
    config: {
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 8,
    },
  });

  it("records its options in manifest.json before training and refuses another --lr", async () => {
    const out = join(dir, "toy");
    await trainToy(tinyRun(out, 3e-3));
    expect(json(join(out, "manifest.json")).options).toMatchObject({ "--lr": 3e-3, "--stage1-steps": 1 });
    await expect(trainToy(tinyRun(out, 1e-3))).rejects.toThrow(
      /this training run was started with other options: .*--lr 0\.003 \(now 0\.001\);/,
    );
    await trainToy({ ...tinyRun(out, 1e-3), forceNew: true });
    expect(readdirSync(dir).filter((n) => n.startsWith("toy.prev-"))).toHaveLength(1);
  }, 60_000);

  it("`memento train toy` refuses in one line, before any training", async () => {
    const out = join(dir, "toy");
    mkdirSync(out);
    // As `memento train toy` records it with its defaults, then a rerun with another --stage2-steps.
    const defaults = { outDir: out, seed: 1, trainExamples: 6000, testExamples: 200, trainMinBlocks: 1 };
    const recorded = toyIdentity({
      ...defaults,
      shortSteps: 800,
      stage1Steps: 400,
      stage2Steps: 500,
      onceWeight: 10,
      stage2CausalFraction: 0.25,
      answerSteps: 300,
      answerWeight: 30,
      answerLr: 1e-3,
      answerAllSteps: 150,
      answerAllLr: 3e-4,
      batchSize: 8,
      lr: 3e-3,
      workers: 2,
    });
    writeFileSync(join(out, "manifest.json"), JSON.stringify(recorded));
    const r = await runInProcess(["train", "toy", "--out", out, "--stage2-steps", "600"]);
    expect(r.code).toBe(2);
    expect(errorLines(r.err)).toEqual([expect.stringMatching(/other options: --stage2-steps 500 \(now 600\);/)]);
    expect(readdirSync(out)).toEqual(["manifest.json"]); // nothing trained
  });
});

describe("the identity check (src/io/manifest.ts)", () => {
  const id = (options: Record<string, unknown>, input: Record<string, unknown> = {}) => ({ options, input });

  it("compares values as canonical JSON: key order does not matter, an absent option equals undefined", () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] })).toBe(canonicalJson({ a: [1, { c: 3, d: 2 }], b: 1 }));
    expect(identityDifferences(id({ "--a": 1, "--b": undefined }), id({ "--a": 1 }))).toEqual([]);
  });

  it("names every differing option with both values, and an input whose contents differ", () => {
    const was = id({ "--windows": [16], "--model": "m", "--seed": 1 }, { "--input": { bytes: 1 } });
    const now = id({ "--windows": [16, 11], "--model": "m" }, { "--input": { bytes: 2 } });
    expect(identityDifferences(was, now)).toEqual([
      "--windows 16 (now 16,11)",
      "--seed 1 (now unset)",
      "--input (its contents differ)",
    ]);
  });

  it("a missing manifest is new, a matching one the same, one without options adopted, another refused", () => {
    const path = join(dir, "m.json");
    const check = { what: "job", dirFlag: "--out" };
    expect(checkJobIdentity(path, id({ "--x": 1 }), check)).toBe("new");
    writeFileSync(path, JSON.stringify({ ...id({ "--x": 1 }), other: "fields" }));
    expect(checkJobIdentity(path, id({ "--x": 1 }), check)).toBe("same");
    try {
      checkJobIdentity(path, id({ "--x": 2 }), check);
      expect.unreachable();
    } catch (e) {
      expect(isUserError(e)).toBe(true);
      expect((e as Error).message).toMatch(/this job was started with other options: --x 1 \(now 2\); .*another --out/);
    }
    writeFileSync(path, JSON.stringify({ legacy: true }));
    expect(checkJobIdentity(path, id({ "--x": 2 }), check)).toBe("adopted");
  });

  it("fingerprints a file by its size and both ends; a missing file is a user error", () => {
    const path = join(dir, "f.bin");
    writeFileSync(path, Buffer.alloc(100, 1));
    const a = fileFingerprint(path, 16);
    writeFileSync(path, Buffer.concat([Buffer.alloc(99, 1), Buffer.from([2])]));
    expect(fileFingerprint(path, 16).sha256).not.toBe(a.sha256); // the last byte changed
    expect(fileFingerprint(path, 16).bytes).toBe(100);
    expect(() => fileFingerprint(join(dir, "missing"))).toThrow(/cannot read file \(ENOENT\)/);
  });

  it("moveAside renames a directory with files, and leaves a missing or empty one alone", () => {
    const d = join(dir, "job");
    expect(moveAside(d)).toBeUndefined();
    mkdirSync(d);
    expect(moveAside(d)).toBeUndefined();
    writeFileSync(join(d, "x"), "1");
    const to = moveAside(d, new Date("2026-01-02T03:04:05.678Z"));
    expect(to).toBe(`${d}.prev-20260102T030405Z`);
    expect(existsSync(join(to!, "x"))).toBe(true);
    expect(existsSync(d)).toBe(false);
  });
});
