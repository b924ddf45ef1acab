/**
 * `memento view SOURCE`: parses the options, decides the architecture and tokenizer (a flag, else what the run
 * directory recorded, else the defaults: viewer-run.ts), starts the viewer and serves until Ctrl-C.
 */
import type { Command } from "commander";
import { spawn } from "node:child_process";
import { UserError } from "../errors.js";
import { startViewer, type ViewerSource } from "../report/viewer.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { DEFAULT_VIEW_ARCHITECTURE, resolveViewerSetup } from "../report/viewer-run.js";
import { closeOnInterrupt, parseJson } from "./io.js";
import { readTextFile } from "../io/files.js";
import { listenError } from "./listen-errors.js";
import { addMaskingOptions, maskingFromOptions } from "./masking-options.js";
import { integerOption, numberOption, pathOption } from "./options.js";

/** The options besides the masking flags (read by maskingFromOptions). */
interface Options {
  port: number;
  host: string;
  open: boolean;
  model?: string;
  prompt?: string;
  promptFile?: string;
  apiKey?: string;
  maxTokens?: number;
  temperature?: number;
  extraBody?: string;
  architecture?: string;
  tokenizer?: string;
}

/** Opens `url` in the user's browser; failures are ignored (the URL is printed anyway). */
function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === "darwin"
      ? ["open", [url]]
      : process.platform === "win32"
        ? ["cmd", ["/c", "start", "", url]]
        : ["xdg-open", [url]];
  try {
    const child = spawn(cmd, args, { stdio: "ignore", detached: true });
    child.on("error", () => {});
    child.unref();
  } catch {
    // no browser opener: the printed URL is enough
  }
}

export function register(program: Command): void {
  const view = program
    .command("view")
    .description(
      "serve a local page that shows a Memento response as collapsible blocks with their mementos, token counts and the KV " +
        "trajectory (memento vs full attention); SOURCE is a response file (text, JSONL, segments JSON, a run's generations.jsonl " +
        "or run directory) or the URL of an OpenAI-compatible endpoint to follow one streaming completion live (--prompt)",
    )
    .argument("<source>", "FILE, run directory, or endpoint URL (e.g. http://127.0.0.1:8080/v1)")
    .addOption(integerOption("-p, --port <n>", "port (0 = a free one)", { min: 0, max: 65535 }).default(0))
    .option("--host <addr>", "address to listen on", "127.0.0.1")
    .option("--no-open", "do not open a browser")
    .option("-m, --model <name>", "live: model name (default: the first of GET /models)")
    .option("--prompt <text>", "live: the user prompt")
    .addOption(pathOption("--prompt-file <file>", "live: read the user prompt from a file"))
    .option("--api-key <key>", "live: API key (default: $OPENAI_API_KEY)")
    .addOption(integerOption("--max-tokens <n>", "live: max_tokens", { min: 1 }))
    .addOption(numberOption("--temperature <t>", "live: temperature (default: the server's)", { min: 0 }))
    .option("--extra-body <json>", "live: extra request fields as JSON (sampling, block-masking settings)")
    .option(
      "-a, --architecture <name|config.json>",
      `architecture for KV bytes (default: the one a run directory's run.json records, else ${DEFAULT_VIEW_ARCHITECTURE})`,
    )
    .addOption(
      pathOption(
        "-t, --tokenizer <dir>",
        "Hugging Face tokenizer directory (default: the run's recorded tokenizer, or the one beside its recorded " +
          "config.json, else Qwen3)",
      ),
    );
  addMaskingOptions(view).action(async (sourceArg: string, opts: Options) => {
    const masking = maskingFromOptions(opts);
    let source: ViewerSource;
    if (/^https?:\/\//i.test(sourceArg)) {
      const prompt = opts.promptFile !== undefined ? readTextFile(opts.promptFile) : opts.prompt;
      if (prompt === undefined || prompt.trim() === "")
        throw new UserError("following an endpoint live needs --prompt TEXT or --prompt-file FILE");
      const body: Record<string, unknown> = {};
      if (opts.extraBody !== undefined) {
        const extra = parseJson(opts.extraBody, "--extra-body");
        if (typeof extra !== "object" || extra === null || Array.isArray(extra))
          throw new UserError("--extra-body must be a JSON object");
        Object.assign(body, extra);
      }
      if (opts.maxTokens !== undefined) body.max_tokens = opts.maxTokens;
      if (opts.temperature !== undefined) body.temperature = opts.temperature;
      source = {
        kind: "live",
        endpoint: sourceArg,
        model: opts.model,
        prompt,
        apiKey: opts.apiKey ?? process.env.OPENAI_API_KEY,
        body,
      };
    } else {
      if (opts.prompt !== undefined || opts.promptFile !== undefined)
        throw new UserError("--prompt is for following an endpoint URL live, not for a file");
      source = { kind: "file", path: sourceArg };
    }
    const setup = resolveViewerSetup(source.kind === "file" ? source.path : null, opts);
    const tokenizer = loadTokenizer(setup.tokenizerDir.value);
    const architecture = setup.architecture.value;
    const viewerOptions = {
      source,
      tokenizer,
      architecture,
      masking,
      port: opts.port,
      host: opts.host,
      setup: {
        architecture: { origin: setup.architecture.origin, why: setup.architecture.why },
        tokenizer: { origin: setup.tokenizerDir.origin, why: setup.tokenizerDir.why },
      },
    };
    const viewer = await startViewer(viewerOptions).catch((e: unknown) => {
      throw listenError(e, opts.host, opts.port);
    });
    const what =
      viewer.mode === "live"
        ? `following ${sourceArg} live`
        : `${viewer.items.length} response${viewer.items.length === 1 ? "" : "s"}`;
    process.stdout.write(`memento view: ${what} at ${viewer.url}  (Ctrl-C to stop)\n`);
    process.stdout.write(
      `memento view: KV bytes for ${architecture.name} (${setup.architecture.why}); tokenizer: ${setup.tokenizerDir.why}\n`,
    );
    if (opts.open) openBrowser(viewer.url);
    await closeOnInterrupt(() => viewer.close());
  });
}
