/**
 * `memento rl rollouts` against a fake OpenAI-compatible endpoint on 127.0.0.1 (node http) that answers
 * completions with token ids and logprobs, and end to end against our own server (toy model, reference backend).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parquetReadObjects } from "hyparquet";
import { bundledModelDir, loadServingModel } from "../src/engine/index.js";
import { loadBenchmark, renderPrompt } from "../src/eval/benchmark.js";
import { checkAnswer } from "../src/eval/check.js";
import { encodeChat } from "../src/format/chat.js";
import { loadTokenizer, type MementoTokenizer } from "../src/format/tokenizer.js";
import { trackerIdsOf } from "../src/masking/config.js";
import { groupAdvantages } from "../src/rl/advantages.js";
import type { RolloutRecord } from "../src/rl/record.js";
import {
  collectRollouts,
  EndpointUnreachableError,
  GROUPS_JOURNAL,
  readChoice,
  ROLLOUTS_JSONL,
  ROLLOUTS_PARQUET,
  sampleSeed,
  type CollectRolloutsOptions,
} from "../src/rl/rollouts.js";
import { startServer } from "../src/server/index.js";
import { exportRecord, stagePattern } from "../src/train/sft-data.js";
import { runInProcess } from "./helpers/cli.js";

/** How the fake endpoint says which tokens it sampled. */
type IdsMode = "token_ids" | "logprobs" | "none";

/** Problems: "all" is answered right by every sample, "half" right by even seeds, "none" never. */
const PROBLEMS = [
  { id: "all", problem: "What is 6 times 7?", answer: "42", kind: "math" },
  { id: "half", problem: "What is 2 plus 3?", answer: "5", kind: "math" },
  { id: "none", problem: "What is 10 minus 1?", answer: "9", kind: "math" },
];

let dir: string;
let benchmark: string;
let qwen: MementoTokenizer;
let fake: Server;
let fakeUrl: string;
const fakeState = {
  mode: "token_ids" as IdsMode,
  /** Problem ids (by prompt text) answered 500. */
  failing: new Set<string>(),
  requests: [] as Record<string, unknown>[],
};

/** The fake's Memento response for one request: right or wrong by the rule above. */
function responseFor(prompt: string, seed: number): string {
  const p = PROBLEMS.find((x) => prompt.includes(x.problem))!;
  const right = p.id === "all" || (p.id === "half" && seed % 2 === 0);
  const answer = right ? p.answer : "1000";
  return (
    "<think>\n<|block_start|>Let me work it out.<|block_end|>\n<|summary_start|>Worked.<|summary_end|>\n" +
    `<|block_start|>Checking.<|block_end|>\n<|summary_start|>Checked.<|summary_end|>\n</think>\n\n\\boxed{${answer}}`
  );
}

/** The id of <|im_end|>, the stop token the fake ends every completion with. */
const imEnd = () => qwen.encode("<|im_end|>")[0];

/** Deterministic made-up logprobs, one per token. */
const logprobsOf = (ids: number[]) => ids.map((_, i) => -((i % 7) + 1) / 10);

