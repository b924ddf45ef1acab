/**
 * Every user mistake on the command line is one `memento: ...` line on stderr and exit code 2, never a stack
 * trace: bad integers, numbers, choices and paths (src/cli/options.ts), commander's own errors (unknown option
 * or command, missing argument), a port in use, and output paths that cannot be written.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { repoRoot } from "./helpers/reference.js";
import { runInProcess as run } from "./helpers/cli.js";
import { tempDir } from "./helpers/tmp.js";

afterEach(() => vi.restoreAllMocks());

const tmp = tempDir("memento-cli-errors-");

const sample = join(repoRoot, "assets", "sample-response.txt");
const benchmark = join(repoRoot, "assets", "toy-benchmark.jsonl");
const aFile = join(tmp, "a-file.txt");
const aDir = join(tmp, "a-dir");
writeFileSync(aFile, "not a directory\n");
mkdirSync(aDir);

/** Runs the CLI and checks the user-error contract; returns stderr for further checks. */
async function expectUserError(args: string[], pattern: RegExp, input?: string): Promise<string> {
  const r = await run(args, input);
  expect(r.err, args.join(" ")).toMatch(/^memento: [^\n]+\n$/);
  expect(r.err, args.join(" ")).toMatch(pattern);
  expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
  return r.err;
}

