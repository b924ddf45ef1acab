import type { Command } from "commander";

/**
 * The command table. One file per command (or command group); each exports a `register(program)` that
 * parses options and calls the library. Add new commands here.
 */
export function registerCommands(program: Command): void {
  void program;
}
