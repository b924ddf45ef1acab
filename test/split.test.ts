import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  estimateTokens,
  isMathLine,
  naiveBoundaryCount,
  naiveSplit,
  reasoningRegion,
  splitSentences,
  splitStats,
  type SplitOptions,
  type SplitResult,
} from "../src/data/split.js";
import { loadTokenizer } from "../src/format/tokenizer.js";
import { describeWithReference, referencePath } from "./helpers/reference.js";

/** Checks the partition invariants and returns the result. */
function checked(text: string, opts: SplitOptions = {}): SplitResult {
  const r = splitSentences(text, opts);
  assertPartition(text, r);
  return r;
}

function assertPartition(text: string, r: SplitResult): void {
  const [from, to] = r.region;
  expect(r.sentences.length).toBe(r.spans.length);
  let prev = from;
  let rebuilt = text.slice(0, from);
  for (let i = 0; i < r.spans.length; i++) {
    const [s, e] = r.spans[i];
    expect(s).toBeGreaterThanOrEqual(prev);
    expect(e).toBeGreaterThan(s);
    expect(e).toBeLessThanOrEqual(to);
    // Only whitespace between sentences: every non-whitespace char is covered.
    expect(text.slice(prev, s).trim()).toBe("");
    expect(r.sentences[i]).toBe(text.slice(s, e));
    expect(r.sentences[i]).toBe(r.sentences[i].trim());
    rebuilt += text.slice(prev, s) + r.sentences[i];
    prev = e;
  }
  expect(text.slice(prev, to).trim()).toBe("");
  rebuilt += text.slice(prev);
  expect(rebuilt).toBe(text);
}

/** The units between cut points, before any merge (what rule 2 of src/data/split.ts decides). */
const raw = (text: string) => checked(text, { merge: false }).sentences;
const split = (text: string) => checked(text).sentences;

describe("region", () => {
  it("splits only inside <think>...</think>", () => {
    const text = "<think> Is the first thought here? Second thought goes here.\n</think>\nThe answer is 4! Done here.";
    const r = checked(text);
    expect(r.region).toEqual([7, text.indexOf("</think>")]);
    expect(r.sentences).toEqual(["Is the first thought here?", "Second thought goes here."]);
    expect(text.slice(r.spans[0][0], r.spans[0][1])).toBe("Is the first thought here?");
  });

  it("uses the whole text without tags; handles a missing open or close tag", () => {
    expect(reasoningRegion("abc")).toEqual([0, 3]);
    expect(reasoningRegion("<think>abc")).toEqual([7, 10]);
    expect(reasoningRegion("abc</think>def")).toEqual([0, 3]);
    expect(checked("no tags at all here! Still fine, is it not?").sentences).toHaveLength(2);
    expect(checked("<think></think> answer").sentences).toEqual([]);
    expect(checked("").sentences).toEqual([]);
    expect(checked("   \n\n  ").sentences).toEqual([]);
    expect(checked("\u202f\u205f\u1680\u3000\ufeff\u00a0\u2028").sentences).toEqual([]);
  });

  it("stripThink: false splits the whole text", () => {
    const r = checked("<think> Inside goes here. </think>", { stripThink: false, minTokens: 0 });
    expect(r.region).toEqual([0, 34]);
    expect(r.sentences.join("|")).toContain("<think>");
  });
});

