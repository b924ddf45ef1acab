/**
 * `memento serve` as a user runs it (the built CLI in a child process, the bundled toy model), sent real signals:
 *  - the first SIGTERM drains: new requests get an OpenAI-shaped 503, a stream in flight runs to its
 *    finish_reason and [DONE], one stderr line per phase, exit 0;
 *  - at the shutdown deadline (or on a second signal) what is still running is cut: a stream gets an error event
 *    and [DONE], a non-streaming request a 503 error reply;
 *  - the banner names the address actually bound, with a warning when it is not loopback and has no API key.
 * The toy model writes ~685 tokens for `s=3714 k=9` (about a second alone on this machine), so a stream opened
 * before the signal is still running when it arrives.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers/reference.js";

const LONG_PROBLEM = "s=3714 k=9";
const BANNER = /^memento serve: model toy at (http:\/\/\S+)\/v1 /m;

interface Served {
  child: ChildProcessWithoutNullStreams;
  /** The URL from the banner, as printed (the bound host). */
  listenURL: string;
  /** Where this test connects. */
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** The exit code, or the signal that killed it. */
  exited: Promise<number | string | null>;
}

/** Spawns `memento serve --port 0 ...` and resolves once its banner is out. */
function serve(args: string[]): Promise<Served> {
  const env = { ...process.env };
  delete env.MEMENTO_API_KEY;
  const child = spawn(process.execPath, [join(repoRoot, "bin", "memento.js"), "serve", "--port", "0", ...args], {
    cwd: repoRoot,
    env,
  });
  let out = "";
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number | string | null>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal)),
  );
  return new Promise<Served>((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const m = BANNER.exec(out);
      if (!m) return;
      const listenURL = m[1];
      const url = listenURL.replace("//0.0.0.0:", "//127.0.0.1:");
      resolve({ child, listenURL, url, stdout: () => out, stderr: () => err, exited });
    });
    void exited.then((code) => reject(new Error(`serve exited (${code}) before its banner: ${err}`)));
  });
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const chatBody = (stream: boolean) =>
  JSON.stringify({
    model: "toy",
    messages: [{ role: "user", content: LONG_PROBLEM }],
    max_tokens: 4000,
    temperature: 0,
    stream,
  });

