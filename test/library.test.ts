/**
 * The library as a user imports it: the built package by its own name (dist/, through package.json "exports"),
 * in a separate Node process, touching each namespace with a real call.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers/reference.js";

const SCRIPT = `
const m = await import("memento");
const out = {};

// Foundation, flat: a tracker evicts the block a memento closes.
const t = new m.BlockTracker(m.resolveMasking({}), { blockStart: 1, blockEnd: 2, summaryStart: 3, summaryEnd: 4 });
out.evictions = [1, 9, 2, 3, 9, 4].flatMap((x) => t.push(x)).map((e) => [e.start, e.end]);

// engine + server: the bundled model served in-process, one greedy chat completion.
const served = await m.engine.loadServingModel({ modelDir: m.engine.bundledModelDir() });
const app = await m.server.buildServer({
  engine: served.engine, tokenizer: served.tokenizer, modelName: served.name, maxModelLen: served.maxModelLen,
  defaultMetrics: false,
});
const res = await app.inject({ method: "POST", url: "/v1/chat/completions", payload: {
  model: served.name, messages: [{ role: "user", content: "s=3714 k=5" }], temperature: 0, max_tokens: 400,
} });
const body = res.json();
out.status = res.statusCode;
out.evicted = body.usage.memento.evictions > 0;
out.answer = body.choices[0].message.content.trim().split("\\n").pop();
await app.close();
await served.engine.close();

// model, train, data, evaluation, report, bench: one real call each.
out.model = m.model.Qwen3Model.random(m.model.toyConfig({ num_hidden_layers: 1 }), { seed: 1 }).config.num_hidden_layers;
out.train = m.train.toyTokenizer().encode("s=1").length;
out.data = m.data.splitSentences("<think>First we add the numbers. Then we check the sum twice.</think>").sentences.length > 0;
out.evaluation = (await m.evaluation.checkAnswer("so \\\\boxed{42}", "42", { kind: "math" })).correct;
out.report = m.report.lineChart([{ name: "kv", points: [[0, 1], [1, 2]] }]).startsWith("<svg");
out.bench = m.bench.benchSampler({ vocab: 500, repeats: 1, tokens: 2 }).cases.every((c) => c.agreement === 1);
console.log(JSON.stringify(out));
`;

describe("library entry point", () => {
  it("imports by its own name: the foundation flat, every other layer as a namespace that works", () => {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", SCRIPT], { cwd: repoRoot, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      evictions: [[1, 2]],
      status: 200,
      evicted: true,
      model: 1,
      data: true,
      evaluation: true,
      report: true,
      bench: true,
    });
    expect(out.train).toBeGreaterThan(0);
    // The bundled model's answer line is the four digits it computed (the toy task's format).
    expect(out.answer).toMatch(/\d{4}/);
  }, 60_000);
});