describe("split points", () => {
  it("splits after ? ! followed by space and an uppercase letter, digit or quote", () => {
    expect(raw('Is it true? Yes it is! 3 apples remain? "Quoted" text here.')).toEqual([
      "Is it true?",
      "Yes it is!",
      "3 apples remain?",
      '"Quoted" text here.',
    ]);
  });

  it("splits after a period only when it does not stand between two words (reference granularity)", () => {
    // Between words: "true. Yes", "5. Then", "it. (A)" stay together.
    expect(raw("Yes it is true. Wow it is 5. Then see it. (A) holds.")).toEqual([
      "Yes it is true. Wow it is 5. Then see it. (A) holds.",
    ]);
    // After math, a bracket or a quote, or before markup, a period ends the sentence.
    expect(raw("We get $x = 2$. Then (see above). So it is \\( y \\). Next **bold** one. `code` here.")).toEqual([
      "We get $x = 2$.",
      "Then (see above).",
      "So it is \\( y \\).",
      "Next **bold** one.",
      "`code` here.",
    ]);
  });

  it("does not split before a lowercase word or without whitespace", () => {
    expect(raw("x is 5. then y is 6.")).toEqual(["x is 5. then y is 6."]);
    expect(raw("See file.Txt now.")).toEqual(["See file.Txt now."]);
  });

  it("keeps closing quotes, brackets and emphasis with the sentence", () => {
    expect(raw('He said "stop." Then he left. **Done.** Next step.')).toEqual([
      'He said "stop."',
      "Then he left.",
      "**Done.**",
      "Next step.",
    ]);
  });

  it("always splits at paragraph breaks", () => {
    expect(raw("no terminal here\n\nnext paragraph lowercase")).toEqual([
      "no terminal here",
      "next paragraph lowercase",
    ]);
    expect(raw("one\n \t\n\n two")).toEqual(["one", "two"]);
  });

  it("reads a single newline as a space: the punctuation rules decide across it", () => {
    expect(raw("This sentence is\nwrapped across lines.")).toEqual(["This sentence is\nwrapped across lines."]);
    expect(raw("First line ends here.\nsecond line is lower.")).toEqual([
      "First line ends here.\nsecond line is lower.",
    ]);
    expect(raw("Title line\nNext Line")).toEqual(["Title line\nNext Line"]);
    expect(raw("Does the line end here?\nNext Line")).toEqual(["Does the line end here?", "Next Line"]);
    expect(raw("Is that $x$.\nNext Line")).toEqual(["Is that $x$.", "Next Line"]);
    expect(raw("We use e.g.\nthis one")).toEqual(["We use e.g.\nthis one"]);
  });

  it("starts a new sentence at every list item", () => {
    expect(raw("Items here\n- apple pie and\n- banana split\n* cherry\n+ date")).toEqual([
      "Items here",
      "- apple pie and",
      "- banana split",
      "* cherry",
      "+ date",
    ]);
    expect(raw("Steps\n1. first step here\n2. second step here\na) alpha\n(b) beta")).toEqual([
      "Steps",
      "1. first step here",
      "2. second step here",
      "a) alpha",
      "(b) beta",
    ]);
  });

  it("does not split after a numbered-list marker", () => {
    expect(raw("1. The first item! 2. Another")).toEqual(["1. The first item!", "2. Another"]);
    expect(raw("1. First item here\n2. Second item here")).toEqual(["1. First item here", "2. Second item here"]);
    expect(raw("a. Alpha case here")).toEqual(["a. Alpha case here"]);
    expect(raw("iv. Fourth case here")).toEqual(["iv. Fourth case here"]);
  });
});