const post = (s: Served, body: string, headers: Record<string, string> = {}) =>
  fetch(`${s.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

/** An SSE response read as it comes: the `data:` payloads so far, and a promise of all of them. */
function readEvents(res: Response): { events: string[]; all: Promise<string[]> } {
  const events: string[] = [];
  const all = (async () => {
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      let cut = buffered.indexOf("\n\n");
      while (cut >= 0) {
        events.push(buffered.slice(0, cut).replace(/^data: /, ""));
        buffered = buffered.slice(cut + 2);
        cut = buffered.indexOf("\n\n");
      }
    }
    return events;
  })();
  return { events, all };
}

/** Opens a long stream and waits until a few of its tokens have arrived. */
async function openStream(s: Served, headers: Record<string, string> = {}) {
  const res = await post(s, chatBody(true), headers);
  expect(res.status).toBe(200);
  const stream = readEvents(res);
  await until(() => stream.events.length >= 4, "the first tokens");
  return stream;
}

const finishReasons = (events: string[]) =>
  events
    .filter((e) => e.startsWith("{") && e.includes('"choices"'))
    .flatMap((e) => (JSON.parse(e) as { choices: Array<{ finish_reason: string | null }> }).choices)
    .map((c) => c.finish_reason)
    .filter((r) => r !== null);

describe("memento serve: graceful shutdown on signals", () => {
  it("SIGTERM drains: new requests get 503, a running stream ends with finish_reason and [DONE], exit 0", async () => {
    const s = await serve(["--shutdown-timeout", "60"]);
    const stream = await openStream(s);
    s.child.kill("SIGTERM");
    await until(() => s.stderr().includes("draining"), "the draining line");

    const refused = await post(s, chatBody(false));
    expect([refused.status, ((await refused.json()) as { error: unknown }).error]).toEqual([
      503,
      { message: "the server is shutting down", type: "service_unavailable", param: null, code: "shutting_down" },
    ]);
    expect((await fetch(`${s.url}/health`)).status).toBe(503);

    const events = await stream.all;
    expect(finishReasons(events)).toEqual(["stop"]);
    expect(events.some((e) => e.includes('"error"'))).toBe(false);
    expect(events[events.length - 1]).toBe("[DONE]");
    expect(await s.exited).toBe(0);
    expect(s.stderr().trimEnd().split("\n")).toEqual([
      "memento serve: SIGTERM: new requests get 503; draining 1 request in flight (1 stream) for up to 60 s",
      expect.stringMatching(/^memento serve: drained: 1 request ended in [\d.]+ s$/),
      expect.stringMatching(/^memento serve: closed after [\d.]+ s; exiting$/),
    ]);
  });

  it("at the deadline a stream ends with an error event and [DONE], a plain request gets a 503 reply", async () => {
    const s = await serve(["--shutdown-timeout", "0"]);
    const plain = post(s, chatBody(false));
    const stream = await openStream(s);
    // Both are in the engine before the signal: /health counts them.
    const inEngine = async () => {
      const h = (await (await fetch(`${s.url}/health`)).json()) as { running: number; waiting: number };
      return h.running + h.waiting;
    };
    for (let i = 0; i < 200 && (await inEngine()) < 2; i++) await new Promise((r) => setTimeout(r, 20));
    s.child.kill("SIGTERM");

    const events = await stream.all;
    const cutError = {
      message: "the server is shutting down; the request was cancelled before it finished",
      type: "service_unavailable",
      param: null,
      code: "cancelled",
    };
    expect(finishReasons(events)).toEqual([]);
    expect(events.slice(-2)).toEqual([JSON.stringify({ error: cutError }), "[DONE]"]);
    const r = await plain;
    expect([r.status, ((await r.json()) as { error: unknown }).error]).toEqual([503, cutError]);
    expect(await s.exited).toBe(0);
    expect(s.stderr()).toMatch(
      /^memento serve: shutdown deadline reached after [\d.]+ s: 0 requests ended, 2 requests cut/m,
    );
    expect(s.stderr()).toContain("2 requests cut (1 stream ended with an error event and [DONE], 1 answered 503)\n");
  });

  it("a second signal cuts the drain at once", async () => {
    const s = await serve(["--shutdown-timeout", "600"]);
    const stream = await openStream(s);
    s.child.kill("SIGTERM");
    await until(() => s.stderr().includes("draining"), "the draining line");
    const t0 = Date.now();
    s.child.kill("SIGINT");
    const events = await stream.all;
    expect(events.slice(-2)).toEqual([expect.stringContaining('"code":"cancelled"'), "[DONE]"]);
    expect(await s.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(s.stderr()).toMatch(/^memento serve: second signal after [\d.]+ s: 0 requests ended, 1 request cut/m);
  });
});

describe("memento serve: the banner", () => {
  it("names the host actually bound, and warns when it is not loopback and no API key is set", async () => {
    const [open, keyed, local] = await Promise.all([
      serve(["--host", "0.0.0.0"]),
      serve(["--host", "0.0.0.0", "--api-key", "k"]),
      serve(["--host", "localhost"]),
    ]);
    for (const s of [open, keyed, local]) s.child.kill("SIGTERM");
    const codes = await Promise.all([open.exited, keyed.exited, local.exited]);
    expect(codes).toEqual([0, 0, 0]);
    expect(open.listenURL).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect(keyed.listenURL).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect(local.listenURL).toMatch(/^http:\/\/(127\.0\.0\.1|\[::1\]):\d+$/);
    const port = open.listenURL.split(":").pop();
    expect(open.stderr()).toContain(
      `memento serve: warning: listening on 0.0.0.0, which other machines can reach, without an API key: anyone ` +
        `who reaches port ${port} can use this server (set --api-key or MEMENTO_API_KEY)`,
    );
    expect(keyed.stderr()).not.toContain("warning");
    expect(local.stderr()).not.toContain("warning");
  });
});
