/**
 * The inverse of gguf.ts's tokenizer export: a GGUF's `tokenizer.*` metadata turned back into a Hugging Face
 * `tokenizer.json` + `tokenizer_config.json` pair (in memory), so a GGUF alone can be served.
 *
 * Supported: `tokenizer.ggml.model = "gpt2"` (byte-level BPE), the only kind our exporter writes and the kind
 * of Qwen's own GGUFs. Mapping:
 *   - NORMAL, BYTE and UNKNOWN tokens form the BPE vocabulary, with their GGUF index as id (their text is
 *     already byte-level: " " is "Ġ");
 *   - CONTROL tokens become special added tokens, USER_DEFINED ones non-special added tokens (both matched
 *     verbatim before the BPE, as llama.cpp does); UNUSED tokens (the exporter's "[PADn]" rows) are left out;
 *   - `tokenizer.ggml.merges` ("a b", byte-level) become the BPE merges, in order (rank = position);
 *   - `tokenizer.ggml.pre` "qwen2" gives Qwen2's split regex + NFC, any other value GPT-2's byte-level regex;
 *   - eos/pad ids give eos_token/pad_token, bos_token only when `tokenizer.ggml.add_bos_token` is not false,
 *     `tokenizer.chat_template` the chat template.
 * Invariants: every id kept keeps its GGUF index, so the ids the tokenizer produces are the model's rows; the
 * four Memento markers must each be one token of the GGUF (ggufMementoTokenizer refuses otherwise, with one
 * UserError naming the missing ones), so no id is ever added past the model's vocabulary.
 */
import { basename } from "node:path";
import { UserError } from "../errors.js";
import {
  MementoTokenizer,
  plainAddedToken,
  type AddedTokenJson,
  type TokenizerConfigJson,
  type TokenizerJson,
} from "../format/tokenizer.js";
import { MEMENTO_SPECIAL_TOKENS } from "../format/tokens.js";
import { ggufGet, readGguf, TokenType, type GgufFile } from "./gguf.js";

/** Qwen2's pre-tokenizer split (the regex of Qwen2/Qwen3's tokenizer.json). */
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" +
  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const byteLevel = (useRegex: boolean) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: false,
  use_regex: useRegex,
});

/** The two Hugging Face tokenizer files rebuilt from a GGUF's metadata. */
export interface HfTokenizerFromGguf {
  json: TokenizerJson;
  config: TokenizerConfigJson;
}

function stringArray(file: GgufFile, key: string, required: boolean): string[] | undefined {
  const v = ggufGet(file, key);
  if (v === undefined && !required) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
    throw new UserError(`${file.path}: the GGUF has no ${key} string array`);
  return v as string[];
}

function optionalId(file: GgufFile, key: string, n: number): number | undefined {
  const v = ggufGet(file, key);
  const id = typeof v === "bigint" ? Number(v) : v;
  return typeof id === "number" && Number.isInteger(id) && id >= 0 && id < n ? id : undefined;
}