describe("no split inside", () => {
  it("abbreviations", () => {
    // Where a period would otherwise cut (before markup, math or a quote) an abbreviation keeps it.
    expect(raw("Use a method, e.g. $x = 1$ works.")).toEqual(["Use a method, e.g. $x = 1$ works."]);
    expect(raw('That is, i.e. "X" holds.')).toHaveLength(1);
    expect(raw("Apples, pears, etc. **More** of them.")).toHaveLength(1);
    expect(raw("Apples, pears, plums. **More** of them.")).toHaveLength(2);
    expect(raw("Ask Dr. Smith and Mr. Jones? They know.")).toEqual(["Ask Dr. Smith and Mr. Jones?", "They know."]);
    expect(raw("It is approx. $3$ units! OK then.")).toEqual(["It is approx. $3$ units!", "OK then."]);
  });

  it("decimals", () => {
    expect(raw("The value is 3.14 exactly? Next thing here.")).toEqual([
      "The value is 3.14 exactly?",
      "Next thing here.",
    ]);
    expect(raw("Then 1.6875 + 2.5 = 4.1875 holds! Good.")).toEqual(["Then 1.6875 + 2.5 = 4.1875 holds!", "Good."]);
  });

  it("ellipses", () => {
    expect(raw("Wait... Let me think again.")).toEqual(["Wait... Let me think again."]);
    expect(raw("Hmm… Maybe not.")).toEqual(["Hmm… Maybe not."]);
  });

  it("parentheses and brackets, nested, with periods inside", () => {
    expect(raw("We try (see the note? It says X! (Really? Yes!) Ok?) and go on! Next one.")).toEqual([
      "We try (see the note? It says X! (Really? Yes!) Ok?) and go on!",
      "Next one.",
    ]);
    expect(raw("Take [a? B] and {c! D} now? Then stop.")).toEqual(["Take [a? B] and {c! D} now?", "Then stop."]);
    // A parenthesis may span a single newline.
    expect(raw("Consider (this is\nIt? Yes) the end.")).toEqual(["Consider (this is\nIt? Yes) the end."]);
  });

  it("unmatched brackets protect nothing", () => {
    expect(raw("Case 1) works fine! Next one too.")).toEqual(["Case 1) works fine!", "Next one too."]);
    expect(raw("The interval [0, 1) is open? Next we look.")).toEqual([
      "The interval [0, 1) is open?",
      "Next we look.",
    ]);
    expect(raw("An open ( paren? Then more text.")).toEqual(["An open ( paren?", "Then more text."]);
  });

  it("a paragraph break ends any open bracket", () => {
    expect(raw("Open (here.\n\nNew para) there.")).toEqual(["Open (here.", "New para) there."]);
  });

  it("inline math", () => {
    expect(raw("$x = 1.5$. Then we continue.")).toEqual(["$x = 1.5$.", "Then we continue."]);
    expect(raw("Let $a? B$ be given! Next.")).toEqual(["Let $a? B$ be given!", "Next."]);
    expect(raw("Let \\( a? B \\) be given! Next.")).toEqual(["Let \\( a? B \\) be given!", "Next."]);
    expect(raw("It costs $ 5! Then more.")).toEqual(["It costs $ 5!", "Then more."]);
  });

  it("inline code", () => {
    expect(raw("Call `a? B()` now! Then stop.")).toEqual(["Call `a? B()` now!", "Then stop."]);
    expect(raw("Call ``x` y? Z`` now! Then stop.")).toEqual(["Call ``x` y? Z`` now!", "Then stop."]);
  });

  it("URLs", () => {
    expect(raw("See https://example.com/a_(b)x?y=1! Then go (on? Yes).")).toEqual([
      "See https://example.com/a_(b)x?y=1!",
      "Then go (on? Yes).",
    ]);
    expect(raw("Visit www.example.org/Path! Then continue.")).toEqual([
      "Visit www.example.org/Path!",
      "Then continue.",
    ]);
    expect(raw("Open (http://x.org/a?b) now! Then stop.")).toEqual(["Open (http://x.org/a?b) now!", "Then stop."]);
  });
});