function answer(req: IncomingMessage, res: ServerResponse, raw: string): void {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (req.method === "GET" && req.url === "/v1/models") {
    send(200, { object: "list", data: [] });
    return;
  }
  const body = JSON.parse(raw) as Record<string, unknown>;
  fakeState.requests.push(body);
  const prompt = qwen.decode(body.prompt as number[]);
  if ([...fakeState.failing].some((p) => prompt.includes(p))) {
    send(500, { error: { message: "boom", type: "server_error" } });
    return;
  }
  const text = responseFor(prompt, body.seed as number);
  const ids = [...qwen.encode(text), imEnd()];
  const lps = logprobsOf(ids);
  const name = (id: number) => (fakeState.mode === "none" ? qwen.decode([id]) : `token_id:${id}`);
  const choice: Record<string, unknown> = {
    index: 0,
    text,
    finish_reason: "stop",
    logprobs: { tokens: ids.map(name), token_logprobs: lps, top_logprobs: null, text_offset: ids.map(() => 0) },
  };
  if (fakeState.mode === "token_ids") choice.token_ids = ids;
  send(200, { id: "cmpl-1", object: "text_completion", created: 0, model: body.model, choices: [choice] });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "memento-rl-"));
  benchmark = join(dir, "problems.jsonl");
  writeFileSync(benchmark, PROBLEMS.map((p) => JSON.stringify(p)).join("\n") + "\n");
  qwen = loadTokenizer();
  fake = createServer((req, res) => {
    let raw = "";
    req.on("data", (d) => (raw += d));
    req.on("end", () => answer(req, res, raw));
  });
  await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
  fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await new Promise((r) => fake?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const GROUP = 4;

async function options(outDir: string, extra: Partial<CollectRolloutsOptions> = {}): Promise<CollectRolloutsOptions> {
  return {
    problems: await loadBenchmark(benchmark),
    benchmark,
    outDir,
    endpoint: fakeUrl,
    model: "fake",
    group: GROUP,
    sampling: { temperature: 1, topP: 1, topK: -1, maxTokens: 256, seed: 0 },
    tokenizer: qwen,
    attempts: 1,
    ...extra,
  };
}

const readJsonl = (path: string) =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RolloutRecord);

/** The mask `memento train export` writes for these ids. */
function exportMask(tok: MementoTokenizer, promptIds: number[], completionIds: number[]) {
  const ids = Int32Array.from([...promptIds, ...completionIds]);
  const ex = { ids, labels: ids, promptLength: promptIds.length };
  const r = exportRecord(ex, stagePattern(ex, 2, trackerIdsOf(tok)));
  return { memento_visible_until: r.memento_visible_until, view_at: r.view_at };
}

