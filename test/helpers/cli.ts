import { spawnSync } from "node:child_process";
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
