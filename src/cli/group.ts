import type { Command } from "commander";

/**
 * The `name` command group of `program`: the one another file already created, else a new one, so that every
 * subcommand of a group shares it whatever the registration order. It throws instead of exiting, like every
 * command once `buildProgram` has configured them.
 */
export function commandGroup(program: Command, name: string, description: string): Command {
  const existing = program.commands.find((c) => c.name() === name);
  if (existing) return existing;
  return program.command(name).description(description).exitOverride();
}