describe("rl rollouts against a fake endpoint", () => {
  it("records ids, logprobs, checker rewards, group advantages and train export's mask; JSONL = Parquet", async () => {
    fakeState.mode = "token_ids";
    fakeState.requests = [];
    const out = join(dir, "run-a");
    const r = await collectRollouts(await options(out));
    expect(r.summary).toMatchObject({ groups: 3, failedGroups: 0, samples: 12, tokenSources: { token_ids: 12 } });
    expect(fakeState.requests).toHaveLength(12);
    for (const q of fakeState.requests) {
      expect(q).toMatchObject({ logprobs: 1, return_tokens_as_token_ids: true, skip_special_tokens: false });
      expect(q.max_tokens).toBe(256);
    }
    const rows = readJsonl(join(out, ROLLOUTS_JSONL));
    const problems = await loadBenchmark(benchmark);
    // The prompt is sent as the ids recorded, with each sample's seed.
    expect(new Set(fakeState.requests.map((q) => JSON.stringify([q.prompt, q.seed])))).toEqual(
      new Set(rows.map((x) => JSON.stringify([x.prompt_ids, x.seed]))),
    );
    expect(rows.map((x) => `${x.problem_id}#${x.sample_index}`)).toEqual(
      PROBLEMS.flatMap((p) => [0, 1, 2, 3].map((i) => `${p.id}#${i}`)),
    );
    for (const row of rows) {
      const p = PROBLEMS.find((x) => x.id === row.problem_id)!;
      const user = renderPrompt(problems.find((x) => x.id === p.id)!);
      expect(row.prompt_ids).toEqual(encodeChat([{ role: "user", content: user }], { tokenizer: qwen }).ids);
      expect(row.prompt_length).toBe(row.prompt_ids.length);
      expect(row.seed).toBe(sampleSeed(0, p.id, row.sample_index));
      const text = responseFor(p.problem, row.seed);
      expect(row.completion_text).toBe(text);
      expect(row.completion_ids).toEqual([...qwen.encode(text), imEnd()]);
      expect(row.old_logprobs).toEqual(logprobsOf(row.completion_ids));
      expect(row.reward).toBe(text.endsWith(`{${p.answer}}`) ? 1 : 0);
      expect({ memento_visible_until: row.memento_visible_until, view_at: row.view_at }).toEqual(
        exportMask(qwen, row.prompt_ids, row.completion_ids),
      );
      expect(row.memento_visible_until.some((v) => v >= 0)).toBe(true); // the blocks are evicted in the mask
      expect([row.finish_reason, row.forced, row.token_source]).toEqual(["stop", [], "token_ids"]);
    }
    const byProblem = (id: string) => rows.filter((x) => x.problem_id === id);
    // A group of equal rewards carries no signal: advantage 0 everywhere.
    expect(byProblem("all").map((x) => [x.reward, x.advantage])).toEqual(Array(GROUP).fill([1, 0]));
    expect(byProblem("none").map((x) => [x.reward, x.advantage])).toEqual(Array(GROUP).fill([0, 0]));
    const half = byProblem("half");
    expect(half.map((x) => x.advantage)).toEqual(groupAdvantages(half.map((x) => x.reward)));
    expect(new Set(half.map((x) => x.reward)).size).toBe(2); // the seeds gave both outcomes

    const parquet = await parquetReadObjects({
      file: new Uint8Array(readFileSync(join(out, ROLLOUTS_PARQUET))).buffer,
    });
    expect(parquet.map((x) => ({ ...x, seed: Number(x.seed) }))).toEqual(rows);
  });

  it("takes ids from `token_id:<id>` logprob tokens, else retokenizes the text and says so", async () => {
    fakeState.mode = "logprobs";
    const a = await collectRollouts(await options(join(dir, "run-b")));
    expect(a.summary.tokenSources).toEqual({ logprobs: 12 });
    fakeState.mode = "none";
    const b = await collectRollouts(await options(join(dir, "run-c")));
    expect(b.summary.tokenSources).toEqual({ retokenized: 12 });
    const rows = readJsonl(join(dir, "run-c", ROLLOUTS_JSONL));
    // The text carries no <|im_end|>: the retokenized ids are one shorter than the logprobs, which are dropped.
    expect(rows[0].completion_ids).toEqual(qwen.encode(rows[0].completion_text));
    expect(rows[0].old_logprobs).toEqual([]);
  });

  it("a failed request fails its whole group, never a reward-0 sample; the rerun retries only that group", async () => {
    fakeState.mode = "token_ids";
    fakeState.failing = new Set(["2 plus 3"]);
    const out = join(dir, "run-d");
    const a = await collectRollouts(await options(out));
    expect(a.summary).toMatchObject({ groups: 2, failedGroups: 1, samples: 8 });
    expect(a.summary.firstError).toMatch(/500/);
    expect(readJsonl(join(out, ROLLOUTS_JSONL)).some((x) => x.problem_id === "half")).toBe(false);
    fakeState.failing = new Set();
    fakeState.requests = [];
    const b = await collectRollouts(await options(out));
    expect(b.summary).toMatchObject({ groups: 3, failedGroups: 0, samples: 12 });
    expect(fakeState.requests).toHaveLength(GROUP);
    expect(b.progress.resumed).toBe(2);
    expect(readFileSync(join(out, GROUPS_JOURNAL), "utf8").trim().split("\n")).toHaveLength(4);
  });

  it("a rerun with another option is refused in one line naming it", async () => {
    const out = join(dir, "run-a");
    await expect(collectRollouts(await options(out, { group: 2 }))).rejects.toThrow(/--group 4 \(now 2\)/);
  });

  it("an unreachable endpoint is one user error (exit 2), before anything is written", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const out = join(dir, "run-e");
    const opts = await options(out, { endpoint: `http://127.0.0.1:${port}/v1` });
    await expect(collectRollouts(opts)).rejects.toThrow(EndpointUnreachableError);
    await expect(collectRollouts(opts)).rejects.toThrow(/cannot reach http:\/\/127\.0\.0\.1:\d+\/v1 \(ECONNREFUSED\)/);
    expect(existsSync(join(out, GROUPS_JOURNAL))).toBe(false);
    const cli = await runInProcess([
      "rl",
      "rollouts",
      "-b",
      benchmark,
      "-e",
      `http://127.0.0.1:${port}/v1`,
      "-m",
      "x",
      "-o",
      out,
    ]);
    expect(cli.code).toBe(2);
    expect(cli.err).toMatch(/^memento: cannot reach .*ECONNREFUSED.*\n$/);
  });

  it("the CLI: exit 1 with one line while a group fails, exit 0 once the rerun completes it", async () => {
    fakeState.mode = "token_ids";
    fakeState.failing = new Set(["10 minus 1"]);
    const out = join(dir, "run-cli");
    const args = [
      "rl",
      "rollouts",
      "-b",
      benchmark,
      "-e",
      fakeUrl,
      "-m",
      "fake",
      "-o",
      out,
      "-g",
      "2",
      "--attempts",
      "1",
    ];
    const a = await runInProcess(args);
    expect(a.code).toBe(1);
    expect(a.err).toMatch(/^memento: 1 of 3 groups failed \(first: 500 .*\); .*rerun the same command.*\n$/m);
    fakeState.failing = new Set();
    const b = await runInProcess(args);
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/^3 groups, 6 samples, mean reward 0\.5000, 2 groups with equal rewards/);
    expect(readJsonl(join(out, ROLLOUTS_JSONL))).toHaveLength(6);
  });

  it("readChoice refuses an answer without text rather than scoring it", () => {
    expect(() => readChoice(undefined, qwen)).toThrow(/without a choice/);
    expect(() => readChoice({ index: 0 }, qwen)).toThrow(/no text/);
  });
});

