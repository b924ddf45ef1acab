import { UserError } from "../errors.js";

/** Reads all of standard input as UTF-8. */
export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UserError("expected input on stdin (pipe a file in, e.g. `< input.json`)");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Parses JSON, turning a syntax error into a one-line user error naming the source. */
export function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    // JSON.parse may quote the bad input, newlines included: keep the error on one line.
    throw new UserError(`${source}: invalid JSON (${(e as Error).message.replace(/\s+/g, " ")})`);
  }
}

/** Writes one JSON value and a newline to stdout. */
export function writeJson(value: unknown, pretty = false): void {
  process.stdout.write(JSON.stringify(value, null, pretty ? 2 : undefined) + "\n");
}

/** Waits for Ctrl-C (SIGINT) or SIGTERM, then for `close()`: how a long-running command such as serve ends. */
export function closeOnInterrupt(close: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolveStop) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      void close().then(() => resolveStop());
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
