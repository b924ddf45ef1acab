/**
 * Runs a model's program against stdin/stdout tests in child processes.
 *
 * Per test: a fresh empty working directory (under one temp directory per program, removed afterwards),
 * the program piped the test's `input` on stdin, its stdout compared with `output` after normalising line
 * ends to `\n`, trimming trailing whitespace on every line and dropping trailing empty lines.
 *
 * Limits, and how honest they are:
 *   - Wall time (default 6000 ms per test): enforced. The child runs in its own process group and the whole
 *     group is SIGKILLed at the deadline (verdict "timeout"). A CPU-time rlimit (wall limit + 1 s) is a
 *     backstop (SIGXCPU -> "timeout").
 *   - Memory (default 1024 MiB): Python - RLIMIT_AS set by a small runner script before the program starts
 *     (MemoryError -> "memory"); JavaScript - V8's `--max-old-space-size` (heap only: Buffers/ArrayBuffers
 *     outside the V8 heap are NOT limited; RLIMIT_AS is not usable for node, V8 reserves large virtual
 *     ranges). A process killed by SIGKILL that we did not send (the kernel OOM killer) also counts as
 *     "memory".
 *   - Output: at most `maxOutputBytes` (default 16 MiB) of stdout; beyond that the run is killed ("error").
 *   - Files: RLIMIT_FSIZE 16 MiB per file (Python runner / `prlimit` for node when present); for node the
 *     permission model also denies writes outside the test's directory.
 *   - Network: when `unshare -rn` works on the machine (probed once; it needs user namespaces), every run
 *     is wrapped in a new user+network namespace that has no interfaces but a down loopback, which is real
 *     isolation, also for subprocesses. Otherwise only best effort: Python's `socket` module is patched so
 *     `socket.socket`, `create_connection`, `getaddrinfo`... raise, and for node `net`/`tls`/`dgram`/`http(s)`/
 *     `dns`/`fetch` are patched by a `--require` preload; a determined program (`import _socket`, ctypes,
 *     spawning curl from Python) can get around that. `sandbox.networkNamespace` reports which applied.
 *   - Processes: node runs under `--experimental-permission` (no child_process, no worker_threads, no
 *     native addons, writes only in its directory). Python may spawn subprocesses (same limits inherited).
 *   - Environment: cleared to PATH, LANG/LC_ALL=C.UTF-8, HOME/TMPDIR = the test directory; Python runs with
 *     `-I -B -X utf8` (isolated: ignores PYTHON* variables and the user site directory).
 *   This is a harness for model-written code in an evaluation, not a security boundary against an
 *   adversary: there is no seccomp filter, no chroot, and reads of the file system are allowed.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.js";
import { extractProgram, type CodeLanguage, type ExtractedProgram } from "./extract.js";

export type Verdict = "ok" | "wrong" | "timeout" | "error" | "memory";

export interface CodeTest {
  /** Fed on stdin. */
  input: string;
  /** Expected stdout. */
  output: string;
}

export interface CodeRunOptions {
  /** Wall-time limit per test. Default 6000 ms. */
  timeoutMs?: number;
  /** Memory limit. Default 1024 MiB. */
  memoryMb?: number;
  /** Stdout cap per test. Default 16 MiB. */
  maxOutputBytes?: number;
  /** Tests run at once. Default 1 (timing-sensitive programs; this machine class has 2 cores). */
  concurrency?: number;
  /** Default "python3" (resolved once to the real interpreter, so pyenv shims work with a cleared env). */
  pythonBin?: string;
  /** Default: the node running this process. */
  nodeBin?: string;
  /** "auto" (default): network namespace when available; "off": never wrap with unshare. */
  networkNamespace?: "auto" | "off";
}

export interface TestOutcome {
  verdict: Verdict;
  ms: number;
  exitCode: number | null;
  signal: string | null;
  /** Last 2000 characters of stderr (for "error"/"memory" diagnosis). */
  stderrTail: string;
}