describe("atomic blocks", () => {
  it("fenced code with periods and blank lines inside", () => {
    const code = "```python\nx = 1. Then y\n\n# Comment. Another\nprint(x)\n```";
    expect(raw(`Here is code.\n${code}\nAfter the code.`)).toEqual(["Here is code.", code, "After the code."]);
    const tilde = "~~~\na. B\n\nc. D\n~~~";
    expect(raw(`Before it.\n\n${tilde}\n\nAfter it.`)).toEqual(["Before it.", tilde, "After it."]);
  });

  it("a closing fence may carry prose after it on its line", () => {
    const code = "```python\nif x:\n    y = 1. Z\n```";
    expect(raw(`The code is here.\n${code} else: we stop? Then more.`)).toEqual([
      "The code is here.",
      code,
      "else: we stop?",
      "Then more.",
    ]);
  });

  it("an unclosed fence runs to the end; a longer fence needs a long enough close", () => {
    expect(raw("Start here.\n```\nA. B\n\nC. D")).toEqual(["Start here.", "```\nA. B\n\nC. D"]);
    const f = "````\n```\nA. B\n````";
    expect(raw(`Text.\n${f}\nMore.`)).toEqual(["Text.", f, "More."]);
  });

  it("indented code after a blank line", () => {
    const code = "    x = 1. Then y\n\n    z = 2. Done";
    expect(raw(`Look at this.\n\n${code}\n\nAfter it.`)).toEqual(["Look at this.", code.trim(), "After it."]);
    const tab = "\tfoo(). Bar\n\tbaz";
    expect(raw(`Look.\n\n${tab}\nNext.`)).toEqual(["Look.", tab.trim(), "Next."]);
  });

  it("indentation under a list item is not code", () => {
    expect(raw("- item one\n\n    continued? Here it is")).toEqual(["- item one", "continued?", "Here it is"]);
  });

  it("display math: $$, \\[ \\], \\begin{...}\\end{...}", () => {
    const dd = "$$\nx = 1. Y = 2.\n\nZ = 3.\n$$";
    expect(raw(`Before.\n${dd}\nAfter.`)).toEqual(["Before.", dd, "After."]);
    const br = "\\[ a. B \\]";
    expect(raw(`Before.\n${br}\nAfter.`)).toEqual(["Before.", br, "After."]);
    const env = "\\begin{align}\na &= 1. \\\\\n\\begin{align}B\\end{align}\n\nb &= 2.\n\\end{align}";
    expect(raw(`Before.\n${env}\nAfter.`)).toEqual(["Before.", env, "After."]);
  });

  it("display math inside a sentence is protected but not cut out", () => {
    expect(raw("We get $$a? B$$ which is nice! Next.")).toEqual(["We get $$a? B$$ which is nice!", "Next."]);
  });

  it('"We have:" joins the display math after it', () => {
    expect(split("We have:\n$$\nx = 1.5\n$$")).toEqual(["We have:\n$$\nx = 1.5\n$$"]);
    expect(split("We have:\n\n\\[ x^2 + y^2 = 1 \\]\n\nThat is the unit circle here.")).toEqual([
      "We have:\n\n\\[ x^2 + y^2 = 1 \\]",
      "That is the unit circle here.",
    ]);
  });

  it("multi-line derivations are atomic", () => {
    const d = "x = a + b. Y\n= c + d\n= 42";
    expect(raw(`Compute the sum now.\n${d}\nThat is the final result.`)).toEqual([
      "Compute the sum now.",
      d,
      "That is the final result.",
    ]);
  });

  it("consecutive math lines across blank lines merge", () => {
    expect(
      split(
        "t squared is this.\n\n= 144*2 + 2*(12*3/4)\n\n= 288 + (72/4)*√6 + 27/16\n\n=288 +18√6 + 1.6875\n\nWait, that is odd.",
      ),
    ).toEqual([
      "t squared is this.",
      "= 144*2 + 2*(12*3/4)\n\n= 288 + (72/4)*√6 + 27/16\n\n=288 +18√6 + 1.6875",
      "Wait, that is odd.",
    ]);
  });
});

describe("isMathLine", () => {
  it.each([
    ["= 288 + 18√6", true],
    ["t = -12√2 - (3/4)√3", true],
    ["\\( 2\\sqrt{2} \\times \\frac{3}{4}t^2 = \\frac{3\\sqrt{2}}{2}t^2 \\)", true],
    ["$x^2$.", true],
    ["(12√2)^2 + (3/4√3)^2 + cross term.", true],
    ["\\implies x > 3", true],
    ["sqrt2 * t = sqrt2*(-12 sqrt2 - (3/4)√3 )", true],
    ["Wait 27/16 is 1.6875. Hmm, so", false],
    ["Equation2 is: 2√2 t² -4t +√3 =0.", false],
    ["- item with x = 2", false],
    ["1. \\( x = 2 \\)", false],
    ["# Heading = 2", false],
    ["Therefore the answer is 5", false],
    ["", false],
  ])("%s -> %s", (line, want) => {
    expect(isMathLine(line)).toBe(want);
  });
});

