/**
 * Resume checks for the resumable jobs (`memento data build`, `memento eval run`, `memento train toy`): a job
 * records what it was started with in its directory's manifest, and a rerun into that directory must match.
 * This module owns the identity, its comparison and `--force-new`; it never writes a job's manifest (each job
 * writes its own file, with these two fields in it).
 *
 * Policy:
 * 1. A job's identity is `{ options, input }`. `options` maps each flag that changes what a record contains to
 *    its effective value (defaults included), keyed by the flag as typed (`"--min-block-tokens": 200`). Flags
 *    that change only how fast or how much (workers, timeouts, retries, `--limit`, `-n`) are left out: they
 *    choose which records are made, not what any record holds, so changing them mixes nothing.
 * 2. `input` fingerprints what the job reads (see `fileFingerprint`); a job that reads nothing records `{}`.
 * 3. Resuming needs the recorded identity to equal the new one (values compared as canonical JSON); otherwise
 *    `checkJobIdentity` throws one UserError line naming every differing option with both values.
 * 4. A manifest that exists but records no identity (written before identities were) is adopted: the caller
 *    writes the new identity and goes on; `checkJobIdentity` says "adopted" so it can say so.
 * 5. `--force-new` never deletes: `moveAside` renames the whole directory to `<dir>.prev-<UTC time>` and the
 *    job starts fresh at the same path.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { UserError } from "../errors.js";

/** What a job was started with: see the policy above. */
export interface JobIdentity {
  options: Record<string, unknown>;
  input: Record<string, unknown>;
}

/** Bytes hashed at each end of an input file by `fileFingerprint` (1 MiB). */
export const DEFAULT_FINGERPRINT_EDGE_BYTES = 1 << 20;

/** An input file's fingerprint: its size and a SHA-256 of its first and last `edgeBytes` (the whole file if smaller). */
export interface FileFingerprint {
  bytes: number;
  sha256: string;
}

/**
 * Fingerprints a file by its size and the SHA-256 of its first and last MiB: reading a multi-GB trace file whole
 * on every resume would cost minutes, and a different export, a truncated copy or an appended shard changes one
 * of the three. An edit inside the middle that keeps the size is not caught (our trade-off).
 */
export function fileFingerprint(path: string, edgeBytes = DEFAULT_FINGERPRINT_EDGE_BYTES): FileFingerprint {
  let fd: number;
  let bytes: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UserError(`${path}: not a file`);
    bytes = st.size;
    fd = openSync(path, "r");
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: cannot read file${code ? ` (${code})` : ""}`);
  }
  const hash = createHash("sha256");
  try {
    const readAt = (offset: number, length: number) => {
      const buf = Buffer.alloc(length);
      const n = readSync(fd, buf, 0, length, offset);
      hash.update(buf.subarray(0, n));
    };
    if (bytes <= 2 * edgeBytes) readAt(0, bytes);
    else {
      readAt(0, edgeBytes);
      readAt(bytes - edgeBytes, edgeBytes);
    }
  } finally {
    closeSync(fd);
  }
  return { bytes, sha256: hash.digest("hex") };
}

/** JSON with object keys sorted, so equal values compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return value === undefined ? "null" : JSON.stringify(value);
}

/** A value as a message shows it: strings bare, arrays comma-joined, absent as "unset", the rest as JSON. */
function shown(value: unknown): string {
  if (value === undefined || value === null) return "unset";
  if (typeof value === "string") return value === "" ? '""' : value;
  if (Array.isArray(value) && value.every((v) => typeof v !== "object")) return value.join(",");
  return canonicalJson(value);
}

/** Every difference between two identities, one phrase each: `--min-block-tokens 200 (now 600)`. */
export function identityDifferences(recorded: JobIdentity, current: JobIdentity): string[] {
  const out: string[] = [];
  const names = [...new Set([...Object.keys(recorded.options), ...Object.keys(current.options)])];
  for (const name of names) {
    const was = recorded.options[name];
    const now = current.options[name];
    if (canonicalJson(was) !== canonicalJson(now)) out.push(`${name} ${shown(was)} (now ${shown(now)})`);
  }
  const inputs = [...new Set([...Object.keys(recorded.input), ...Object.keys(current.input)])];
  for (const name of inputs) {
    if (canonicalJson(recorded.input[name]) !== canonicalJson(current.input[name]))
      out.push(`${name} (its contents differ)`);
  }
  return out;
}

/** How a job's directory relates to the identity it is started with. */
export type ResumeVerdict = "new" | "same" | "adopted";

export interface ResumeCheck {
  /** The job, as the message names it ("build", "run", "training run"). */
  what: string;
  /** The flag naming the directory, for the way out ("--output-dir", "--out"). */
  dirFlag: string;
}

function readRecordedIdentity(path: string): JobIdentity | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new UserError(`${path}: unreadable manifest; move it away, or add --force-new to start over`);
  }
  const m = parsed as Partial<JobIdentity> | null;
  if (!m || typeof m !== "object" || typeof m.options !== "object" || m.options === null) return undefined;
  return { options: m.options, input: typeof m.input === "object" && m.input !== null ? m.input : {} };
}

/**
 * Compares the identity recorded in `manifestPath` with `current` (policy 3 and 4). Returns "new" when there is
 * no manifest, "same" when they match, "adopted" when the manifest records none; throws a one-line UserError
 * naming the differing options otherwise.
 */
export function checkJobIdentity(manifestPath: string, current: JobIdentity, check: ResumeCheck): ResumeVerdict {
  if (!existsSync(manifestPath)) return "new";
  const recorded = readRecordedIdentity(manifestPath);
  if (!recorded) return "adopted";
  const diffs = identityDifferences(recorded, current);
  if (diffs.length === 0) return "same";
  throw new UserError(
    `${manifestPath}: this ${check.what} was started with other options: ${diffs.join(", ")}; ` +
      `rerun with those, use another ${check.dirFlag}, or add --force-new to move it aside and start over`,
  );
}

/** `<dir>.prev-20260103T094512Z`: where `moveAside` puts a directory (a counter is added if that exists). */
function asidePath(dir: string, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  let path = `${dir.replace(/[/\\]+$/, "")}.prev-${stamp}`;
  for (let i = 2; existsSync(path); i++) path = `${dir.replace(/[/\\]+$/, "")}.prev-${stamp}-${i}`;
  return path;
}

/**
 * `--force-new` (policy 5): renames `dir` aside and returns the new name, or undefined when `dir` does not exist
 * or is empty (nothing to keep). Fails in one line when the rename fails.
 */
export function moveAside(dir: string, now = new Date()): string | undefined {
  if (!existsSync(dir) || readdirSync(dir).length === 0) return undefined;
  const to = asidePath(dir, now);
  try {
    renameSync(dir, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`--force-new: cannot move ${dir} aside to ${to}${code ? ` (${code})` : ""}`);
  }
  return to;
}
