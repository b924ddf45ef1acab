/**
 * `memento bench soak`: starts a server on 127.0.0.1 with a free port, soaks it (src/bench/soak.ts), prints the
 * report and stops the server.
 *
 * 1. The server is a child `memento serve` by default: a crash shows as the process ending, and the RSS the soak
 *    judges is the server's alone. `--server in-process` serves from this process instead (tests; no build of
 *    dist/ needed), where RSS includes the clients.
 * 2. The server's KV budget, max running and max waiting default to the soak's (DEFAULT_SOAK_*: small, so requests
 *    contend, get preempted and meet a full queue), not to `memento serve`'s.
 * 3. Exit 1 when the soak fails (leak, crash, unexpected answer, RSS growing); 2 for a user mistake.
 */
import type { Command } from "commander";
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_SOAK_CONCURRENCY,
  DEFAULT_SOAK_DURATION_S,
  DEFAULT_SOAK_KV_BUDGET_TOKENS,
  DEFAULT_SOAK_MAX_RUNNING,
  DEFAULT_SOAK_MAX_WAITING,
  DEFAULT_SOAK_SAMPLE_MS,
  DEFAULT_SOAK_SEED,
  QUICK_SOAK_CONCURRENCY,
  QUICK_SOAK_DURATION_S,
  QUICK_SOAK_SAMPLE_MS,
  formatSoakReport,
  runSoak,
  type SoakTarget,
} from "../bench/soak.js";
import { BACKENDS, type BackendName } from "../engine/index.js";
import { UserError } from "../errors.js";
import { commandGroup } from "./group.js";
import { writeJson } from "./io.js";
import { choiceOption, integerOption, pathOption } from "./options.js";
import { runServe } from "./serve.js";

const SERVER_MODES = ["child", "in-process"] as const;
type ServerMode = (typeof SERVER_MODES)[number];

/** How long a child server may take to print its address (a llama.cpp GGUF export included). */
const CHILD_START_TIMEOUT_MS = 120_000;
/** How long a child server may take to stop after SIGTERM before it is killed. */
const CHILD_STOP_TIMEOUT_MS = 10_000;
/** Characters of the child's stderr kept for a crash report (its tail). */
const STDERR_TAIL_CHARS = 2000;

interface SoakCliOptions {
  duration?: number;
  maxRequests?: number;
  concurrency?: number;
  seed: number;
  quick?: boolean;
  server: ServerMode;
  backend: BackendName;
  model?: string;
  kvBudget: number;
  maxRunning: number;
  maxWaiting: number;
  json?: boolean;
}

interface StartedTarget extends SoakTarget {
  close(): Promise<void>;
}

/** `memento serve` flags for the soak server (one list for both server modes). */
function serveFlags(o: SoakCliOptions): string[] {
  return [
    ...["--host", "127.0.0.1", "--port", "0", "--backend", o.backend],
    ...["--kv-budget", String(o.kvBudget), "--max-running", String(o.maxRunning)],
    ...["--max-waiting", String(o.maxWaiting)],
    ...(o.model !== undefined ? ["--model", o.model] : []),
  ];
}

async function startInProcess(o: SoakCliOptions): Promise<StartedTarget> {
  const s = await runServe({
    host: "127.0.0.1",
    port: "0",
    backend: o.backend,
    model: o.model,
    kvBudget: String(o.kvBudget),
    maxRunning: String(o.maxRunning),
    maxWaiting: String(o.maxWaiting),
  });
  return { url: s.url, model: s.model, close: () => s.close() };
}

/** Why a child is gone, or undefined while it runs. */
function childExit(child: ChildProcess, stderr: () => string): string | undefined {
  if (child.exitCode === null && child.signalCode === null) return undefined;
  const how = child.signalCode ?? `code ${child.exitCode}`;
  return `the server process exited (${how}): ${stderr().trim().split("\n").slice(-3).join(" | ")}`;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), CHILD_STOP_TIMEOUT_MS);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Spawns `memento serve` (this package's bin) and waits for the address it prints. */
async function startChild(o: SoakCliOptions): Promise<StartedTarget> {
  const bin = fileURLToPath(new URL("../../bin/memento.js", import.meta.url));
  const child = spawn(process.execPath, [bin, "serve", ...serveFlags(o)], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr = (stderr + d).slice(-STDERR_TAIL_CHARS);
  });
  const tail = () => stderr;
  const started = await new Promise<{ url: string; model: string }>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error("the server did not start in time")), CHILD_START_TIMEOUT_MS);
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      const m = /model (\S+) at (http:\/\/\S+)\/v1 on/.exec(stdout);
      if (!m) return;
      clearTimeout(timer);
      resolve({ model: m[1], url: m[2] });
    });
    child.once("exit", () => {
      clearTimeout(timer);
      // `memento: ...` is the child's own user error (a bad --model, say): the same mistake here.
      const userLine = /^memento: (.*)$/m.exec(stderr);
      reject(userLine ? new UserError(userLine[1]) : new Error(childExit(child, tail)));
    });
  }).catch(async (e: unknown) => {
    await stopChild(child);
    throw e;
  });
  child.stdout?.resume();
  return { ...started, exitReason: () => childExit(child, tail), close: () => stopChild(child) };
}