describe("merges", () => {
  it("a sentence ending in ':' joins the next", () => {
    expect(split("We have the following:\n\nx equals something big here.")).toEqual([
      "We have the following:\n\nx equals something big here.",
    ]);
    expect(split("**Final Answer:**\nThe value is exactly four.")).toEqual([
      "**Final Answer:**\nThe value is exactly four.",
    ]);
  });

  it("a unit opening with closing or leading punctuation joins the previous one", () => {
    expect(checked("Is that the value we want?\n\n) and more words here.", { minTokens: 0 }).sentences).toEqual([
      "Is that the value we want?\n\n) and more words here.",
    ]);
    expect(checked("Is that the value we want?\n\n: yes it is, I think.", { minTokens: 0 }).sentences).toHaveLength(1);
    expect(checked("Is that the value we want?\n\nYes it is, I think.", { minTokens: 0 }).sentences).toHaveLength(2);
  });

  it("a heading no longer joins the next paragraph (the reference has no such rule)", () => {
    // A heading line still runs into the line after it, since a single newline is a space.
    expect(split("Some long enough sentence is here?\n\n**Final Answer**\n\\boxed{ -12\\sqrt{2} }")).toEqual([
      "Some long enough sentence is here?",
      "**Final Answer**\n\\boxed{ -12\\sqrt{2} }",
    ]);
    expect(split("## Step two of the plan\n\nWe now do the second thing.")).toHaveLength(2);
  });

  it("an unfinished derivation takes the next math, and only math", () => {
    expect(split("First we expand the square (a+b)^2 =\n\na^2 + 2ab + b^2, which is what we want.")).toHaveLength(1);
    expect(split("The total sum of all terms =\n\nTwelve plus thirty here.")).toHaveLength(2);
    // A sentence ending in "," no longer joins the next (the reference has no such rule).
    expect(split("Expanding the square gives us,\n\nYes the long expression here.")).toHaveLength(2);
  });

  it("continuation words join the previous sentence when both are math", () => {
    const long = "and this sentence goes on with many more plain words ".repeat(3);
    expect(split(`We computed x^2 = 4 above ${long}.\n\nSo x = 2 or x = -2 ${long}.`)).toHaveLength(1);
    expect(split(`We computed x^2 = 4 above ${long}.\n\nThen x = 2 or x = -2 ${long}.`)).toHaveLength(1);
    // Whole words only, and never in prose.
    expect(split(`We computed x^2 = 4 above ${long}.\n\nSolving x = 2 or x = -2 ${long}.`)).toHaveLength(2);
    expect(split("We computed everything carefully above.\n\nSo, we are done here.")).toHaveLength(2);
    expect(split("We computed everything carefully above.\n\nThus the value is positive.")).toHaveLength(2);
  });

  it("list items follow list items", () => {
    expect(split("Some plan we will now follow:\n\n- first we do one thing\n- then another thing")).toHaveLength(1);
    expect(split("We look at the cases in turn.\n\n1. first case is here\n\n2. second case is here")).toEqual([
      "We look at the cases in turn.",
      "1. first case is here\n\n2. second case is here",
    ]);
  });

  it("algorithm steps and accumulator updates chain", () => {
    expect(split("If the list is empty we stop right here.\n\nReturn the value we have found.")).toHaveLength(1);
    expect(split("We go over the list once.\n\nIf the list is empty we stop right here.")).toHaveLength(2);
    expect(split("Then the total = 0 at the start.\n\nWhile items remain we add each of them.")).toHaveLength(1);
  });

  it("short computations merge; a long sentence does not", () => {
    expect(split("Now x = 3 holds here!\n\nAnd y = 4 holds too.")).toEqual([
      "Now x = 3 holds here!\n\nAnd y = 4 holds too.",
    ]);
    const long = "word ".repeat(30);
    expect(split(`Now x = 3 holds here ${long}!\n\nAnd y = 4 holds too.`)).toHaveLength(2);
    expect(split("Now x = 3 holds here!\n\nAnd that is all for now.")).toHaveLength(2);
  });

  it("short fragments join the previous sentence, or the next when first", () => {
    expect(split("Hmm.\n\nThis is a long enough sentence here.")).toEqual([
      "Hmm.\n\nThis is a long enough sentence here.",
    ]);
    expect(split("Is this a long enough sentence here? Okay.")).toEqual(["Is this a long enough sentence here? Okay."]);
    expect(split("Hmm? Ok! Yes.")).toEqual(["Hmm? Ok! Yes."]);
    expect(split("One two three four five! Six seven eight nine ten.")).toHaveLength(2);
  });

  it("uses the countTokens hook and minTokens", () => {
    const text = "Hmm.\n\nThis is long enough! Ok.\n\nAnother one here.";
    expect(checked(text, { countTokens: () => 100 }).sentences).toEqual([
      "Hmm.",
      "This is long enough!",
      "Ok.",
      "Another one here.",
    ]);
    expect(checked(text, { countTokens: () => 1 }).sentences).toEqual([text]);
    expect(checked(text, { minTokens: 3 }).sentences).toEqual([
      "Hmm.\n\nThis is long enough! Ok.",
      "Another one here.",
    ]);
  });

  it("an over-long unit is cut at its periods between words; merges never grow past maxTokens", () => {
    const prose = Array.from({ length: 40 }, (_, k) => `Step ${k} adds two and three to get five`).join(". ") + ".";
    expect(split(prose)).toHaveLength(1); // ~400 estimated tokens: under DEFAULT_MAX_SENTENCE_TOKENS
    const capped = checked(prose, { maxTokens: 50 }).sentences;
    expect(capped).toHaveLength(40);
    expect(capped[1]).toBe("Step 1 adds two and three to get five.");
    const chain = Array.from({ length: 30 }, (_, k) => `x_${k} = ${k} + 1`).join("\n\n");
    expect(split(chain)).toHaveLength(1);
    const chained = checked(chain, { maxTokens: 20 }).sentences;
    expect(chained.length).toBeGreaterThan(5);
    for (const t of chained) expect(estimateTokens(t)).toBeLessThanOrEqual(20);
  });

  it("consecutive math sentences merge", () => {
    expect(
      split("We now compute it step by step.\n\nx = 1 + 2 + 3\n\ny = x * 2 + 1\n\nNow we check the result."),
    ).toEqual(["We now compute it step by step.", "x = 1 + 2 + 3\n\ny = x * 2 + 1", "Now we check the result."]);
  });
});

