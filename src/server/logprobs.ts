/**
 * Log-probabilities in the OpenAI shapes (and vLLM's extensions), built from the engine's per-token records
 * (`TokenEvent.logprob` / `topLogprobs`, engine/logprobs.ts: log_softmax of the raw logits).
 *
 *   chat         {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}
 *   completions  {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}   (legacy shape)
 *
 * Policy:
 * 1. A token's string is the tokenizer's decode of that one id, markers included (an id the vocabulary lacks,
 *    a padded row, is ""); with vLLM's `return_tokens_as_token_ids` it is `token_id:<id>`, so clients get ids
 *    without re-tokenizing (two ids can decode to the same string; their `token_id:` names never collide).
 * 2. Chat `top_logprobs` holds exactly the k most likely tokens; a completions `top_logprobs` object holds those
 *    plus the chosen token (OpenAI's legacy rule: up to logprobs + 1 entries).
 * 3. `text_offset` counts characters of the token strings from the start of the completion, continued across
 *    the chunks of one stream (`LogprobsFormatter` keeps the running offset).
 * 4. A logprob of -Infinity (a token the logits rule out) is written as -9999, as vLLM does: JSON has no -Infinity.
 */
import type { TokenEvent, TokenLogprob } from "../engine/types.js";
import type { Endpoint } from "./metrics.js";

/** What a request asked for: `top` alternatives per token (0: the chosen token's only), names as ids or text. */
export interface LogprobsRequest {
  top: number;
  /** vLLM's `return_tokens_as_token_ids`: token strings are `token_id:<id>`. */
  tokenIds: boolean;
}

/** Most alternatives per token a chat request may ask (OpenAI's `top_logprobs` limit). */
export const MAX_CHAT_TOP_LOGPROBS = 20;
/** Most alternatives per token a completions request may ask (OpenAI's legacy `logprobs` limit). */
export const MAX_COMPLETION_LOGPROBS = 5;
/** What -Infinity is written as (vLLM's choice). */
export const LOGPROB_FLOOR = -9999;

/** One generated token with what the engine recorded about it. */
export interface LogprobEntry {
  id: number;
  logprob: number;
  top: readonly TokenLogprob[];
}

/** Decodes one id to its string (the server's lenient tokenizer: unknown ids are ""). */
export type DecodeOne = (id: number) => string;

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export interface ChatLogprobs {
  content: (ChatTokenLogprob & { top_logprobs: ChatTokenLogprob[] })[];
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

const finite = (x: number) => (x === -Infinity || Number.isNaN(x) ? LOGPROB_FLOOR : x);

/** The entry of a token event, or undefined when the engine recorded no logprob for it. */
export function entryOf(ev: Pick<TokenEvent, "id" | "logprob" | "topLogprobs">): LogprobEntry | undefined {
  if (ev.logprob === undefined) return undefined;
  return { id: ev.id, logprob: ev.logprob, top: ev.topLogprobs ?? [] };
}

/** The entries of a whole completion (CompletionResult's parallel arrays). */
export function entriesOf(r: {
  tokens: number[];
  logprobs?: number[];
  topLogprobs?: TokenLogprob[][];
}): LogprobEntry[] {
  if (!r.logprobs) return [];
  return r.tokens.map((id, i) => ({ id, logprob: r.logprobs![i], top: r.topLogprobs?.[i] ?? [] }));
}

/**
 * Formats entries into one endpoint's shape. One formatter per response: a stream formats its chunks in turn and
 * `text_offset` runs on across them (policy 3).
 */
export class LogprobsFormatter {
  private offsetChars = 0;
  private readonly name: (id: number) => string;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly request: LogprobsRequest,
    decodeOne: DecodeOne,
  ) {
    this.name = request.tokenIds ? (id) => `token_id:${id}` : decodeOne;
  }

  format(entries: readonly LogprobEntry[]): ChatLogprobs | CompletionLogprobs {
    return this.endpoint === "chat" ? this.chat(entries) : this.completion(entries);
  }

  private chatToken(id: number, logprob: number): ChatTokenLogprob {
    const token = this.name(id);
    return { token, logprob: finite(logprob), bytes: Array.from(Buffer.from(token, "utf8")) };
  }

  private chat(entries: readonly LogprobEntry[]): ChatLogprobs {
    return {
      content: entries.map((e) => ({
        ...this.chatToken(e.id, e.logprob),
        top_logprobs: e.top.slice(0, this.request.top).map((t) => this.chatToken(t.id, t.logprob)),
      })),
    };
  }

  private completion(entries: readonly LogprobEntry[]): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const e of entries) {
      const token = this.name(e.id);
      out.tokens.push(token);
      out.token_logprobs.push(finite(e.logprob));
      const top: Record<string, number> = {};
      for (const t of e.top.slice(0, this.request.top)) top[this.name(t.id)] = finite(t.logprob);
      top[token] = finite(e.logprob);
      out.top_logprobs.push(top);
      out.text_offset.push(this.offsetChars);
      this.offsetChars += token.length;
    }
    return out;
  }
}
