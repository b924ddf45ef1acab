/**
 * `rl compare` on the bundled pair (models/toy-rl-start and models/toy-rl, the default `train rl` run's model):
 * both sides see the same problems, sampling and seeds, the object has the shape, and the masked peak KV
 * sits far below what full attention would hold for the same responses. Two problems only: the README's
 * numbers come from `npx memento rl compare --json` (50 x 8); this checks the plumbing and the bundled files.
 */
import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BUNDLED_RL_MODEL_DIR, BUNDLED_RL_START_DIR } from "../src/rl/bundled.js";
import { compareRl, DEFAULT_COMPARE } from "../src/rl/compare.js";
import { DEFAULT_RL_OPTIONS } from "../src/rl/train-rl.js";
import { runCli } from "./helpers/cli.js";

describe("rl compare on the bundled models", () => {
  it("the start and the RL model exist and load", () => {
    for (const dir of [BUNDLED_RL_START_DIR, BUNDLED_RL_MODEL_DIR]) {
      expect(existsSync(join(dir, "config.json")), dir).toBe(true);
      expect(existsSync(join(dir, "model.safetensors")), dir).toBe(true);
    }
  });

  it("prints one object of the issue's shape; peak KV at most half of full attention's", async () => {
    const r = await compareRl({
      ...DEFAULT_COMPARE,
      startDir: BUNDLED_RL_START_DIR,
      rlDir: BUNDLED_RL_MODEL_DIR,
      problems: 2,
      masking: DEFAULT_RL_OPTIONS.masking,
      workers: 1,
    });
    expect(r.problems).toBe(2);
    expect(r.samples).toBe(8);
    for (const side of [r.start, r.rl]) {
      expect(side.passAt1).toBeGreaterThanOrEqual(0);
      expect(side.passAt1).toBeLessThanOrEqual(1);
      expect(side.ci95[0]).toBeLessThanOrEqual(side.passAt1);
      expect(side.majAt8).not.toBeNull();
      // Toy blocks are 59 tokens; held-out problems have 4-9 rounds.
      expect(side.meanBlockTokens).toBeGreaterThan(50);
      expect(side.blocksPerResponse).toBeGreaterThanOrEqual(3);
    }
    expect(r.rl.peakKvTokens).toBeLessThanOrEqual(r.fullAttentionPeakKvTokens / 2);
  }, 180_000);

  it("the CLI with fewer problems than worker threads (a worker dealt nothing) prints its object, exit 0", () => {
    // Needs the built CLI (npm test builds first): worker threads run the compiled rl-worker.js.
    const r = runCli(["rl", "compare", "--problems", "1", "--workers", "2", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { problems: number }).problems).toBe(1);
  }, 180_000);
});