describe("estimateTokens", () => {
  it("counts word runs and punctuation", () => {
    expect(estimateTokens("")).toBe(0);
    expect(estimateTokens("Hello, world!")).toBe(4);
    expect(estimateTokens("x = 3.14")).toBe(5);
    expect(estimateTokens("√2 über")).toBe(3);
  });
});

describe("naive split", () => {
  it("splits on [.?!] + whitespace and on newlines", () => {
    expect(naiveSplit("A b. C d? E\nF (g. H)\n\n1. x")).toEqual(["A b.", "C d?", "E", "F (g.", "H)", "1.", "x"]);
    expect(naiveBoundaryCount("A b. C d? E\nF")).toBe(3);
    expect(naiveBoundaryCount("")).toBe(0);
  });

  it("splitStats compares the two", () => {
    const s = splitStats("<think>We have:\n\nx = 1.\n\ny = 2.\n\nTherefore, done! Good.</think>answer");
    expect(s.naiveSentences).toBe(5);
    expect(s.sentences).toBe(1);
    expect(s.naiveBoundaries).toBe(4);
    expect(s.boundaries).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Property tests

const TRICKY = [..."abcXYZ019 .?!:,;\n\n\t()[]{}$`\\~#*-_=+'\"…√"].concat([
  "```",
  "$$",
  "\\(",
  "\\)",
  "\\[",
  "\\]",
  "e.g. ",
  "\n\n",
  "    ",
  "\\begin{align}",
  "\\end{align}",
  "1. ",
  "- ",
  "http://a.b/c. ",
  "Therefore, ",
  "<think>",
  "</think>",
]);

describe("property: partition", () => {
  it("arbitrary text is partitioned exactly", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...TRICKY), { maxLength: 80 }),
        fc.integer({ min: 0, max: 8 }),
        (parts, minTokens) => {
          const text = parts.join("");
          assertPartition(text, splitSentences(text, { minTokens }));
        },
      ),
      { numRuns: 600 },
    );
  });

  it("arbitrary unicode strings are partitioned exactly", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 200 }), (text) => {
        assertPartition(text, splitSentences(text));
      }),
      { numRuns: 300 },
    );
  });
});

