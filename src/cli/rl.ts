/**
 * The `rl` command group: the pieces of reinforcement learning that run past one machine (rollouts from any
 * OpenAI-compatible endpoint into records a GPU trainer consumes). Each subcommand lives in its own file and is
 * added here; commands.ts registers the group once.
 */
import type { Command } from "commander";
import { commandGroup } from "./group.js";
import { registerRollouts } from "./rl-rollouts.js";

/** The `rl` group of `program` (created once, shared by its subcommands). */
export function rlCommand(program: Command): Command {
  return commandGroup(program, "rl", "reinforcement learning: rollouts with log-probabilities, rewards and masks");
}

export function register(program: Command): void {
  const rl = rlCommand(program);
  registerRollouts(rl);
}
