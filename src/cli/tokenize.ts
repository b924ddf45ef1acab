import type { Command } from "commander";
import { UserError } from "../errors.js";
import { encodeChat, validateMessages } from "../format/chat.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { parseJson, readStdin } from "./io.js";
import { pathOption } from "./options.js";

interface TokenizeOptions {
  tokenizer?: string;
  ids?: boolean;
  count?: boolean;
  chat?: boolean;
}

/** What `memento tokenize` prints for one input (exported for tests). */
export function tokenizeOutput(input: string, opts: TokenizeOptions): string {
  const tok = loadTokenizer(opts.tokenizer);
  let ids: number[];
  let promptLength: number | undefined;
  if (opts.chat) {
    let parsed: unknown;
    try {
      parsed = parseJson(input, "stdin");
    } catch (e) {
      // JSON.parse quotes the offending input, which may span lines; the CLI prints errors as one line.
      if (e instanceof UserError) throw new UserError(e.message.replace(/\s+/g, " "));
      throw e;
    }
    const messages = validateMessages(parsed, "stdin");
    const r = encodeChat(messages, { tokenizer: tok });
    ids = r.ids;
    promptLength = r.promptLength;
  } else {
    ids = tok.encode(input);
  }
  if (opts.count) return String(ids.length);
  if (opts.ids) return JSON.stringify(ids);
  return JSON.stringify(
    promptLength === undefined ? { count: ids.length, ids } : { count: ids.length, promptLength, ids },
  );
}

export function register(program: Command): void {
  program
    .command("tokenize")
    .description(
      "tokenise stdin with the Memento tokenizer (Qwen3 + the four block/summary markers); prints JSON {count, ids}",
    )
    .addOption(
      pathOption(
        "--tokenizer <dir>",
        "directory with tokenizer.json and tokenizer_config.json (default: the bundled Qwen3 tokenizer)",
      ),
    )
    .option("--ids", "print only the JSON array of ids")
    .option("--count", "print only the number of tokens")
    .option(
      "--chat",
      "stdin is a JSON array of {role, content} messages: drop system messages, render with the Memento Qwen3 chat template " +
        "(generation prompt unless the last message is the assistant's) and add promptLength to the output",
    )
    .action(async (opts: TokenizeOptions) => {
      const input = await readStdin();
      process.stdout.write(tokenizeOutput(input, opts) + "\n");
    });
}