/** A generated text piece; `protected` ones must never be cut. */
interface Piece {
  text: string;
  protected: boolean;
}

const word = fc.constantFrom(
  "the",
  "We",
  "x",
  "value",
  "is",
  "Then",
  "so",
  "e.g.",
  "3.14",
  "1.",
  "Dr.",
  "etc.",
  "ok",
  "A",
  "b",
  "Next",
  "i.e.",
);
const punct = fc.constantFrom("", "", ".", "?", "!", ",", ":", "...");
const prose = fc
  .array(fc.tuple(word, punct), { minLength: 1, maxLength: 8 })
  .map((ws) => ws.map(([w, p]) => w + p).join(" "));
/** Inner text with periods, capitals and single newlines but no blank line (allowed inside brackets). */
const inner = fc.array(fc.oneof(prose, fc.constant("\n")), { minLength: 1, maxLength: 4 }).map(
  (xs) =>
    xs
      .join(" ")
      .replace(/\n\s*\n/g, "\n")
      .trim() || "x",
);

const pieceArb: fc.Arbitrary<Piece[]> = fc.oneof(
  prose.map((t) => [{ text: t, protected: false }]),
  fc.constantFrom("\n", "\n\n", " ", "\n- ", "\n1. ").map((t) => [{ text: t, protected: false }]),
  fc.array(prose, { minLength: 1, maxLength: 3 }).map((ls) => [
    // (indentation right after a list item would be the item's continuation, not code)
    { text: "\n\nCode follows\n\n", protected: false },
    { text: ls.map((l) => "    " + l).join("\n"), protected: true },
    { text: "\n\n", protected: false },
  ]),
  inner.map((t) => [{ text: ` (${t}. Then (nested. X) y.)`, protected: true }]),
  inner.map((t) => [{ text: ` [${t}. Z]`, protected: true }]),
  inner.map((t) => [{ text: ` $${t.replace(/\n/g, " ")}. Q$`, protected: true }]),
  fc.array(fc.oneof(prose, fc.constantFrom("", "x = 1. Y", "a.b")), { minLength: 1, maxLength: 5 }).map((ls) => [
    { text: "\n", protected: false },
    { text: "```js\n" + ls.join("\n") + "\n\nDone. Ok\n```", protected: true },
    { text: "\n", protected: false },
  ]),
  fc.array(fc.oneof(prose, fc.constantFrom("", "x = 1. Y")), { minLength: 1, maxLength: 5 }).map((ls) => [
    { text: "\n", protected: false },
    { text: "$$\n" + ls.join("\n") + "\n$$", protected: true },
    { text: "\n", protected: false },
  ]),
  inner.map((t) => [{ text: ` \\[ ${t}. W \\]`, protected: true }]),
  fc.array(prose, { minLength: 1, maxLength: 3 }).map((ls) => [
    { text: "\n", protected: false },
    { text: "\\begin{align}\n" + ls.join("\n\n") + "\n\\end{align}", protected: true },
    { text: "\n", protected: false },
  ]),
);

