/**
 * examples/pytorch-sft: the PyTorch collator builds, from `memento train export` rows, exactly the Stage-2 mask of
 * denseMask() (src/masking/masks.ts), and the tiny trainer runs on it.
 *
 * 1. Each dumped mask's real [n, n] part equals denseMask() of the same row's pattern, bit for bit (rows with
 *    several blocks, keepLastNBlocks 1, maskDelimiters and restart mode, whose view_at differs from q).
 * 2. Padding: real queries see no padding key; a padding query sees only itself.
 * 3. Parquet exports read the same where pyarrow imports, else the example refuses them in one line (exit 2).
 * 4. train.py runs a couple of steps with a finite loss.
 *
 * Needs a Python that imports torch: $MEMENTO_PYTHON, then `python3`, then `/usr/bin/python3` (Debian's
 * python3-torch); without one every test skips, saying so.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { MaskingConfig } from "../src/masking/config.js";
import { type CompactAttentionPattern, NEVER, denseMask } from "../src/masking/masks.js";
import { toyTokenizer } from "../src/train/char-tokenizer.js";
import { buildSftExample, exportPair, exportSft, stagePattern, trackerIdsOf } from "../src/train/sft-data.js";
import { generateDataset } from "../src/train/toy-task.js";
import { repoRoot } from "./helpers/reference.js";
import { tempDir } from "./helpers/tmp.js";

const TRAIN_PY = join(repoRoot, "examples", "pytorch-sft", "train.py");
const PYTHON_TIMEOUT_MS = 60_000;

/** The first of $MEMENTO_PYTHON, python3, /usr/bin/python3 that imports torch, and which ones were tried. */
function findTorchPython(): { python: string | null; tried: string[] } {
  const tried = [process.env.MEMENTO_PYTHON, "python3", "/usr/bin/python3"].filter((p): p is string => !!p);
  for (const python of tried) {
    const r = spawnSync(python, ["-c", "import torch"], { timeout: PYTHON_TIMEOUT_MS, stdio: "ignore" });
    if (r.status === 0) return { python, tried };
  }
  return { python: null, tried };
}

