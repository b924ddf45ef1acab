/**
 * `memento trace stats`: per trace, its Memento structure (blocks, block and memento tokens, compression) and
 * its KV cost with block masking against the same tokens under full attention.
 *
 * 1. Token counts come from the block tracker over the real token stream, so they are what the engine evicts.
 * 2. A file is a Memento trace only if at least one of its responses holds a Memento marker
 *    (`requireMementoTraces`); anything else is a user error, never a row of "0 blocks".
 */
import { BlockTracker } from "../masking/tracker.js";
import { DEFAULT_MASKING, resolveMasking, trackerIdsOf, type MaskingConfig } from "../masking/config.js";
import type { MementoTokenizer } from "../format/tokenizer.js";
import { encodeChat } from "../format/chat.js";
import { simulateKv, type KvSimulationResult } from "./simulate.js";
import { ARCHITECTURE_PRESETS, type KvArchitecture } from "./architecture.js";
import { median } from "../util/stats.js";
import { UserError } from "../errors.js";
import { MEMENTO_SPECIAL_TOKENS } from "../format/tokens.js";

export interface TraceInput {
  id: string;
  /** The assistant response, Memento markers included. */
  text: string;
  /** The user problem; when present the KV replay starts with its Memento chat prompt. */
  problem?: string;
}

export interface KvSummary {
  peakTokens: number;
  aucTokens: number;
  finalTokens: number;
  peakGB: number;
  aucGBxKtok: number;
}

export interface TraceStats {
  id: string;
  promptTokens: number;
  outputTokens: number;
  /** Completed blocks (with a closed memento) generated in the response. */
  blocks: number;
  blockTokens: number[];
  mementoTokens: number[];
  /** Memento tokens / block tokens, per block. */
  compression: number[];
  /** Sum of memento tokens / sum of block tokens. */
  overallCompression: number;
  evictions: number;
  memento: KvSummary;
  vanilla: KvSummary;
  /** vanilla / memento: how many times lower Memento's peak and AUC are. */
  peakReduction: number;
  aucReduction: number;
}

export interface TraceStatsOptions {
  tokenizer: MementoTokenizer;
  masking?: Partial<MaskingConfig>;
  architecture?: KvArchitecture;
}

function summarise(r: KvSimulationResult): KvSummary {
  return {
    peakTokens: r.peakTokens,
    aucTokens: r.aucTokens,
    finalTokens: r.finalTokens,
    peakGB: r.bytes?.peakGB ?? 0,
    aucGBxKtok: r.bytes?.aucGBxKtok ?? 0,
  };
}

/**
 * Throws a one-line UserError unless some response of `source` holds a Memento marker (`<|block_start|>`,
 * `<|summary_start|>`, ...): an empty file, a plain text or a vanilla response has no blocks to measure.
 */
export function requireMementoTraces(responses: readonly { text: string }[], source: string): void {
  if (responses.every((r) => r.text.trim() === "")) throw new UserError(`${source}: empty, no response to measure`);
  if (responses.some((r) => MEMENTO_SPECIAL_TOKENS.some((m) => r.text.includes(m)))) return;
  const what = responses.length === 1 ? "it" : `any of its ${responses.length} responses`;
  throw new UserError(
    `${source}: no Memento marker (${MEMENTO_SPECIAL_TOKENS.join(", ")}) in ${what}; not a Memento trace`,
  );
}

/**
 * Tokenises one response (after its chat prompt, when the problem is known) and measures its Memento
 * structure and its KV cost with block masking against the same tokens under full attention.
 */