export interface SandboxInfo {
  networkNamespace: boolean;
  memoryLimit: "rlimit-as" | "v8-heap";
  nodePermissionModel: boolean;
}

export interface CodeRunResult {
  passed: number;
  total: number;
  verdicts: Verdict[];
  language: CodeLanguage;
  outcomes: TestOutcome[];
  sandbox: SandboxInfo;
}

const FSIZE_BYTES = 16 * 1024 * 1024;

const PY_RUNNER = `import sys
def _sandbox():
    import resource
    mem, cpu, fsize = (int(x) for x in sys.argv[1:4])
    def lim(r, soft, hard):
        try:
            _, cur_hard = resource.getrlimit(r)
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
                soft = min(soft, hard)
            resource.setrlimit(r, (soft, hard))
        except Exception:
            pass
    if mem > 0:
        lim(resource.RLIMIT_AS, mem, mem)
    lim(resource.RLIMIT_CPU, cpu, cpu + 1)
    lim(resource.RLIMIT_FSIZE, fsize, fsize)
    lim(resource.RLIMIT_CORE, 0, 0)
    import socket
    def deny(*a, **k):
        raise OSError(101, "network access is disabled in this sandbox")
    class NoSocket(socket.socket):
        def __init__(self, *a, **k):
            deny()
    socket.socket = NoSocket
    socket.SocketType = NoSocket
    for name in ("create_connection", "create_server", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
                 "gethostbyaddr", "socketpair", "fromfd"):
        if hasattr(socket, name):
            setattr(socket, name, deny)
    sys.argv = [sys.argv[4]]
_sandbox()
del _sandbox
import runpy
runpy.run_path(sys.argv[0], run_name="__main__")
`;

const JS_PRELOAD = `'use strict';
const deny = () => { const e = new Error('network access is disabled in this sandbox'); e.code = 'ENETUNREACH'; throw e; };
const net = require('net');
net.connect = deny; net.createConnection = deny; net.Socket.prototype.connect = deny;
require('tls').connect = deny;
require('dgram').createSocket = deny;
for (const m of ['http', 'https', 'http2']) { const mod = require(m); mod.request = deny; mod.get = deny; if (mod.connect) mod.connect = deny; }
const dns = require('dns');
for (const k of ['lookup', 'resolve', 'resolve4', 'resolve6', 'resolveAny']) { dns[k] = deny; if (dns.promises) dns.promises[k] = () => Promise.reject(new Error('network access is disabled in this sandbox')); }
globalThis.fetch = () => Promise.reject(new Error('network access is disabled in this sandbox'));
`;

let unshareProbe: boolean | null = null;
let prlimitProbe: boolean | null = null;
const permissionProbe = new Map<string, boolean>();
const pythonResolved = new Map<string, string>();

/** Can this machine give a process its own (empty) network namespace? Probed once. */
export function networkNamespaceAvailable(): boolean {
  if (unshareProbe === null) {
    const r = spawnSync("unshare", ["-rn", "true"], { stdio: "ignore", timeout: 5000 });
    unshareProbe = r.status === 0;
  }
  return unshareProbe;
}

function prlimitAvailable(): boolean {
  if (prlimitProbe === null) {
    const r = spawnSync("prlimit", ["--version"], { stdio: "ignore", timeout: 5000 });
    prlimitProbe = r.status === 0;
  }
  return prlimitProbe;
}

function nodePermissionAvailable(nodeBin: string): boolean {
  let ok = permissionProbe.get(nodeBin);
  if (ok === undefined) {
    const r = spawnSync(nodeBin, ["--experimental-permission", "--allow-fs-read=*", "--no-warnings", "-e", "0"], {
      stdio: "ignore",
      timeout: 10_000,
    });
    ok = r.status === 0;
    permissionProbe.set(nodeBin, ok);
  }
  return ok;
}

