import { Command, CommanderError } from "commander";
import { isUserError } from "../errors.js";
import { ZodError } from "zod";
import { registerCommands } from "./commands.js";

/** Builds the `memento` program. Each command lives in its own file under src/cli and only parses options. */
export function buildProgram(): Command {
  const program = new Command("memento")
    .description("MEMENTO: reasoning models that cut their thinking into blocks, summarise each, and evict it from the KV cache")
    .version("0.1.0")
    .showHelpAfterError(false)
    .exitOverride();
  registerCommands(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI and returns the exit code: 0 ok, 2 user error (one line on stderr), 1 internal error. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    // A command reports a negative verdict (e.g. an invalid trace) by setting process.exitCode.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit through here with code 0; commander already printed its message.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (isUserError(e)) {
      process.stderr.write(`memento: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ZodError) {
      const issue = e.issues[0];
      const where = issue && issue.path.length ? issue.path.join(".") + ": " : "";
      process.stderr.write(`memento: invalid input: ${where}${issue?.message ?? e.message}\n`);
      return 2;
    }
    throw e;
  }
}
