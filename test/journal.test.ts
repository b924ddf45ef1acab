import { describe, expect, it } from "vitest";
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonlJournal } from "../src/io/journal.js";

describe("JsonlJournal", () => {
  it("reads back finished items, cuts a torn tail, and the last line per key wins", () => {
    const path = join(mkdtempSync(join(tmpdir(), "journal-")), "j.jsonl");
    const j = new JsonlJournal<{ id: string; v: number }>(path, (x) => x.id);
    j.append({ id: "a", v: 1 });
    j.append({ id: "b", v: 2 });
    j.append({ id: "a", v: 3 });
    j.close();
    appendFileSync(path, '{"id":"c","v":'); // a SIGKILL mid-write
    const again = new JsonlJournal<{ id: string; v: number }>(path, (x) => x.id);
    expect([...again.records.values()]).toEqual([
      { id: "a", v: 3 },
      { id: "b", v: 2 },
    ]);
    again.append({ id: "c", v: 4 });
    again.close();
    const lines = readFileSync(path, "utf8").trim().split("\n");
    expect(lines.map((l) => JSON.parse(l).id)).toEqual(["a", "b", "a", "c"]); // the torn line is gone
  });
  it("a corrupt line in the middle is a one-line user error", () => {
    const path = join(mkdtempSync(join(tmpdir(), "journal-")), "j.jsonl");
    writeFileSync(path, '{"id":"a"}\nnot json\n{"id":"b"}\n');
    expect(() => new JsonlJournal(path, (x: { id: string }) => x.id)).toThrow(/j\.jsonl:2: corrupt journal line/);
  });
});