function resolvePython(bin: string): string {
  let p = pythonResolved.get(bin);
  if (!p) {
    const r = spawnSync(bin, ["-c", "import sys; print(sys.executable)"], { encoding: "utf8", timeout: 20_000 });
    const exe = r.status === 0 ? r.stdout.trim() : "";
    if (!exe) throw new UserError(`cannot run Python (${bin}): ${r.error?.message ?? r.stderr?.trim() ?? "no output"}`);
    p = exe;
    pythonResolved.set(bin, p);
  }
  return p;
}

/** Outputs equal after `\r\n` -> `\n`, trailing whitespace trimmed per line, trailing empty lines dropped. */
export function outputsMatch(actual: string, expected: string): boolean {
  const canon = (s: string) =>
    s
      .replace(/\r\n?/g, "\n")
      .split("\n")
      .map((l) => l.trimEnd())
      .join("\n")
      .replace(/\n+$/, "");
  return canon(actual) === canon(expected);
}

interface Prepared {
  dir: string;
  command: string;
  args: string[];
  language: CodeLanguage;
  sandbox: SandboxInfo;
}

async function prepare(
  program: ExtractedProgram,
  o: Required<Omit<CodeRunOptions, "pythonBin" | "nodeBin">> & { pythonBin: string; nodeBin: string },
): Promise<Prepared> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "memento-code-"));
  const netns = o.networkNamespace === "auto" && networkNamespaceAvailable();
  const memBytes = Math.round(o.memoryMb * 1024 * 1024);
  const cpuSec = Math.ceil(o.timeoutMs / 1000) + 1;
  let command: string;
  let args: string[];
  let perm = false;
  if (program.language === "python") {
    const py = resolvePython(o.pythonBin);
    await writeFile(path.join(dir, "solution.py"), program.code);
    await writeFile(path.join(dir, "_sandbox_runner.py"), PY_RUNNER);
    command = py;
    args = [
      "-I",
      "-B",
      "-X",
      "utf8",
      path.join(dir, "_sandbox_runner.py"),
      String(memBytes),
      String(cpuSec),
      String(FSIZE_BYTES),
      path.join(dir, "solution.py"),
    ];
  } else {
    const isModule = /^\s*(?:import\s[^(]|import\{|export\s)/m.test(program.code);
    const file = path.join(dir, isModule ? "solution.mjs" : "solution.cjs");
    await writeFile(file, program.code);
    await writeFile(path.join(dir, "_sandbox_preload.cjs"), JS_PRELOAD);
    perm = nodePermissionAvailable(o.nodeBin);
    const nodeArgs = [`--max-old-space-size=${Math.max(16, Math.round(o.memoryMb))}`, "--no-warnings"];
    if (perm) nodeArgs.push("--experimental-permission", "--allow-fs-read=*", `--allow-fs-write=${dir}${path.sep}*`);
    nodeArgs.push("--require", path.join(dir, "_sandbox_preload.cjs"), file);
    if (prlimitAvailable()) {
      command = "prlimit";
      args = [`--cpu=${cpuSec}:${cpuSec + 1}`, `--fsize=${FSIZE_BYTES}`, "--core=0", "--", o.nodeBin, ...nodeArgs];
    } else {
      command = o.nodeBin;
      args = nodeArgs;
    }
  }
  if (netns) {
    args = ["-rn", "--", command, ...args];
    command = "unshare";
  }
  return {
    dir,
    command,
    args,
    language: program.language,
    sandbox: {
      networkNamespace: netns,
      memoryLimit: program.language === "python" ? "rlimit-as" : "v8-heap",
      nodePermissionModel: perm,
    },
  };
}

const MEMORY_PATTERNS =
  /MemoryError|heap out of memory|Allocation failed|Cannot allocate memory|std::bad_alloc|out of memory/i;

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

async function runOne(
  p: Prepared,
  index: number,
  test: CodeTest,
  o: { timeoutMs: number; maxOutputBytes: number },
): Promise<TestOutcome> {
  const cwd = path.join(p.dir, `t${index}`);
  await mkdir(cwd);
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    HOME: cwd,
    TMPDIR: cwd,
  };
  const started = performance.now();
  return new Promise<TestOutcome>((resolve) => {
    const child = spawn(p.command, p.args, { cwd, env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = "";
    let timedOut = false;
    let overflow = false;
    let killedByUs = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killedByUs = true;
      killGroup(child);
    }, o.timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      outBytes += d.length;
      if (outBytes > o.maxOutputBytes) {
        if (!overflow) {
          overflow = true;
          killedByUs = true;
          killGroup(child);
        }
        return;
      }
      out.push(d);
    });
    child.stderr!.on("data", (d: Buffer) => {
      err = (err + d.toString("utf8")).slice(-4000);
    });
    child.stdin!.on("error", () => {
      // the program exited without reading all its input: not an error of ours
    });
    child.stdin!.end(test.input);
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killGroup(child); // leftover grandchildren of the group
      const ms = Math.round(performance.now() - started);
      const stderrTail = (spawnError ? `${spawnError.message}\n` : "") + err.slice(-2000);
      let verdict: Verdict;
      if (timedOut) verdict = "timeout";
      else if (overflow || spawnError) verdict = "error";
      else if (MEMORY_PATTERNS.test(err) || (signal === "SIGKILL" && !killedByUs)) verdict = "memory";
      else if (signal === "SIGXCPU") verdict = "timeout";
      else if (code !== 0 || signal) verdict = "error";
      else verdict = outputsMatch(Buffer.concat(out).toString("utf8"), test.output) ? "ok" : "wrong";
      resolve({ verdict, ms, exitCode: code, signal, stderrTail });
    };
    child.on("error", (e) => finish(null, null, e));
    child.on("close", (code, signal) => finish(code, signal));
  });
}

