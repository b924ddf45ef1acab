import { readFileSync } from "node:fs";
import { UserError } from "../errors.js";

/** Reads a UTF-8 file; a missing or unreadable file is a one-line user error naming the path. */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: cannot read file${code ? ` (${code})` : ""}`);
  }
}
