import { describe, expect, it } from "vitest";
import { networkNamespaceAvailable, outputsMatch, runProgram, runResponseCode } from "../src/eval/code-runner.js";

const SUM_TESTS = [
  { input: "1 2\n", output: "3\n" },
  { input: "10 -4\n", output: "6" },
  { input: "5 5\n", output: "11\n" }, // deliberately wrong expectation
];

describe("outputsMatch", () => {
  it("trims trailing whitespace per line and trailing blank lines, nothing else", () => {
    expect(outputsMatch("1 \r\n2\t\n\n", "1\n2")).toBe(true);
    expect(outputsMatch(" 1\n2", "1\n2")).toBe(false);
    expect(outputsMatch("1\n\n2", "1\n2")).toBe(false);
  });
});

describe("runProgram (python)", () => {
  it("ok / wrong verdicts", async () => {
    const r = await runProgram(
      { language: "python", code: "a, b = map(int, input().split())\nprint(a + b)" },
      SUM_TESTS,
    );
    expect(r.verdicts).toEqual(["ok", "ok", "wrong"]);
    expect(r.passed).toBe(2);
    expect(r.total).toBe(3);
  });
  it("error, timeout and memory verdicts", async () => {
    const err = await runProgram({ language: "python", code: "raise ValueError('boom')" }, [{ input: "", output: "" }]);
    expect(err.verdicts).toEqual(["error"]);
    expect(err.outcomes[0].stderrTail).toContain("ValueError");

    const t0 = Date.now();
    const slow = await runProgram({ language: "python", code: "while True:\n    pass" }, [{ input: "", output: "" }], {
      timeoutMs: 400,
    });
    expect(slow.verdicts).toEqual(["timeout"]);
    expect(Date.now() - t0).toBeLessThan(3000);

    const mem = await runProgram(
      { language: "python", code: "x = bytearray(600 * 1024 * 1024)\nprint(len(x))" },
      [{ input: "", output: "" }],
      { memoryMb: 256 },
    );
    expect(mem.verdicts).toEqual(["memory"]);
  });
  it("sees a cleared environment, an empty cwd and no network", async () => {
    const code = [
      "import os, socket",
      "print(sorted(k for k in os.environ if k not in ('LC_CTYPE',)))",
      "print(os.listdir('.'))",
      "try:",
      "    socket.create_connection(('1.1.1.1', 80), timeout=1)",
      "    print('net')",
      "except OSError:",
      "    print('no net')",
    ].join("\n");
    const r = await runProgram({ language: "python", code }, [
      { input: "", output: "['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']\n[]\nno net" },
    ]);
    expect(r.verdicts, r.outcomes[0].stderrTail).toEqual(["ok"]);
    expect(r.sandbox.networkNamespace).toBe(networkNamespaceAvailable());
  });
  it("blocks sockets best-effort without a network namespace", async () => {
    const code = "import socket\ntry:\n    socket.socket()\n    print('socket')\nexcept OSError:\n    print('blocked')";
    const r = await runProgram({ language: "python", code }, [{ input: "", output: "blocked" }], {
      networkNamespace: "off",
    });
    expect(r.verdicts).toEqual(["ok"]);
    expect(r.sandbox.networkNamespace).toBe(false);
    const js = "fetch('http://1.1.1.1').then(() => console.log('net'), () => console.log('blocked'));";
    expect(
      (
        await runProgram({ language: "javascript", code: js }, [{ input: "", output: "blocked" }], {
          networkNamespace: "off",
        })
      ).verdicts,
    ).toEqual(["ok"]);
  });
  it("handles a program that ignores its input and one that prints too much", async () => {
    const r = await runProgram({ language: "python", code: "print('hi')" }, [
      { input: "x\n".repeat(200_000), output: "hi" },
    ]);
    expect(r.verdicts).toEqual(["ok"]);
    const big = await runProgram(
      { language: "python", code: "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)" },
      [{ input: "", output: "" }],
      { maxOutputBytes: 1 << 20 },
    );
    expect(big.verdicts).toEqual(["error"]);
  });
});

describe("runProgram (javascript)", () => {
  it("runs CommonJS and ES modules on stdin", async () => {
    const cjs =
      "const s = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\nconsole.log(s[0] + s[1]);";
    expect((await runProgram({ language: "javascript", code: cjs }, SUM_TESTS)).verdicts).toEqual([
      "ok",
      "ok",
      "wrong",
    ]);
    const esm =
      "import { readFileSync } from 'node:fs';\nconst [a, b] = readFileSync(0, 'utf8').trim().split(' ').map(Number);\nconsole.log(a * b);";
    expect(
      (await runProgram({ language: "javascript", code: esm }, [{ input: "6 7", output: "42" }])).verdicts,
    ).toEqual(["ok"]);
  });
  it("timeout, memory, blocked child processes and network", async () => {
    const slow = await runProgram({ language: "javascript", code: "for(;;){}" }, [{ input: "", output: "" }], {
      timeoutMs: 400,
    });
    expect(slow.verdicts).toEqual(["timeout"]);
    const mem = await runProgram(
      { language: "javascript", code: "const a=[]; for(;;) a.push(new Array(1e6).fill(1.5));" },
      [{ input: "", output: "" }],
      { memoryMb: 64 },
    );
    expect(mem.verdicts).toEqual(["memory"]);
    const sneaky = [
      "let r = [];",
      "try { require('child_process').execSync('echo hi'); r.push('child'); } catch { r.push('no child'); }",
      "try { require('net').connect(80, '1.1.1.1'); r.push('net'); } catch { r.push('no net'); }",
      "console.log(r.join(','));",
    ].join("\n");
    const s = await runProgram({ language: "javascript", code: sneaky }, [{ input: "", output: "no child,no net" }]);
    expect(s.verdicts, s.outcomes[0].stderrTail).toEqual(["ok"]);
  });
});

describe("runResponseCode", () => {
  it("extracts the last fenced block of the answer", async () => {
    const response = "<think>```python\nprint('draft')\n```</think>\nFinal:\n```python\nprint(int(input()) * 2)\n```";
    const r = await runResponseCode(
      response,
      [
        { input: "21", output: "42" },
        { input: "1", output: "2" },
      ],
      { concurrency: 2 },
    );
    expect(r.verdicts).toEqual(["ok", "ok"]);
    expect(r.program?.code).toContain("* 2");
    const none = await runResponseCode("no code", [{ input: "", output: "" }]);
    expect(none.verdicts).toEqual(["error"]);
    expect(none.program).toBeNull();
  });
});
