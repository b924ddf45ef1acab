/**
 * File-system checks shared by the commands: reading a text file, and making sure an output path can be
 * written before any work starts. Every failure is a one-line UserError naming the path (and the flag that gave
 * it), never a stack trace.
 */
import { mkdirSync, readFileSync, statSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { UserError } from "../errors.js";

function errorCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/** Reads a UTF-8 file; a missing or unreadable file is a one-line user error naming the path. */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = errorCode(e);
    throw new UserError(`${path}: cannot read file${code ? ` (${code})` : ""}`);
  }
}

/** The stats of `path`, or null when it does not exist (ENOENT, or a parent that is not a directory). */
function statIfExists(path: string, flag: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    const code = errorCode(e);
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw new UserError(`${flag} ${path}: cannot access${code ? ` (${code})` : ""}`);
  }
}

function kindOf(st: Stats): string {
  return st.isFile() ? "a file" : "not a directory";
}

/** Refuses a missing `path` whose nearest existing ancestor is not a directory (mkdir -p would fail). */
function checkAncestors(path: string, flag: string): void {
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    const st = statIfExists(dir, flag);
    if (st) {
      if (!st.isDirectory()) throw new UserError(`${flag} ${path} cannot be created: ${dir} is ${kindOf(st)}`);
      return;
    }
    if (dirname(dir) === dir) return;
  }
}

/** Checks, creating nothing, that `path` is a directory or can be created as one. `flag` names it in errors. */
export function checkOutputDir(path: string, flag: string): void {
  const st = statIfExists(path, flag);
  if (st) {
    if (!st.isDirectory()) throw new UserError(`${flag} must be a directory, but ${path} is ${kindOf(st)}`);
    return;
  }
  checkAncestors(path, flag);
}

/** Makes sure the output directory `path` exists (mkdir -p), or fails in one line naming `flag`. */
export function ensureOutputDir(path: string, flag: string): void {
  checkOutputDir(path, flag);
  try {
    mkdirSync(path, { recursive: true });
  } catch (e) {
    const code = errorCode(e);
    throw new UserError(`${flag} ${path}: cannot create the directory${code ? ` (${code})` : ""}`);
  }
}

/** Checks, creating nothing, that `path` can be written as a file: not a directory, its parent creatable. */
export function checkOutputFile(path: string, flag: string): void {
  const st = statIfExists(path, flag);
  if (st?.isDirectory()) throw new UserError(`${flag} must be a file, but ${path} is a directory`);
  if (!st) checkAncestors(path, flag);
}

/** checkOutputFile, then creates the file's directory (for writers that do not create it themselves). */
export function ensureOutputFile(path: string, flag: string): void {
  checkOutputFile(path, flag);
  const dir = dirname(resolve(path));
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const code = errorCode(e);
    throw new UserError(`${flag} ${path}: cannot create its directory ${dir}${code ? ` (${code})` : ""}`);
  }
}
