import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { parseResponse } from "../src/format/response.js";
import { traceStats } from "../src/kv/trace-stats.js";
import {
  buildTraceView,
  chatCompletionsUrl,
  loadViewerItems,
  startViewer,
  type TraceView,
  type ViewerServer,
} from "../src/report/viewer.js";
import { viewerPage } from "../src/report/viewer-page.js";
import { hasReference, referencePath, repoRoot } from "./helpers/reference.js";
import { hasChromium, noChromiumReason, openPage, saveScreenshot, seriesPointCounts } from "./helpers/browser.js";

const tok = loadTokenizer();
const samplePath = join(repoRoot, "assets", "sample-response.txt");
const sample = readFileSync(samplePath, "utf8");
const sampleBlocks = parseResponse(sample).blocks.length;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "memento-viewer-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------------------
// A tiny OpenAI-compatible server that streams a Memento response in chunks (SSE), as vLLM does.

interface FakeStream {
  url: string;
  bodies: Record<string, unknown>[];
  close(): Promise<void>;
}

async function fakeStreamingServer(
  text: string,
  opts: { chunk?: number; delayMs?: number; status?: number } = {},
): Promise<FakeStream> {
  const bodies: Record<string, unknown>[] = [];
  const server: Server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/v1/models") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "fake-memento", object: "model" }] }));
      return;
    }
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
    req.on("end", async () => {
      bodies.push(JSON.parse(raw) as Record<string, unknown>);
      if (opts.status && opts.status !== 200) {
        res.writeHead(opts.status, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { message: "model is asleep" } }));
        return;
      }
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
      const size = opts.chunk ?? 40;
      const frame = (delta: Record<string, unknown>, finish: string | null) =>
        `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", model: "fake-memento", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      res.write(frame({ role: "assistant", content: "" }, null));
      for (let i = 0; i < text.length; i += size) {
        res.write(frame({ content: text.slice(i, i + size) }, null));
        await new Promise((r) => setTimeout(r, opts.delayMs ?? 2));
      }
      res.write(frame({}, "stop"));
      res.end("data: [DONE]\n\n");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    bodies,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Reads the viewer's live event stream until `done`; returns the events in order. */
async function readLive(url: string): Promise<{ event: string; data: unknown }[]> {
  const res = await fetch(new URL("/api/live", url));
  expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
  const events: { event: string; data: unknown }[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    for (;;) {
      const cut = buf.indexOf("\n\n");
      if (cut === -1) break;
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const ev = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
    }
    if (events.some((e) => e.event === "done")) break;
  }
  await reader.cancel().catch(() => {});
  return events;
}

// ---------------------------------------------------------------------------------------------------------

describe("trace view", () => {
  it("has one entry per block with its memento and token counts, and the KV trajectory", () => {
    const v = buildTraceView({ id: "sample", text: sample }, { tokenizer: tok });
    const parsed = parseResponse(sample);
    expect(v.blocks.length).toBe(parsed.blocks.length);
    expect(v.blocks.length).toBeGreaterThan(2);
    v.blocks.forEach((b, i) => {
      expect(b.text).toBe(parsed.blocks[i].text);
      expect(b.tokens).toBe(tok.count(parsed.blocks[i].text));
      expect(b.memento).not.toBeNull();
      expect(b.memento!.tokens).toBeGreaterThan(0);
      expect(b.memento!.tokens).toBeLessThan(b.tokens);
    });
    // Same numbers as `memento trace stats`.
    const s = traceStats({ id: "sample", text: sample }, { tokenizer: tok });
    expect(v.blocks.map((b) => b.tokens)).toEqual(s.blockTokens);
    expect(v.blocks.map((b) => b.memento!.tokens)).toEqual(s.mementoTokens);
    expect(v.kv.memento.peakTokens).toBe(s.memento.peakTokens);
    expect(v.kv.vanilla.peakTokens).toBe(s.vanilla.peakTokens);
    expect(v.kv.evictions).toBe(s.evictions);
    expect(v.outputTokens).toBe(s.outputTokens);
    expect(v.answer).toContain("\\boxed{48}");
    expect(v.trajectory.memento.length).toBeGreaterThan(100);
    expect(v.chart).toMatch(/<path class="series" data-series="memento \(block masking\)" data-points="\d{3,}"/);
  });

  it("counts the prompt when the problem is known, and survives a cut-off stream", () => {
    if (hasReference) {
      const item = loadViewerItems(referencePath("memento_output_response.json"))[0];
      const v = buildTraceView(item, { tokenizer: tok });
      expect(v.promptTokens).toBeGreaterThan(20);
      expect(v.kv.memento.peakTokens).toBeLessThan(v.kv.vanilla.peakTokens);
    }
    const cut = sample.slice(0, Math.floor(sample.length * 0.6));
    const v = buildTraceView({ id: "cut", text: cut }, { tokenizer: tok });
    expect(v.answer).toBeNull();
    expect(
      v.blocks.at(-1)!.closed === false ||
        v.blocks.at(-1)!.memento?.closed === false ||
        v.blocks.at(-1)!.memento === null,
    ).toBe(true);
    const empty = buildTraceView({ id: "empty", text: "" }, { tokenizer: tok });
    expect(empty.blocks).toEqual([]);
    expect(empty.chart).toContain("no data");
  });

  it("loads text files, segments JSON and a run's generations.jsonl", () => {
    expect(loadViewerItems(samplePath).length).toBe(1);
    const gens = join(tmp, "generations.jsonl");
    writeFileSync(
      gens,
      [
        { problemId: "p1", sample: 0, status: "ok", response: sample, correct: true },
        { problemId: "p1", sample: 1, status: "error", error: "timeout" },
        { problemId: "p2", sample: 0, status: "ok", response: "<think>\nshort\n</think>\n\n7", correct: false },
      ]
        .map((g) => JSON.stringify(g))
        .join("\n") + "\n",
    );
    const items = loadViewerItems(gens);
    expect(items.map((i) => i.id)).toEqual(["p1#0", "p2#0"]);
    expect(items[0].label).toContain("✓");
    expect(loadViewerItems(tmp).length).toBe(2); // the directory holding generations.jsonl
    expect(() => loadViewerItems(join(tmp, "nope.txt"))).toThrow(/no such file/);
  });

  it("builds endpoint URLs and a self-contained page", () => {
    expect(chatCompletionsUrl("http://127.0.0.1:8080/v1")).toBe("http://127.0.0.1:8080/v1/chat/completions");
    expect(chatCompletionsUrl("http://127.0.0.1:8080/v1/")).toBe("http://127.0.0.1:8080/v1/chat/completions");
    expect(chatCompletionsUrl("http://127.0.0.1:8080")).toBe("http://127.0.0.1:8080/v1/chat/completions");
    expect(chatCompletionsUrl("http://h/v1/chat/completions")).toBe("http://h/v1/chat/completions");
    const page = viewerPage();
    expect(page).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
    expect(page).toContain('id="blocks"');
  });
});

describe("viewer server", () => {
  it("serves the page, the item list and traces", async () => {
    const items = loadViewerItems(samplePath);
    const v = await startViewer({ source: { kind: "items", items, title: "sample" }, tokenizer: tok });
    try {
      expect(v.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await fetch(v.url);
      expect(page.headers.get("content-type")).toMatch(/text\/html/);
      expect(await page.text()).toContain("<details");
      const info = (await (await fetch(new URL("/api/info", v.url))).json()) as { mode: string; items: unknown[] };
      expect(info.mode).toBe("file");
      expect(info.items.length).toBe(1);
      const t = (await (await fetch(new URL("/api/trace?i=0", v.url))).json()) as TraceView;
      expect(t.blocks.length).toBe(sampleBlocks);
      expect((await fetch(new URL("/api/trace?i=5", v.url))).status).toBe(404);
      expect((await fetch(new URL("/api/live", v.url))).status).toBe(404);
      expect((await fetch(new URL("/nope", v.url))).status).toBe(404);
      expect((await fetch(v.url, { method: "POST" })).status).toBe(405);
    } finally {
      await v.close();
    }
  });

  it("follows a streaming completion live and pushes text and growing traces over SSE", async () => {
    const upstream = await fakeStreamingServer(sample, { chunk: 29, delayMs: 3 });
    const v = await startViewer({
      source: { kind: "live", endpoint: upstream.url, prompt: "How many zeros end 100! in base 12?" },
      tokenizer: tok,
      throttleMs: 30,
    });
    try {
      const events = await readLive(v.url);
      const text = events
        .filter((e) => e.event === "text" || e.event === "delta")
        .map((e) => (e.data as { text: string }).text)
        .join("");
      expect(text).toBe(sample);
      const traces = events.filter((e) => e.event === "trace").map((e) => e.data as TraceView);
      expect(traces.length).toBeGreaterThan(2);
      // The chart grows as tokens arrive.
      expect(traces[0].outputTokens).toBeLessThan(traces.at(-1)!.outputTokens);
      const last = traces.at(-1)!;
      expect(last.blocks.length).toBe(sampleBlocks);
      expect(last.promptTokens).toBeGreaterThan(0);
      expect(last.answer).toContain("48");
      const done = events.at(-1)!;
      expect(done.event).toBe("done");
      expect(done.data).toMatchObject({ finishReason: "stop", model: "fake-memento" });
      // The request: streaming chat completion with the markers kept; the model came from GET /models.
      expect(upstream.bodies[0]).toMatchObject({ model: "fake-memento", stream: true, skip_special_tokens: false });
      // A page that connects after the end gets everything at once.
      const again = await readLive(v.url);
      expect(again[0].event).toBe("text");
      expect((again[0].data as { text: string }).text).toBe(sample);
      expect(again.at(-1)!.event).toBe("done");
    } finally {
      await v.close();
      await upstream.close();
    }
  });

  it("reports an upstream failure as a done event with an error", async () => {
    const upstream = await fakeStreamingServer(sample, { status: 503 });
    const v = await startViewer({
      source: { kind: "live", endpoint: upstream.url, model: "m", prompt: "hi" },
      tokenizer: tok,
    });
    try {
      const events = await readLive(v.url);
      expect(events.at(-1)!.event).toBe("done");
      expect((events.at(-1)!.data as { error: string }).error).toMatch(/upstream HTTP 503: .*model is asleep/);
    } finally {
      await v.close();
      await upstream.close();
    }
  });

  it("`memento view FILE --no-open` prints the URL and serves until stopped", async () => {
    const child = spawn(
      process.execPath,
      [join(repoRoot, "bin", "memento.js"), "view", samplePath, "--no-open", "--port", "0"],
      { cwd: repoRoot },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        let err = "";
        const timer = setTimeout(() => reject(new Error(`no URL printed; stderr: ${err}`)), 30_000);
        child.stdout.setEncoding("utf8").on("data", (d: string) => {
          out += d;
          const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
        child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
        child.on("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
      });
      const t = (await (await fetch(new URL("/api/trace?i=0", url))).json()) as TraceView;
      expect(t.blocks.length).toBe(sampleBlocks);
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      child.kill("SIGINT");
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("`memento view URL` without a prompt is a one-line user error", async () => {
    const child = spawn(
      process.execPath,
      [join(repoRoot, "bin", "memento.js"), "view", "http://127.0.0.1:9/v1", "--no-open"],
      { cwd: repoRoot },
    );
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(code).toBe(2);
    expect(err.trim().split("\n").length).toBe(1);
    expect(err).toMatch(/needs --prompt/);
  });
});

if (!hasChromium) {
  describe("the viewer in headless Chromium", () => {
    it.skip(noChromiumReason, () => {});
  });
}

describe.skipIf(!hasChromium)("the viewer in headless Chromium", () => {
  let viewer: ViewerServer | undefined;
  afterAll(async () => {
    await viewer?.close();
  });

  it("renders a response as collapsible blocks with mementos and the KV chart", async () => {
    const file = hasReference ? referencePath("memento_output_response.json") : samplePath;
    const items = loadViewerItems(file);
    const expected = parseResponse(items[0].text).blocks.length;
    viewer = await startViewer({ source: { kind: "file", path: file }, tokenizer: tok });
    const p = await openPage(viewer.url);
    try {
      await p.page.waitForSelector("#status[data-state=ready]", { timeout: 20_000 });
      expect(await p.page.locator("#blocks details.block").count()).toBe(expected);
      expect(await p.page.locator("#blocks details.block .memento").count()).toBe(expected);
      const counts = await seriesPointCounts(p.page, "#chart");
      expect(counts[0]).toBeGreaterThan(100);
      expect(await p.page.locator("#answer pre").textContent()).not.toBe("");
      // Blocks start collapsed; a click opens one and shows its reasoning.
      const first = p.page.locator("#blocks details.block").first();
      expect(await first.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
      await first.locator("summary").click();
      expect(await first.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
      expect(await first.locator("pre.block-text").isVisible()).toBe(true);
      await saveScreenshot(p.page, join(tmp, "viewer.png"), "/tmp/memento-viewer.png");
      expect(p.problems).toEqual([]);
    } finally {
      await p.close();
      await viewer.close();
      viewer = undefined;
    }
  });

  it("has a selector for files with several responses", async () => {
    const gens = join(tmp, "generations-sel.jsonl");
    writeFileSync(
      gens,
      [sample, sample.replace("48", "49")]
        .map((r, i) => JSON.stringify({ problemId: "p", sample: i, status: "ok", response: r, correct: i === 0 }))
        .join("\n"),
    );
    viewer = await startViewer({ source: { kind: "file", path: gens }, tokenizer: tok });
    const p = await openPage(viewer.url);
    try {
      await p.page.waitForSelector("#status[data-state=ready]", { timeout: 20_000 });
      expect(await p.page.locator("#item option").count()).toBe(2);
      await p.page.selectOption("#item", "1");
      await p.page.waitForFunction(
        () => document.querySelector("#answer pre")?.textContent?.includes("49"),
        undefined,
        { timeout: 20_000 },
      );
      expect(p.problems).toEqual([]);
    } finally {
      await p.close();
      await viewer.close();
      viewer = undefined;
    }
  });

  it("follows a live stream: blocks appear as they arrive and the chart grows", async () => {
    const upstream = await fakeStreamingServer(sample, { chunk: 12, delayMs: 8 });
    viewer = await startViewer({
      source: { kind: "live", endpoint: upstream.url, model: "fake-memento", prompt: "How many zeros?" },
      tokenizer: tok,
      throttleMs: 40,
    });
    const p = await openPage(viewer.url);
    try {
      // Mid-stream: some blocks already rendered, fewer than at the end.
      await p.page.waitForSelector("#status[data-state=streaming]", { timeout: 20_000 });
      await p.page.waitForFunction(() => document.querySelectorAll("#blocks details.block").length >= 1, undefined, {
        timeout: 20_000,
      });
      const midPoints = (await seriesPointCounts(p.page, "#chart"))[0] ?? 0;
      await p.page.waitForSelector("#status[data-state=done]", { timeout: 30_000 });
      expect(await p.page.locator("#blocks details.block").count()).toBe(sampleBlocks);
      const endPoints = (await seriesPointCounts(p.page, "#chart"))[0];
      expect(endPoints).toBeGreaterThan(midPoints);
      expect(endPoints).toBeGreaterThan(100);
      expect(await p.page.locator("#status").textContent()).toMatch(/done \(stop\)/);
      await p.page.screenshot({ path: join(tmp, "viewer-live.png"), fullPage: true });
      copyFileSync(join(tmp, "viewer-live.png"), "/tmp/memento-viewer-live.png");
      expect(p.problems).toEqual([]);
    } finally {
      await p.close();
      await viewer.close();
      viewer = undefined;
      await upstream.close();
    }
  });
});
