/**
 * A character-level tokenizer for the toy Memento model: one id per character of a small alphabet, plus the
 * chat and Memento special tokens, each matched atomically (never split).
 *
 * Ids (default alphabet):
 *   0 <|endoftext|> (pad)   1 <|im_start|>   2 <|im_end|> (eos)   3 <think>   4 </think>
 *   5 <|block_start|>   6 <|block_end|>   7 <|summary_start|>   8 <|summary_end|>   9 <|unk|>
 *   10 "assistant"   11 "user"   12.. the alphabet, in order ("\n", " ", then printable ASCII "!".."~")
 *
 * "assistant" and "user" are single tokens (added tokens, not special) so that the ChatML header
 * `<|im_start|>assistant` is two ids, which the block tracker's assistant-section gate needs. Like every
 * added token they are matched wherever they occur in text.
 *
 * Encoding: scan left to right; at each position take the LONGEST added token starting there, otherwise one
 * character (code point); characters outside the alphabet become `<|unk|>`. This is exactly what Hugging Face
 * tokenizers do with the `tokenizer.json` written by `toTokenizerJson()`: a BPE model with no merges over the
 * single characters (no normalizer, no pre-tokenizer, `unk_token` `<|unk|>`), every token also listed in the
 * vocabulary under its id, the special tokens in `added_tokens`, and a Fuse decoder (tokens concatenated).
 * `tokenizer_config.json` carries a ChatML chat template, eos `<|im_end|>`, pad `<|endoftext|>` and
 * `clean_up_tokenization_spaces: false` (decode is then the exact inverse of encode for in-alphabet text).
 * test/toy-tokenizer.test.ts checks that `loadTokenizer(dir)` on the saved files encodes identically.
 */
import { UserError } from "../errors.js";
import { CHATML_TEMPLATE } from "../format/chat.js";
import {
  plainAddedToken,
  writeTokenizerFiles,
  type SpecialTokenIds,
  type TokenizerConfigJson,
  type TokenizerFiles,
  type TokenizerJson,
} from "../format/tokenizer.js";
import {
  BLOCK_END,
  BLOCK_START,
  IM_END,
  IM_START,
  SUMMARY_END,
  SUMMARY_START,
  THINK_END,
  THINK_START,
} from "../format/tokens.js";

export const ENDOFTEXT = "<|endoftext|>";
export const UNK = "<|unk|>";

/** Added tokens in id order: [content, special]. */
const ADDED: readonly (readonly [string, boolean])[] = [
  [ENDOFTEXT, true],
  [IM_START, true],
  [IM_END, true],
  [THINK_START, true],
  [THINK_END, true],
  [BLOCK_START, true],
  [BLOCK_END, true],
  [SUMMARY_START, true],
  [SUMMARY_END, true],
  [UNK, true],
  ["assistant", false],
  ["user", false],
];

/** "\n", " " and printable ASCII. */
export const DEFAULT_ALPHABET: string =
  "\n" + Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i)).join("");

interface TrieNode {
  next: Map<string, TrieNode>;
  token?: string;
}

export class CharTokenizer {
  /** Number of ids. */
  readonly vocabSize: number;
  readonly alphabet: string;
  readonly specialTokens: Readonly<SpecialTokenIds>;
  /** Id of `<|unk|>`. */
  readonly unkId: number;
  private readonly tokens: string[];
  private readonly ids = new Map<string, number>();
  private readonly special = new Set<number>();
  private readonly trie: TrieNode = { next: new Map() };