function runPython(python: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(python, [TRAIN_PY, ...args], {
    encoding: "utf8",
    timeout: PYTHON_TIMEOUT_MS,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface DumpedMask {
  row: number;
  length: number;
  padded_length: number;
  /** One string per query, one "0"/"1" per key. */
  mask: string[];
}

/** Positions where the dumped [T, T] mask departs from `expected` ([n, n]) plus clause 2's padding rule. */
function mismatches(d: DumpedMask, expected: Uint8Array, n: number): number {
  let bad = 0;
  for (let q = 0; q < d.padded_length; q++) {
    for (let k = 0; k < d.padded_length; k++) {
      const want = q < n && k < n ? expected[q * n + k] : q >= n && k === q ? 1 : 0;
      if (d.mask[q][k] !== String(want)) bad++;
    }
  }
  return bad;
}

const { python, tried } = findTorchPython();
const tok = toyTokenizer();
const ids = trackerIdsOf(tok);
const dir = tempDir("memento-example-pytorch-");

/** Toy problems of 1-3 rounds (103-253 tokens): several blocks each, lengths that differ, so batches pad. */
const pairs = generateDataset(5, 4, { minBlocks: 1, maxBlocks: 3 }).map((d) => ({
  prompt: d.prompt,
  response: d.response,
}));
/** Rows appended after the plain export, each under other Stage-2 settings. */
const variants: Partial<MaskingConfig>[] = [{ keepLastNBlocks: 1 }, { maskDelimiters: true }, { restartMode: true }];

/** The Stage-2 pattern of every row of the JSONL export, in file order. */
function expectedPatterns(): CompactAttentionPattern[] {
  const settings: Partial<MaskingConfig>[] = [...pairs.map(() => ({})), ...variants];
  return settings.map((masking, i) => {
    const pair = pairs[i < pairs.length ? i : i - pairs.length];
    return stagePattern(buildSftExample(tok, pair.prompt, pair.response), 2, ids, masking);
  });
}

/** How many distinct eviction triggers (closed blocks) a pattern has. */
function evictions(p: CompactAttentionPattern): number {
  return new Set(Array.from(p.visibleUntil).filter((v) => v !== NEVER)).size;
}

async function writeExports(): Promise<{ jsonl: string; parquet: string }> {
  const input = join(dir, "toy.jsonl");
  writeFileSync(input, pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const jsonl = join(dir, "sft.jsonl");
  const parquet = join(dir, "sft.parquet");
  expect((await exportSft(input, jsonl, { tokenizer: tok })).written).toBe(pairs.length);
  expect((await exportSft(input, parquet, { tokenizer: tok })).written).toBe(pairs.length);
  for (const [i, masking] of variants.entries()) {
    const r = exportPair(pairs[i], { tokenizer: tok, masking });
    if (!("record" in r)) throw new Error(`variant ${i} was skipped: ${r.message}`);
    appendFileSync(jsonl, JSON.stringify(r.record) + "\n");
  }
  return { jsonl, parquet };
}

function dumpMasks(py: string, exportFile: string): DumpedMask[] {
  const out = join(dir, `masks-${Math.random().toString(36).slice(2)}.json`);
  const r = runPython(py, [exportFile, "--dump-masks", out, "--batch-size", "3"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return (JSON.parse(readFileSync(out, "utf8")) as { rows: DumpedMask[] }).rows;
}

if (python === null) {
  describe("examples/pytorch-sft", () => {
    it.skip(`skipped: no Python that imports torch (tried ${tried.join(", ")}; set MEMENTO_PYTHON)`, () => {});
  });
} else {
  const py = python;
  describe(`examples/pytorch-sft (${py})`, () => {
    it("the collator's dense mask equals denseMask() on every exported row, padding masked", async () => {
      const { jsonl } = await writeExports();
      const patterns = expectedPatterns();
      const want = patterns.map(denseMask);
      const got = dumpMasks(py, jsonl);
      expect(got.map((d) => d.row)).toEqual(want.map((_, i) => i));
      got.forEach((d, i) => {
        const n = Math.sqrt(want[i].length);
        expect(d.length).toBe(n);
        expect(d.mask.length).toBe(d.padded_length);
        expect(mismatches(d, want[i], n)).toBe(0);
      });
      // The rows really exercise what the rule has to get right.
      expect(got.some((d) => d.padded_length > d.length)).toBe(true);
      expect(patterns.every((p) => evictions(p) >= 1) && patterns.some((p) => evictions(p) >= 3)).toBe(true);
      const restart = patterns[patterns.length - 1];
      expect(restart.viewAt.some((v, q) => v !== q)).toBe(true); // recomputed memento rows: view_at != q
    });

    it("reads the Parquet export where pyarrow imports, else refuses it in one line", async () => {
      const { parquet } = await writeExports();
      const hasArrow = spawnSync(py, ["-c", "import pyarrow.parquet"], { stdio: "ignore" }).status === 0;
      if (!hasArrow) {
        const r = runPython(py, [parquet, "--dump-masks", join(dir, "unused.json")]);
        expect(r.status).toBe(2);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toMatch(/^train\.py: .*needs pyarrow/);
        return;
      }
      const want = expectedPatterns().slice(0, pairs.length).map(denseMask);
      const got = dumpMasks(py, parquet);
      expect(got).toHaveLength(want.length);
      expect(got.map((d, i) => mismatches(d, want[i], d.length))).toEqual(want.map(() => 0));
    });

    it("train.py runs two steps with memento attention and a finite loss", async () => {
      const { jsonl } = await writeExports();
      const r = runPython(py, [jsonl, "--steps", "2", "--batch-size", "2"]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout).toContain("memento attention (stage 2)");
      const losses = [...r.stdout.matchAll(/^step \d+\/2 loss (\S+)$/gm)].map((m) => Number(m[1]));
      expect(losses).toHaveLength(2);
      for (const loss of losses) expect(Number.isFinite(loss) && loss > 0).toBe(true);
    });
  });
}