describe("bad option values: one line naming the flag, exit 2", () => {
  it.each<[string, string[], RegExp]>([
    // integers
    [
      "toy generate --count",
      ["toy", "generate", "--count", "x"],
      /^memento: --count: expected a non-negative integer, got "x"/,
    ],
    [
      "toy generate --seed",
      ["toy", "generate", "--count", "1", "--seed", "1.5"],
      /--seed: expected a non-negative integer/,
    ],
    [
      "data split --min-tokens",
      ["data", "split", "--estimate", "--min-tokens", "x"],
      /--min-tokens: expected a non-negative/,
    ],
    ["data seed --min-chars", ["data", "seed", "--input", aFile, "--min-chars", "-3"], /--min-chars: expected/],
    [
      "data build --workers",
      ["data", "build", "-i", aFile, "-o", aDir, "--workers", "0"],
      /--workers: expected a positive/,
    ],
    [
      "data build --windows",
      ["data", "build", "-i", aFile, "-o", aDir, "--windows", "16,1"],
      /--windows: expected an integer >= 2/,
    ],
    [
      "bench tracker --tokens",
      ["bench", "tracker", "--tokens", "many"],
      /--tokens: expected a positive integer, got "many"/,
    ],
    ["bench data --traces", ["bench", "data", "--traces", "0"], /--traces: expected a positive integer/],
    [
      "bench engine --requests",
      ["bench", "engine", "--requests", "x"],
      /--requests: expected a positive integer, got "x"/,
    ],
    ["bench engine --layers", ["bench", "engine", "--layers", "0"], /--layers: expected a positive integer/],
    ["demo --problems", ["demo", "--json", "--problems", "0"], /--problems: expected a positive integer/],
    ["demo --width", ["demo", "--width", "wide"], /--width: expected a positive integer/],
    ["eval report --max-problems", ["eval", "report", aDir, "--max-problems", "-1"], /--max-problems: expected/],
    [
      "eval run --top-k",
      ["eval", "run", "-b", benchmark, "-e", "http://127.0.0.1:1/v1", "-m", "m", "--top-k", "-2"],
      /--top-k/,
    ],
    [
      "model add-tokens --seed",
      ["model", "add-tokens", aDir, join(tmp, "o1"), "--seed", "x"],
      /--seed: expected an integer from 0/,
    ],
    [
      "train toy --batch",
      ["train", "toy", "--batch", "0", "--out", join(tmp, "never")],
      /--batch: expected a positive integer/,
    ],
    [
      "train export --max-tokens",
      ["train", "export", "--input", aFile, "--output", join(tmp, "o.jsonl"), "--max-tokens", "0"],
      /--max-tokens/,
    ],
    [
      "view --port",
      ["view", sample, "--port", "70000", "--no-open"],
      /--port: expected an integer from 0 to 65535, got "70000"/,
    ],
    ["serve --port", ["serve", "--port", "x"], /--port: expected an integer from 0 to 65535, got "x"/],
    ["serve --max-running", ["serve", "--max-running", "0"], /--max-running: expected a positive integer/],
    ["serve --max-step-tokens", ["serve", "--max-step-tokens", "0"], /--max-step-tokens: expected a positive integer/],
    ["serve --gpu", ["serve", "--backend", "llamacpp", "--gpu", "cuda"], /--gpu: expected auto or off, got "cuda"/],
    ["serve --gpu reference", ["serve", "--gpu", "off"], /--gpu: only with --backend llamacpp/],
    ["bench engine --gpu", ["bench", "engine", "--gpu", "yes"], /--gpu: expected auto or off, got "yes"/],
    [
      "bench engine --max-step-tokens",
      ["bench", "engine", "--max-step-tokens", "0"],
      /--max-step-tokens: expected a positive integer/,
    ],
    // numbers
    [
      "train toy --lr",
      ["train", "toy", "--lr", "fast", "--out", join(tmp, "never")],
      /--lr: expected a positive number, got "fast"/,
    ],
    ["train toy --stage2-causal", ["train", "toy", "--stage2-causal", "1", "--out", join(tmp, "never")], /in \[0, 1\)/],
    [
      "train toy --stop-after-steps",
      ["train", "toy", "--stop-after-steps", "0", "--out", join(tmp, "never")],
      /--stop-after-steps: expected a positive integer/,
    ],
    ["train rl --lr", ["train", "rl", "--lr", "0", "--out", join(tmp, "never")], /--lr: expected a positive number/],
    ["train rl --group", ["train", "rl", "--group", "1", "--out", join(tmp, "never")], /--group/],
    [
      "train rl --start",
      ["train", "rl", "--start", join(tmp, "no-model"), "--out", join(tmp, "never")],
      /not a model directory/,
    ],
    ["train rl --advantage", ["train", "rl", "--advantage", "max", "--out", join(tmp, "never")], /--advantage/],
    ["rl compare --samples", ["rl", "compare", "--samples", "4"], /--samples must be 8/],
    [
      "rl rollouts --field",
      ["rl", "rollouts", "-b", benchmark, "-e", "http://127.0.0.1:1/v1", "-m", "m", "--field", "question"],
      /--field: expected KEY=NAME/,
    ],
    ["rl compare --rl", ["rl", "compare", "--rl", join(tmp, "no-model")], /--rl .* is not a model directory/],
    [
      "eval run --temperature",
      ["eval", "run", "-b", benchmark, "-e", "http://x/v1", "-m", "m", "--temperature", "-1"],
      /--temperature/,
    ],
    [
      "data build --timeout",
      ["data", "build", "-i", aFile, "-o", aDir, "--timeout", "0"],
      /--timeout: expected a positive number/,
    ],
    [
      "model add-tokens --std",
      ["model", "add-tokens", aDir, join(tmp, "o2"), "--std", "-1"],
      /--std: expected a non-negative number/,
    ],
    [
      "view --temperature",
      ["view", "http://127.0.0.1:1/v1", "--temperature", "hot"],
      /--temperature: expected a non-negative/,
    ],
    // choices
    [
      "data build --schema",
      ["data", "build", "-i", aFile, "-o", aDir, "--schema", "wide"],
      /--schema: expected full or default, got "wide"/,
    ],
    [
      "data build --provider",
      ["data", "build", "-i", aFile, "-o", aDir, "--provider", "x"],
      /--provider: expected openai or offline/,
    ],
    [
      "model export-gguf --dtype",
      ["model", "export-gguf", aDir, join(tmp, "m.gguf"), "--dtype", "Q4"],
      /--dtype: expected F32 or F16/,
    ],
    [
      "toy generate --split",
      ["toy", "generate", "--count", "1", "--split", "dev"],
      /--split: expected train or test, got "dev"/,
    ],
    ["serve --backend", ["serve", "--backend", "llama"], /--backend: expected reference or llamacpp, got "llama"/],
    // paths
    ["tokenize --tokenizer", ["tokenize", "--tokenizer", ""], /--tokenizer: expected a file or directory path, got ""/],
    ["data stats --html", ["data", "stats", aDir, "--html", " "], /--html: expected a file or directory path/],
  ])("%s", async (_name, args, pattern) => {
    await expectUserError(args, pattern);
  });
});