describe("property: structure", () => {
  it("never cuts inside code fences, display math, inline math or brackets", () => {
    fc.assert(
      fc.property(
        fc.array(pieceArb, { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 6 }),
        (groups, think, minTokens) => {
          const pieces = groups.flat();
          let text = think ? "<think>" : "";
          const ranges: [number, number][] = [];
          for (const p of pieces) {
            if (p.protected) {
              // Protected pieces start after whitespace so that the range begins with a non-space char.
              const t = p.text.replace(/^\s+/, "");
              text += p.text.slice(0, p.text.length - t.length);
              ranges.push([text.length, text.length + t.length]);
              text += t;
            } else {
              text += p.text;
            }
          }
          if (think) text += "\n</think>\nThe answer. Is here.";
          const r = splitSentences(text, { minTokens });
          assertPartition(text, r);
          for (const [a, b] of ranges) {
            const inside = r.spans.some(([s, e]) => s <= a && b <= e);
            if (!inside)
              throw new Error(
                `cut inside protected ${JSON.stringify(text.slice(a, b))} of ${JSON.stringify(text)}: ${JSON.stringify(r.sentences)}`,
              );
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("performance", () => {
  it("splits ~40K chars of structured text quickly (linear-ish)", () => {
    const unit =
      "Let me compute (a + b. C) first. We have:\n\n$$x = 1.5$$\n\n= 3 + 4\n= 7\n\nTherefore, e.g. this works. " +
      "Check \\( y = 2 \\). Then next.\n\n```\ncode. Here\n```\n\n- item one\n- item two\n\n";
    const small = unit.repeat(100);
    const big = unit.repeat(400);
    const best = (text: string) => {
      let ms = Infinity;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        splitSentences(text);
        ms = Math.min(ms, performance.now() - t0);
      }
      return ms;
    };
    const tSmall = best(small);
    const tBig = best(big);
    expect(splitSentences(big).sentences.length).toBeGreaterThan(400);
    // Generous bounds (shared CI machines): the point is that 4x the input does not take ~16x the time.
    expect(tBig).toBeLessThan(Math.max(250, tSmall * 12));
  });
});

describeWithReference("reference trace (raw_trace_example.jsonl)", () => {
  const record = JSON.parse(readFileSync(referencePath("raw_trace_example.jsonl"), "utf8").split("\n")[0]) as {
    cot: string;
  };

  it("reduces boundaries 1.7-3.5x vs naive splitting (the reference splitter: 3.3x on this trace), fast", () => {
    const text = record.cot;
    const r = checked(text);
    expect(r.region[1]).toBe(text.indexOf("</think>"));
    const stats = splitStats(text);
    splitSentences(text);
    const t0 = performance.now();
    const runs = 10;
    for (let i = 0; i < runs; i++) splitSentences(text);
    const ms = (performance.now() - t0) / runs;
    console.log(
      `[split] reference trace: ${stats.chars} chars; naive ${stats.naiveSentences} sentences / ${stats.naiveBoundaries} boundaries; ` +
        `ours ${stats.sentences} / ${stats.boundaries} (${stats.reduction.toFixed(2)}x fewer); ${ms.toFixed(2)} ms per split (warm)`,
    );
    expect(stats.reduction).toBeGreaterThan(1.7);
    expect(stats.reduction).toBeLessThan(3.5);
    expect(ms).toBeLessThan(100);
    // Structure is respected: no sentence but the last ends with a colon.
    for (const s of r.sentences.slice(0, -1)) expect(s).not.toMatch(/:$/);
  });

  it("gives similar counts with the Qwen3 tokenizer for the short-fragment rule", () => {
    const tok = loadTokenizer();
    const stats = splitStats(record.cot, { countTokens: (t) => tok.count(t) });
    const est = splitStats(record.cot);
    console.log(
      `[split] reference trace with the Qwen3 tokenizer: ours ${stats.sentences} sentences (${stats.reduction.toFixed(2)}x fewer boundaries than naive)`,
    );
    expect(Math.abs(stats.sentences - est.sentences)).toBeLessThan(est.sentences * 0.1);
  });
});