  constructor(alphabet: string = DEFAULT_ALPHABET) {
    const chars = Array.from(alphabet);
    if (new Set(chars).size !== chars.length)
      throw new UserError("char tokenizer: the alphabet has repeated characters");
    this.alphabet = alphabet;
    this.tokens = [];
    for (const [content, special] of ADDED) {
      this.ids.set(content, this.tokens.length);
      if (special) this.special.add(this.tokens.length);
      this.tokens.push(content);
      let node = this.trie;
      for (const ch of content) {
        let n = node.next.get(ch);
        if (!n) {
          n = { next: new Map() };
          node.next.set(ch, n);
        }
        node = n;
      }
      node.token = content;
    }
    for (const ch of chars) {
      if (this.ids.has(ch))
        throw new UserError(`char tokenizer: alphabet character ${JSON.stringify(ch)} clashes with a token`);
      this.ids.set(ch, this.tokens.length);
      this.tokens.push(ch);
    }
    this.vocabSize = this.tokens.length;
    this.unkId = this.ids.get(UNK)!;
    const id = (s: string): number => this.ids.get(s)!;
    this.specialTokens = Object.freeze({
      blockStart: id(BLOCK_START),
      blockEnd: id(BLOCK_END),
      summaryStart: id(SUMMARY_START),
      summaryEnd: id(SUMMARY_END),
      thinkStart: id(THINK_START),
      thinkEnd: id(THINK_END),
      imStart: id(IM_START),
      imEnd: id(IM_END),
      assistant: id("assistant"),
      eos: id(IM_END),
      pad: id(ENDOFTEXT),
    });
  }

  /** Token ids of `text` (longest added token first, else one character; unknown characters -> `<|unk|>`). */
  encode(text: string): number[] {
    const out: number[] = [];
    const cps = Array.from(text);
    let i = 0;
    while (i < cps.length) {
      let node: TrieNode | undefined = this.trie;
      let match: string | undefined;
      let len = 0;
      for (let j = i; j < cps.length; j++) {
        node = node.next.get(cps[j]);
        if (!node) break;
        if (node.token !== undefined) {
          match = node.token;
          len = j - i + 1;
        }
      }
      if (match !== undefined) {
        out.push(this.ids.get(match)!);
        i += len;
      } else {
        out.push(this.ids.get(cps[i]) ?? this.unkId);
        i++;
      }
    }
    return out;
  }

  /** Number of tokens of `text`. */
  count(text: string): number {
    return this.encode(text).length;
  }

  /** Text of `ids` (tokens concatenated). */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const t = this.tokens[id];
      if (!Number.isInteger(id) || t === undefined)
        throw new UserError(`unknown token id ${id} (vocabulary has ${this.vocabSize} ids)`);
      if (opts.skipSpecialTokens && this.special.has(id)) continue;
      s += t;
    }
    return s;
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }

  /** The Hugging Face `tokenizer.json` object (see the module comment). */
  toTokenizerJson(): TokenizerJson {
    const vocab: Record<string, number> = {};
    this.tokens.forEach((t, i) => {
      vocab[t] = i;
    });
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: ADDED.map(([content, special]) => ({
        id: this.ids.get(content)!,
        ...plainAddedToken(content, special),
      })),
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: "Fuse" },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: UNK,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
  }

  /** The Hugging Face `tokenizer_config.json` object. */
  toTokenizerConfig(): TokenizerConfigJson {
    const decoder: NonNullable<TokenizerConfigJson["added_tokens_decoder"]> = {};
    for (const [content, special] of ADDED) {
      decoder[String(this.ids.get(content))] = plainAddedToken(content, special);
    }
    return {
      tokenizer_class: "PreTrainedTokenizerFast",
      added_tokens_decoder: decoder,
      additional_special_tokens: [BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END],
      bos_token: null,
      eos_token: IM_END,
      pad_token: ENDOFTEXT,
      unk_token: UNK,
      clean_up_tokenization_spaces: false,
      model_max_length: 4096,
      chat_template: CHATML_TEMPLATE,
    };
  }

  /** Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created if needed); returns the paths. */
  save(dir: string): TokenizerFiles {
    return writeTokenizerFiles(dir, this.toTokenizerJson(), this.toTokenizerConfig());
  }
}

/** The default toy tokenizer (default alphabet). */
export function toyTokenizer(): CharTokenizer {
  return new CharTokenizer();
}
