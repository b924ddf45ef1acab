import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "./reference.js";

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (`npm test` builds first) as a user would, with optional stdin. */
export function runCli(args: string[], input?: string): CliResult {
  const r = spawnSync(process.execPath, [join(repoRoot, "bin", "memento.js"), ...args], {
    input: input ?? "",
    encoding: "utf8",
    cwd: repoRoot,
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Like runCli, without blocking the event loop: needed when the test process itself serves the CLI
 * (e.g. the fake OpenAI server), which spawnSync would starve.
 */
export function runCliAsync(args: string[], input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, "bin", "memento.js"), ...args], { cwd: repoRoot });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/**
 * Runs the CLI in this process (fast: no Node start-up, and sources need no build), with `input` on stdin when
 * given; returns the exit code and what was written to stdout and stderr.
 */
export async function runInProcess(
  args: string[],
  input?: string,
): Promise<{ code: number; out: string; err: string }> {
  const { vi } = await import("vitest");
  const { Readable } = await import("node:stream");
  const { main } = await import("../../src/cli/main.js");
  const original = Object.getOwnPropertyDescriptor(process, "stdin")!;
  if (input !== undefined) {
    Object.defineProperty(process, "stdin", {
      value: Object.assign(Readable.from([Buffer.from(input)]), { isTTY: false }),
      configurable: true,
    });
  }
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
    out += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => {
    err += String(s);
    return true;
  });
  try {
    const code = await main(["node", "memento", ...args]);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
    if (input !== undefined) Object.defineProperty(process, "stdin", original);
  }
}