/** The Hugging Face tokenizer files of a GGUF's `tokenizer.*` metadata (byte-level BPE only). */
export function hfTokenizerFromGguf(file: GgufFile): HfTokenizerFromGguf {
  const model = ggufGet(file, "tokenizer.ggml.model");
  if (model === undefined) throw new UserError(`${file.path}: the GGUF has no tokenizer (tokenizer.ggml.model)`);
  if (model !== "gpt2")
    throw new UserError(
      `${file.path}: tokenizer.ggml.model "${String(model)}" is not supported (only "gpt2" byte-level BPE); ` +
        "pass --model DIR for the tokenizer",
    );
  const tokens = stringArray(file, "tokenizer.ggml.tokens", true)!;
  const typesRaw = ggufGet(file, "tokenizer.ggml.token_type");
  const types = Array.isArray(typesRaw) ? (typesRaw as unknown[]).map(Number) : [];
  if (types.length > 0 && types.length !== tokens.length)
    throw new UserError(
      `${file.path}: tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`,
    );
  const merges = stringArray(file, "tokenizer.ggml.merges", false) ?? [];

  const vocab: Record<string, number> = {};
  const added: AddedTokenJson[] = [];
  const decoder: Record<string, Omit<AddedTokenJson, "id">> = {};
  const additional: string[] = [];
  let unk: string | undefined;
  tokens.forEach((text, id) => {
    const type = types[id] ?? TokenType.NORMAL;
    if (type === TokenType.UNUSED) return;
    if (type === TokenType.CONTROL || type === TokenType.USER_DEFINED) {
      const entry = plainAddedToken(text, type === TokenType.CONTROL);
      added.push({ id, ...entry });
      decoder[String(id)] = entry;
      if (entry.special) additional.push(text);
      return;
    }
    if (type === TokenType.UNKNOWN) unk ??= text;
    if (!(text in vocab)) vocab[text] = id;
  });
  const unkId = optionalId(file, "tokenizer.ggml.unknown_token_id", tokens.length);
  if (unkId !== undefined && tokens[unkId] in vocab) unk = tokens[unkId];

  const pre = ggufGet(file, "tokenizer.ggml.pre");
  const qwen2 = pre === "qwen2";
  const json: TokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: qwen2 ? { type: "NFC" } : null,
    pre_tokenizer: qwen2
      ? {
          type: "Sequence",
          pretokenizers: [
            { type: "Split", pattern: { Regex: QWEN2_SPLIT }, behavior: "Isolated", invert: false },
            byteLevel(false),
          ],
        }
      : byteLevel(true),
    post_processor: byteLevel(false),
    decoder: byteLevel(false),
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk ?? null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => {
        const i = m.indexOf(" ");
        if (i <= 0) throw new UserError(`${file.path}: malformed merge ${JSON.stringify(m)} in tokenizer.ggml.merges`);
        return [m.slice(0, i), m.slice(i + 1)];
      }),
    },
  };

  const textOf = (key: string): string | null => {
    const id = optionalId(file, key, tokens.length);
    return id === undefined ? null : tokens[id];
  };
  const template = ggufGet(file, "tokenizer.chat_template");
  const config: TokenizerConfigJson = {
    tokenizer_class: "PreTrainedTokenizerFast",
    added_tokens_decoder: decoder,
    additional_special_tokens: additional,
    bos_token: ggufGet(file, "tokenizer.ggml.add_bos_token") === false ? null : textOf("tokenizer.ggml.bos_token_id"),
    eos_token: textOf("tokenizer.ggml.eos_token_id"),
    pad_token: textOf("tokenizer.ggml.padding_token_id"),
    unk_token: unk ?? null,
    clean_up_tokenization_spaces: false,
  };
  if (typeof template === "string") config.chat_template = template;
  return { json, config };
}

/**
 * The serving tokenizer of a GGUF (byte-level BPE metadata), with the Memento markers checked: each must be a
 * token of the GGUF that encodes to exactly its own id. Throws one UserError naming the markers that are not.
 */
export function ggufMementoTokenizer(file: GgufFile): MementoTokenizer {
  const { json, config } = hfTokenizerFromGguf(file);
  const tokens = ggufGet(file, "tokenizer.ggml.tokens") as string[];
  const present = MEMENTO_SPECIAL_TOKENS.filter((m) => tokens.includes(m));
  const lacking = (missing: readonly string[]) =>
    new UserError(
      `${file.path}: the GGUF's vocabulary lacks the Memento markers ${missing.join(", ")} ` +
        "(add them with memento model add-tokens before converting)",
    );
  if (present.length < MEMENTO_SPECIAL_TOKENS.length)
    throw lacking(MEMENTO_SPECIAL_TOKENS.filter((m) => !present.includes(m)));
  // Every marker is a token here, so addMementoTokens only promotes vocabulary entries (never adds an id).
  const tokenizer = new MementoTokenizer(json, config, { source: file.path });
  const split = MEMENTO_SPECIAL_TOKENS.filter((m) => {
    const ids = tokenizer.encode(m);
    return ids.length !== 1 || tokens[ids[0]] !== m;
  });
  if (split.length > 0) throw lacking(split);
  return tokenizer;
}

/** What serving takes from a GGUF alone: the tokenizer, the model name and the context length. */
export interface GgufServingInfo {
  tokenizer: MementoTokenizer;
  /** `general.name`, else the file's basename without `.gguf`. */
  name: string;
  /** `<general.architecture>.context_length`. */
  contextLength: number;
  /** The embedding rows (token_embd.weight's second dim), when the tensor is listed. */
  vocabSize?: number;
}

/** Reads a GGUF's header and returns what `memento serve --gguf FILE` needs besides the weights. */
export function ggufServingInfo(path: string): GgufServingInfo {
  const file = readGguf(path);
  const arch = ggufGet(file, "general.architecture");
  if (typeof arch !== "string") throw new UserError(`${path}: the GGUF has no general.architecture`);
  const ctxRaw = ggufGet(file, `${arch}.context_length`);
  const contextLength = typeof ctxRaw === "bigint" ? Number(ctxRaw) : ctxRaw;
  if (typeof contextLength !== "number" || !Number.isInteger(contextLength) || contextLength <= 0)
    throw new UserError(`${path}: the GGUF has no ${arch}.context_length`);
  const general = ggufGet(file, "general.name");
  const name =
    typeof general === "string" && general.trim() !== "" ? general.trim() : basename(path).replace(/\.gguf$/i, "");
  const embd = file.tensors.find((t) => t.name === "token_embd.weight");
  return { tokenizer: ggufMementoTokenizer(file), name, contextLength, vocabSize: embd?.dims[1] };
}
