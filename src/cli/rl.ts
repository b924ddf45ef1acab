/**
 * The `rl` command group: rollouts from any OpenAI-compatible endpoint into records a GPU trainer consumes, and
 * the comparison of a start checkpoint with its RL model (`memento train rl` trains one). Each subcommand lives in its own file and is
 * added here; commands.ts registers the group once.
 */
import type { Command } from "commander";
import { commandGroup } from "./group.js";
import { registerRollouts } from "./rl-rollouts.js";
import { registerCompare } from "./rl-compare.js";

/** The `rl` group of `program` (created once, shared by its subcommands). */
export function rlCommand(program: Command): Command {
  return commandGroup(program, "rl", "reinforcement learning: rollouts with log-probabilities, rewards and masks");
}

export function register(program: Command): void {
  const rl = rlCommand(program);
  registerRollouts(rl);
  registerCompare(rl);
}