describe("commander's own errors are memento: one-liners with exit 2", () => {
  it.each<[string, string[], RegExp]>([
    ["unknown option", ["trace", "stats", sample, "--nope"], /^memento: unknown option '--nope'/],
    [
      "unknown option with a suggestion",
      ["trace", "stats", sample, "--jsn"],
      /unknown option '--jsn' \(Did you mean --json\?\)/,
    ],
    ["unknown command", ["nope"], /^memento: unknown command 'nope'/],
    ["unknown subcommand", ["data", "nope"], /^memento: unknown command 'nope'/],
    ["missing argument", ["trace", "stats"], /^memento: missing required argument 'file'/],
    ["missing option argument", ["toy", "generate", "--count"], /^memento: option '--count <n>' argument missing/],
    [
      "missing mandatory option",
      ["data", "build", "-i", aFile],
      /^memento: required option '-o, --output-dir <dir>' not specified/,
    ],
    ["too many arguments", ["kv", "arch", "qwen3-8b", "extra"], /^memento: too many arguments for 'arch'/],
  ])("%s", async (_name, args, pattern) => {
    await expectUserError(args, pattern);
  });
});

describe("output paths that cannot be written fail before any work", () => {
  const under = join(aFile, "sub");
  it.each<[string, string[], RegExp]>([
    [
      "data build --output-dir (a file)",
      ["data", "build", "-i", aFile, "--output-dir", aFile],
      /--output-dir must be a directory, but .* is a file/,
    ],
    [
      "data build --output-dir (under a file)",
      ["data", "build", "-i", aFile, "-o", under],
      /--output-dir .*sub cannot be created: .* is a file/,
    ],
    [
      "eval run -o (a file)",
      ["eval", "run", "-b", benchmark, "-e", "http://127.0.0.1:1/v1", "-m", "m", "-o", aFile],
      /--out must be a directory/,
    ],
    ["train toy --out (a file)", ["train", "toy", "--out", aFile], /--out must be a directory, but .* is a file/],
    [
      "model add-tokens OUT (a file)",
      ["model", "add-tokens", aDir, aFile],
      /OUT must be a directory, but .* is a file/,
    ],
    [
      "model export-gguf OUT (a directory)",
      ["model", "export-gguf", aDir, aDir],
      /OUT must be a file, but .* is a directory/,
    ],
    [
      "eval report -o (a directory)",
      ["eval", "report", aDir, "-o", aDir],
      /--out must be a file, but .* is a directory/,
    ],
    [
      "eval report -o (under a file)",
      ["eval", "report", aDir, "-o", join(under, "r.html")],
      /--out .* cannot be created: .* is a file/,
    ],
    [
      "toy generate --output (a directory)",
      ["toy", "generate", "--count", "1", "--output", aDir],
      /--output must be a file/,
    ],
    [
      "train export --output (a directory)",
      ["train", "export", "--input", aFile, "--output", aDir, "--toy-tokenizer"],
      /--output must be a file/,
    ],
    [
      "data seed --output (under a file)",
      ["data", "seed", "--input", aFile, "--output", join(under, "s.jsonl")],
      /--output .* cannot be created/,
    ],
    [
      "data stats --html (a directory)",
      ["data", "stats", aDir, "--html", aDir],
      /--html must be a file, but .* is a directory/,
    ],
  ])("%s", async (_name, args, pattern) => {
    await expectUserError(args, pattern);
  });
});

describe("a port in use", () => {
  let blocker: Server;
  let port: number;
  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    port = (blocker.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

  it("memento serve: one line naming the host and port", async () => {
    const err = await expectUserError(
      ["serve", "--port", String(port)],
      /port \d+ on 127\.0\.0\.1 is in use \(EADDRINUSE\)/,
    );
    expect(err).toContain(`port ${port} `);
  });

  it("memento view: one line too", async () => {
    const err = await expectUserError(["view", sample, "--port", String(port), "--no-open"], /port \d+ .*in use/);
    expect(err).toContain(`port ${port} `);
  });
});
