/**
 * Chat rendering with the tokenizer's own Jinja chat template (`chat_template` in tokenizer_config.json),
 * evaluated by @huggingface/jinja, plus the Memento variant of Qwen3's ChatML.
 *
 * Memento variant (renderMementoChat / encodeChat):
 * - Qwen3 Memento models are used without a system prompt, so system messages are dropped before rendering.
 * - The generation prompt ends with `<|im_start|>assistant\n`, exactly like stock Qwen3 with thinking enabled.
 *   We do NOT append `<think>\n` by default: in the Memento training data the assistant response itself begins
 *   with `<think>`, so the model emits it as its first generated token, and a completion replayed through the
 *   block tracker then contains every format marker it produced. Pass `prefillThink: true` to force the
 *   prefix (the prompt then ends with `<think>\n`, which is what the model would generate anyway).
 * - With a trailing assistant message (a training example) the full conversation is rendered and
 *   `promptLength` marks where the assistant response starts.
 */
import { Template } from "@huggingface/jinja";
import { UserError } from "../errors.js";
import type { MementoTokenizer } from "./tokenizer.js";
import { THINK_START } from "./tokens.js";

export type ChatRole = "system" | "user" | "assistant" | "tool";

export interface ChatMessage {
  role: ChatRole | (string & {});
  content: string;
  /** Optional separate reasoning (Qwen3's template uses it instead of splitting content at `</think>`). */
  reasoning_content?: string;
  [k: string]: unknown;
}

export interface RenderChatOptions {
  /** Tokenizer whose `chatTemplate` (and `eos_token`) is used, unless `template` is given. */
  tokenizer?: MementoTokenizer;
  /** A Jinja chat template string; overrides the tokenizer's. */
  template?: string;
  /** End with the assistant header so the model answers next (default false). */
  addGenerationPrompt?: boolean;
  /** Qwen3's switch; `false` makes the generation prompt contain an empty `<think>\n\n</think>\n\n`. Left undefined by default. */
  enableThinking?: boolean;
  /** Further template variables (e.g. `tools`). */
  extra?: Record<string, unknown>;
}

export interface MementoChatOptions extends Omit<RenderChatOptions, "enableThinking"> {
  /** Append `<think>\n` after the generation prompt (default false; see the module comment). */
  prefillThink?: boolean;
}

/**
 * A plain ChatML template (no reasoning stripping, no tools) used by the Memento variant when neither a template
 * nor a tokenizer with one is given.
 */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const templateCache = new Map<string, Template>();

function compile(source: string): Template {
  let t = templateCache.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new UserError(`invalid chat template (${(e as Error).message})`);
    }
    templateCache.set(source, t);
  }
  return t;
}

/** Checks the shape of a messages array (as parsed from user JSON) and returns it typed. */
export function validateMessages(value: unknown, source = "messages"): ChatMessage[] {
  if (!Array.isArray(value)) throw new UserError(`${source}: expected a JSON array of {role, content} messages`);
  value.forEach((m, i) => {
    if (typeof m !== "object" || m === null || Array.isArray(m))
      throw new UserError(`${source}[${i}]: expected an object`);
    const r = (m as Record<string, unknown>).role;
    const c = (m as Record<string, unknown>).content;
    if (typeof r !== "string" || r.length === 0)
      throw new UserError(`${source}[${i}].role: expected a non-empty string`);
    if (typeof c !== "string") throw new UserError(`${source}[${i}].content: expected a string`);
  });
  return value as ChatMessage[];
}

/** Renders `messages` with a chat template (the given one, or the tokenizer's). */
export function renderChat(messages: readonly ChatMessage[], opts: RenderChatOptions): string {
  const source = opts.template ?? opts.tokenizer?.chatTemplate;
  if (source === undefined) {
    throw new UserError(
      opts.tokenizer
        ? `${opts.tokenizer.source}: tokenizer_config.json has no chat_template`
        : "renderChat needs a tokenizer or a template",
    );
  }
  validateMessages(messages);
  const vars: Record<string, unknown> = {
    ...(opts.extra ?? {}),
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: opts.addGenerationPrompt ?? false,
  };
  if (opts.enableThinking !== undefined) vars.enable_thinking = opts.enableThinking;
  if (opts.tokenizer?.eosToken !== undefined && vars.eos_token === undefined) vars.eos_token = opts.tokenizer.eosToken;
  try {
    return compile(source).render(vars);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`chat template failed: ${(e as Error).message}`);
  }
}

/** Messages as the Memento variant sees them: system messages removed. */
export function mementoMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  return validateMessages(messages).filter((m) => m.role !== "system");
}

/**
 * Renders a chat the Memento (Qwen3) way: system messages dropped, the tokenizer's template (or `template`, or
 * CHATML_TEMPLATE when neither exists), generation prompt `<|im_start|>assistant\n` (+ `<think>\n` with prefillThink).
 */
export function renderMementoChat(messages: readonly ChatMessage[], opts: MementoChatOptions = {}): string {
  const template = opts.template ?? opts.tokenizer?.chatTemplate ?? CHATML_TEMPLATE;
  const msgs = mementoMessages(messages);
  if (msgs.length === 0) throw new UserError("messages: nothing to render once system messages are dropped");
  let text = renderChat(msgs, { ...opts, template });
  if (opts.addGenerationPrompt && opts.prefillThink) text += `${THINK_START}\n`;
  return text;
}

export interface EncodedChat {
  /** Token ids of the whole rendered conversation. */
  ids: number[];
  /** Number of leading ids that are prompt (no loss / not generated): everything up to and including the assistant header. */
  promptLength: number;
  /** The rendered text. */
  text: string;
}

/**
 * Renders (Memento variant) and tokenises a chat. With a trailing assistant message the conversation is a
 * training example: `ids` holds prompt + response and `promptLength` the prompt's length (the ids of the same
 * conversation rendered without the last message and with a generation prompt, checked to be a prefix).
 * Otherwise a generation prompt is added and `promptLength === ids.length`.
 */
export function encodeChat(
  messages: readonly ChatMessage[],
  opts: Omit<MementoChatOptions, "addGenerationPrompt"> & { tokenizer: MementoTokenizer },
): EncodedChat {
  const msgs = mementoMessages(messages);
  const last = msgs[msgs.length - 1];
  if (last === undefined) throw new UserError("messages: nothing to render once system messages are dropped");
  const tok = opts.tokenizer;
  if (last.role !== "assistant") {
    const text = renderMementoChat(msgs, { ...opts, addGenerationPrompt: true });
    const ids = tok.encode(text);
    return { ids, promptLength: ids.length, text };
  }
  const text = renderMementoChat(msgs, { ...opts, addGenerationPrompt: false });
  const ids = tok.encode(text);
  const head = msgs.slice(0, -1);
  if (head.length === 0) throw new UserError("messages: an assistant message needs a user message before it");
  const prompt = renderMementoChat(head, { ...opts, addGenerationPrompt: true });
  const promptIds = tok.encode(prompt);
  const isPrefix =
    text.startsWith(prompt) && promptIds.length <= ids.length && promptIds.every((id, i) => ids[i] === id);
  if (!isPrefix) {
    throw new UserError(
      "chat: the prompt's tokens are not a prefix of the full conversation's (does the assistant message start with a newline, or disagree with prefillThink?)",
    );
  }
  return { ids, promptLength: promptIds.length, text };
}