/** Run `program` against every test; see the module comment for the limits. */
export async function runProgram(
  program: ExtractedProgram,
  tests: readonly CodeTest[],
  options: CodeRunOptions = {},
): Promise<CodeRunResult> {
  const o = {
    timeoutMs: options.timeoutMs ?? 6000,
    memoryMb: options.memoryMb ?? 1024,
    maxOutputBytes: options.maxOutputBytes ?? 16 * 1024 * 1024,
    concurrency: Math.max(1, options.concurrency ?? 1),
    pythonBin: options.pythonBin ?? "python3",
    nodeBin: options.nodeBin ?? process.execPath,
    networkNamespace: options.networkNamespace ?? "auto",
  };
  const p = await prepare(program, o);
  try {
    const outcomes = new Array<TestOutcome>(tests.length);
    let next = 0;
    const lane = async () => {
      while (next < tests.length) {
        const i = next++;
        outcomes[i] = await runOne(p, i, tests[i], o);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.concurrency, Math.max(1, tests.length)) }, lane));
    const verdicts = outcomes.map((x) => x.verdict);
    return {
      passed: verdicts.filter((v) => v === "ok").length,
      total: tests.length,
      verdicts,
      language: program.language,
      outcomes,
      sandbox: p.sandbox,
    };
  } finally {
    await rm(p.dir, { recursive: true, force: true });
  }
}

/** Extract the last ```python / ```js block of a response and run it; null program -> every test "error". */
export async function runResponseCode(
  response: string,
  tests: readonly CodeTest[],
  options: CodeRunOptions & { language?: CodeLanguage } = {},
): Promise<CodeRunResult & { program: ExtractedProgram | null }> {
  const program = extractProgram(response, { only: options.language, fallback: options.language });
  if (!program) {
    return {
      passed: 0,
      total: tests.length,
      verdicts: tests.map(() => "error" as const),
      language: options.language ?? "python",
      outcomes: tests.map(() => ({
        verdict: "error" as const,
        ms: 0,
        exitCode: null,
        signal: null,
        stderrTail: "no code block found",
      })),
      sandbox: {
        networkNamespace: false,
        memoryLimit: options.language === "javascript" ? "v8-heap" : "rlimit-as",
        nodePermissionModel: false,
      },
      program: null,
    };
  }
  return { ...(await runProgram(program, tests, options)), program };
}