describe("rl rollouts against our server", () => {
  it("serves as the endpoint: ids and logprobs from the server, rewards from the checker, the run's mask", async () => {
    const m = await loadServingModel({ modelDir: bundledModelDir(), kvBudgetTokens: 20_000 });
    const server = await startServer({
      engine: m.engine,
      tokenizer: m.tokenizer,
      modelName: m.name,
      maxModelLen: m.maxModelLen,
      port: 0,
      ownsEngine: true,
      defaultMetrics: false,
    });
    try {
      const toyBench = join(dir, "toy.jsonl");
      writeFileSync(toyBench, `${JSON.stringify({ id: "t0", problem: "s=0454 k=4", answer: "0000", kind: "math" })}\n`);
      const out = join(dir, "run-toy");
      const r = await collectRollouts({
        problems: await loadBenchmark(toyBench),
        benchmark: toyBench,
        promptTemplate: "{problem}",
        outDir: out,
        endpoint: server.baseURL,
        model: m.name,
        group: 2,
        sampling: { temperature: 1, topP: 1, topK: -1, maxTokens: 120, seed: 3 },
        tokenizer: m.tokenizer,
        tokenizerDir: bundledModelDir(),
        attempts: 1,
      });
      expect(r.summary).toMatchObject({ groups: 1, failedGroups: 0, samples: 2, tokenSources: { token_ids: 2 } });
      const rows = readJsonl(join(out, ROLLOUTS_JSONL));
      for (const row of rows) {
        expect(row.prompt_ids).toEqual(
          m.tokenizer.encode("<|im_start|>user\ns=0454 k=4<|im_end|>\n<|im_start|>assistant\n"),
        );
        expect(row.completion_ids).toHaveLength(120);
        expect(row.old_logprobs).toHaveLength(120);
        expect(row.old_logprobs.every((x) => x <= 0)).toBe(true);
        expect(m.tokenizer.decode(row.completion_ids)).toBe(row.completion_text);
        expect({ memento_visible_until: row.memento_visible_until, view_at: row.view_at }).toEqual(
          exportMask(m.tokenizer, row.prompt_ids, row.completion_ids),
        );
        const checked = await checkAnswer(row.completion_text, "0000", { kind: "math" });
        expect([row.finish_reason, row.reward]).toEqual(["length", checked.correct ? 1 : 0]);
        expect(row.seed).toBe(sampleSeed(3, "t0", row.sample_index));
      }
      expect(rows.map((x) => x.advantage)).toEqual(groupAdvantages(rows.map((x) => x.reward)));
    } finally {
      await server.close();
    }
  });
});