export function traceStats(input: TraceInput, options: TraceStatsOptions): TraceStats {
  const tok = options.tokenizer;
  const architecture = options.architecture ?? ARCHITECTURE_PRESETS["qwen3-8b"];
  const prompt = input.problem ? encodeChat([{ role: "user", content: input.problem }], { tokenizer: tok }).ids : [];
  const tokens = prompt.concat(tok.encode(input.text));
  // With a chat prompt, markers quoted in the problem must not count: track from `<|im_start|>assistant` on.
  const masking = resolveMasking({
    keepLastNBlocks: 0,
    ...options.masking,
    requireAssistantSection: prompt.length > 0,
  });
  const special = trackerIdsOf(tok);

  const mem = simulateKv(tokens, prompt.length, special, masking, { architecture });
  const van = simulateKv(tokens, prompt.length, special, { ...masking, keepLastNBlocks: -1 }, { architecture });

  const tracker = new BlockTracker(masking, special);
  tokens.forEach((t, i) => {
    tracker.push(t, i < prompt.length);
  });
  const blockTokens: number[] = [];
  const mementoTokens: number[] = [];
  for (const b of tracker.blocks) {
    if (b.inPrompt || b.end === undefined || b.summaryStart === undefined || b.summaryEnd === undefined) continue;
    blockTokens.push(b.end - b.start - 1);
    mementoTokens.push(b.summaryEnd - b.summaryStart - 1);
  }
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    id: input.id,
    promptTokens: prompt.length,
    outputTokens: tokens.length - prompt.length,
    blocks: blockTokens.length,
    blockTokens,
    mementoTokens,
    compression: blockTokens.map((b, i) => (b > 0 ? mementoTokens[i] / b : 0)),
    overallCompression: sum(blockTokens) > 0 ? sum(mementoTokens) / sum(blockTokens) : 0,
    evictions: mem.compactions.length,
    memento: summarise(mem),
    vanilla: summarise(van),
    peakReduction: van.peakTokens / Math.max(1, mem.peakTokens),
    aucReduction: van.aucTokens / Math.max(1, mem.aucTokens),
  };
}

/** The masking settings that differ from the defaults, after keepLastNBlocks (e.g. "keepLastNBlocks 1, restartMode"). */
function describeMasking(partial: Partial<MaskingConfig>): string {
  const m = resolveMasking(partial);
  const changed = (Object.keys(DEFAULT_MASKING) as (keyof MaskingConfig)[]).filter(
    (k) => k !== "keepLastNBlocks" && m[k] !== DEFAULT_MASKING[k],
  );
  return [`keepLastNBlocks ${m.keepLastNBlocks}`, ...changed.map((k) => (m[k] === true ? k : `${k} ${m[k]}`))].join(
    ", ",
  );
}

/** A fixed-width table of per-trace statistics and the medians over all traces. */
export function formatTraceStatsTable(
  stats: readonly TraceStats[],
  architecture: string,
  masking: Partial<MaskingConfig> = {},
): string {
  const head = [
    "trace",
    "blocks",
    "med block tok",
    "med memento tok",
    "compress",
    "peak KV mem/van (tok)",
    "peak x",
    "AUC x",
    `peak GB mem/van`,
  ];
  const rows = stats.map((s) => [
    s.id,
    String(s.blocks),
    median(s.blockTokens).toFixed(0),
    median(s.mementoTokens).toFixed(0),
    s.overallCompression.toFixed(3),
    `${s.memento.peakTokens}/${s.vanilla.peakTokens}`,
    s.peakReduction.toFixed(2),
    s.aucReduction.toFixed(2),
    `${s.memento.peakGB.toFixed(3)}/${s.vanilla.peakGB.toFixed(3)}`,
  ]);
  if (stats.length > 1) {
    rows.push([
      "median",
      median(stats.map((s) => s.blocks)).toFixed(1),
      median(stats.flatMap((s) => s.blockTokens)).toFixed(0),
      median(stats.flatMap((s) => s.mementoTokens)).toFixed(0),
      median(stats.map((s) => s.overallCompression)).toFixed(3),
      `${median(stats.map((s) => s.memento.peakTokens))}/${median(stats.map((s) => s.vanilla.peakTokens))}`,
      median(stats.map((s) => s.peakReduction)).toFixed(2),
      median(stats.map((s) => s.aucReduction)).toFixed(2),
      `${median(stats.map((s) => s.memento.peakGB)).toFixed(3)}/${median(stats.map((s) => s.vanilla.peakGB)).toFixed(3)}`,
    ]);
  }
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join("  ");
  return [
    `KV for ${architecture}; memento = ${describeMasking(masking)}, vanilla = full attention`,
    line(head),
    ...rows.map(line),
  ].join("\n");
}
