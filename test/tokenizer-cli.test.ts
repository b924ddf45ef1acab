import { afterEach, describe, expect, it, vi } from "vitest";
import { tokenizeOutput } from "../src/cli/tokenize.js";
import { BLOCK_START } from "../src/format/tokens.js";
import { runInProcess as run } from "./helpers/cli.js";

afterEach(() => vi.restoreAllMocks());

describe("memento tokenize", () => {
  it("prints {count, ids} by default", async () => {
    const r = await run(["tokenize"], `Hello world${BLOCK_START}`);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ count: 3, ids: [9707, 1879, 151669] });
  });

  it("--count and --ids", async () => {
    expect((await run(["tokenize", "--count"], "Hello world")).out).toBe("2\n");
    expect((await run(["tokenize", "--ids"], "Hello world")).out).toBe("[9707,1879]\n");
  });

  it("--chat renders with the Memento template and reports promptLength", async () => {
    const msgs = [
      { role: "system", content: "dropped" },
      { role: "user", content: "hi" },
    ];
    const r = await run(["tokenize", "--chat"], JSON.stringify(msgs));
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { count: number; promptLength: number; ids: number[] };
    // <|im_start|> user \n hi <|im_end|> \n <|im_start|> assistant \n
    expect(j.ids).toEqual([151644, 872, 198, 6023, 151645, 198, 151644, 77091, 198]);
    expect(j.count).toBe(9);
    expect(j.promptLength).toBe(9);
    const withAnswer = JSON.parse(
      tokenizeOutput(JSON.stringify([...msgs, { role: "assistant", content: "<think>\nx\n</think>\n\ny" }]), {
        chat: true,
      }),
    );
    expect(withAnswer.promptLength).toBe(9);
    expect(withAnswer.ids[9]).toBe(151667);
  });

  it("bad input: one-line user error, exit 2", async () => {
    let r = await run(["tokenize", "--chat"], "{not\njson\n");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^memento: stdin: invalid JSON[^\n]*\n$/);
    r = await run(["tokenize", "--chat"], JSON.stringify([{ role: "user" }]));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/content/);
    r = await run(["tokenize", "--tokenizer", "/nonexistent/dir"], "x");
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});
