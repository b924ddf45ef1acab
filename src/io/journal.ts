import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { UserError } from "../errors.js";

/**
 * An append-only JSONL journal of finished work items: one JSON object per line, each appended and fsync'd as
 * it finishes, so a job killed at any moment (SIGKILL included) loses at most the items in flight. On open, a
 * torn last line (the kill hit mid-write) is cut off, and the items read back are keyed by `keyOf`; a later line
 * for the same key (a retried item) wins.
 */
export class JsonlJournal<T> {
  private fd: number;
  readonly records = new Map<string, T>();

  constructor(
    readonly path: string,
    private readonly keyOf: (item: T) => string,
  ) {
    let keep = 0;
    if (existsSync(path)) {
      const text = readFileSync(path, "utf8");
      const lastNewline = text.lastIndexOf("\n");
      const whole = text.slice(0, lastNewline + 1);
      keep = Buffer.byteLength(whole, "utf8");
      let lineNo = 0;
      for (const line of whole.split("\n")) {
        lineNo++;
        if (!line.trim()) continue;
        let item: T;
        try {
          item = JSON.parse(line) as T;
        } catch {
          throw new UserError(`${path}:${lineNo}: corrupt journal line (not JSON); move the file away to start over`);
        }
        this.records.set(keyOf(item), item);
      }
    }
    this.fd = openSync(path, "a+");
    if (statSync(path).size > keep) ftruncateSync(this.fd, keep); // drop a torn tail
  }

  append(item: T): void {
    writeSync(this.fd, JSON.stringify(item) + "\n");
    fsyncSync(this.fd);
    this.records.set(this.keyOf(item), item);
  }

  close(): void {
    closeSync(this.fd);
  }
}
