import { Command, CommanderError } from "commander";
import { isUserError } from "../errors.js";
import { ZodError } from "zod";
import { registerCommands } from "./commands.js";

/**
 * commander's own errors (unknown option or command, missing argument, ...) as one `memento: ...` line, like
 * every other user error: "error: " becomes "memento: " and a "(Did you mean ...?)" hint joins the same line.
 */
function oneLineCommanderError(message: string): string {
  return userErrorLine(message.trim().replace(/^error: /, ""));
}

/** `memento: MESSAGE` on one line (a message that spans lines is joined). */
function userErrorLine(message: string): string {
  return `memento: ${message.trim().replace(/\s*\n\s*/g, " ")}\n`;
}

/** Every command, nested ones included, reports errors in one line and throws instead of exiting. */
function configureErrors(cmd: Command): void {
  cmd.showHelpAfterError(false).exitOverride();
  cmd.configureOutput({ outputError: (message, write) => write(oneLineCommanderError(message)) });
  for (const sub of cmd.commands) configureErrors(sub);
}

/** Builds the `memento` program. Each command lives in its own file under src/cli and only parses options. */
export function buildProgram(): Command {
  const program = new Command("memento")
    .description(
      "MEMENTO: reasoning models that cut their thinking into blocks, summarise each, and evict it from the KV cache",
    )
    .version("0.1.0");
  registerCommands(program);
  configureErrors(program);
  return program;
}

/** Runs the CLI and returns the exit code: 0 ok, 2 user error (one line on stderr), 1 internal error. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // A verdict left by an earlier in-process run (tests, library users) must not become this one's.
  process.exitCode = undefined;
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
      process.stderr.write(userErrorLine(e.message));
      return 2;
    }
    if (e instanceof ZodError) {
      const issue = e.issues[0];
      const where = issue?.path.length ? issue.path.join(".") + ": " : "";
      process.stderr.write(userErrorLine(`invalid input: ${where}${issue?.message ?? e.message}`));
      return 2;
    }
    throw e;
  }
}
