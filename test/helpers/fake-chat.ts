import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A tiny OpenAI-compatible chat server on 127.0.0.1 that answers arithmetic prompts ("What is 3 + 4?") with a
 * Memento-format response. `wrongEvery` makes every k-th request (1-based) answer wrong. Records request bodies.
 */
export interface FakeChat {
  baseURL: string;
  bodies: Record<string, unknown>[];
  delayMs: number;
  wrongEvery: number;
  close(): Promise<void>;
}

export function mementoAnswer(a: number, b: number, answer: number): string {
  const block1 = `We need ${a} + ${b}. Start from ${a} and count up ${b} steps, one at a time, to be careful with the carry.`;
  const block2 = `Checking: ${answer} - ${b} = ${a}, so the sum ${answer} is consistent with the addends.`;
  return (
    `<think>\n<|block_start|>${block1}<|block_end|>\n<|summary_start|>${a}+${b}: counted up to ${answer}<|summary_end|>\n` +
    `<|block_start|>${block2}<|block_end|>\n<|summary_start|>verified ${answer}<|summary_end|>\n</think>\n\nThe answer is \\boxed{${answer}}.`
  );
}

export async function startFakeChat(): Promise<FakeChat> {
  let count = 0;
  const state: FakeChat = { baseURL: "", bodies: [], delayMs: 0, wrongEvery: 0, close: async () => {} };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.url?.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "fake", object: "model" }] }));
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { messages: { content: string }[] };
    state.bodies.push(body as unknown as Record<string, unknown>);
    const n = ++count;
    if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
    const m = /What is (\d+) \+ (\d+)\?/.exec(body.messages[0]?.content ?? "");
    const a = Number(m?.[1] ?? 0);
    const b = Number(m?.[2] ?? 0);
    const wrong = state.wrongEvery > 0 && n % state.wrongEvery === 0;
    const content = mementoAnswer(a, b, a + b + (wrong ? 1 : 0));
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        id: `c${n}`,
        object: "chat.completion",
        model: "fake",
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 20, completion_tokens: 80, total_tokens: 100 },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = () => new Promise<void>((r) => server.close(() => r()));
  return state;
}