async function soak(o: SoakCliOptions): Promise<void> {
  if (o.quick && o.duration !== undefined) throw new UserError("--quick and --duration exclude each other");
  const target = o.server === "child" ? await startChild(o) : await startInProcess(o);
  try {
    const report = await runSoak(target, {
      durationS: o.duration ?? (o.quick ? QUICK_SOAK_DURATION_S : DEFAULT_SOAK_DURATION_S),
      maxRequests: o.maxRequests,
      concurrency: o.concurrency ?? (o.quick ? QUICK_SOAK_CONCURRENCY : DEFAULT_SOAK_CONCURRENCY),
      seed: o.seed,
      sampleMs: o.quick ? QUICK_SOAK_SAMPLE_MS : DEFAULT_SOAK_SAMPLE_MS,
      onProgress: (line) => process.stderr.write(`${line}\n`), // stderr: stdout stays one JSON object
    });
    if (o.json) writeJson({ server: o.server, backend: o.backend, ...report }, true);
    else process.stdout.write(formatSoakReport(report));
    if (!report.pass) process.exitCode = 1;
  } finally {
    await target.close();
  }
}

/** `memento bench soak`, added to the `bench` group. */
export function register(program: Command): void {
  commandGroup(program, "bench", "benchmarks")
    .command("soak")
    .description(
      "soak test of `memento serve` on 127.0.0.1 (bounded in time and count): concurrent clients send chat and " +
        "completions (streaming or not), abort some midway, and mix in malformed JSON, bad parameters and " +
        "oversized prompts and bodies; reports requests served, outcomes by kind, p50/p99 latency, that KV in " +
        "use returns to 0 and whether RSS stays flat. Exit 1 on any leak, crash or unexpected answer",
    )
    .addOption(integerOption("--duration <s>", `seconds of load (default ${DEFAULT_SOAK_DURATION_S})`, { min: 1 }))
    .addOption(integerOption("--max-requests <n>", "stop after this many requests (default: no limit)", { min: 1 }))
    .addOption(
      integerOption("--concurrency <n>", `clients sending at once (default ${DEFAULT_SOAK_CONCURRENCY})`, { min: 1 }),
    )
    .addOption(integerOption("--seed <n>", "seed of the request mix", { min: 0 }).default(DEFAULT_SOAK_SEED))
    .option("--quick", `${QUICK_SOAK_DURATION_S} s with ${QUICK_SOAK_CONCURRENCY} clients (RSS reported, not judged)`)
    .addOption(
      choiceOption(
        "--server <mode>",
        "child: a `memento serve` process (needs the build); in-process: served from this process",
        SERVER_MODES,
      ).default("child"),
    )
    .addOption(choiceOption("--backend <name>", "the server's inference backend", BACKENDS).default("reference"))
    .addOption(pathOption("--model <dir>", "the server's model directory (default: the bundled toy model)"))
    .addOption(
      integerOption("--kv-budget <tokens>", "the server's KV cells", { min: 1 }).default(DEFAULT_SOAK_KV_BUDGET_TOKENS),
    )
    .addOption(
      integerOption("--max-running <n>", "the server's most requests decoded together", { min: 1 }).default(
        DEFAULT_SOAK_MAX_RUNNING,
      ),
    )
    .addOption(
      integerOption("--max-waiting <n>", "the server's queue; more get 429", { min: 0 }).default(
        DEFAULT_SOAK_MAX_WAITING,
      ),
    )
    .option("--json", "print one JSON object")
    .action((o: SoakCliOptions) => soak(o));
}
