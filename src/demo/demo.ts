import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseResponse } from "../format/response.js";
import { validateResponse } from "../format/validate.js";
import { loadTokenizer } from "../format/tokenizer.js";
import { encodeChat } from "../format/chat.js";
import { simulateKv } from "../kv/simulate.js";
import { ARCHITECTURE_PRESETS, bytesPerToken } from "../kv/architecture.js";
import { trackerIdsOf, resolveMasking } from "../masking/config.js";
import { renderKvChart } from "../kv/chart.js";

/** The sample shipped with the package: a Memento response written for this project. */
export const SAMPLE_PROBLEM = "How many zeros does 100! end with when it is written in base 12?";
export const SAMPLE_RESPONSE_PATH = fileURLToPath(new URL("../../assets/sample-response.txt", import.meta.url));

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : flat.slice(0, max - 1) + "…";
}

/**
 * The main job until a trained model ships: parse a Memento response, show its blocks and mementos,
 * and replay it through the block tracker to show the KV sawtooth next to full attention.
 */
export function runDemo(options: { responsePath?: string; problem?: string; width?: number } = {}): string {
  const path = options.responsePath ?? SAMPLE_RESPONSE_PATH;
  const problem = options.problem ?? (options.responsePath ? undefined : SAMPLE_PROBLEM);
  const text = readFileSync(path, "utf8");
  const parsed = parseResponse(text);
  const { diagnostics } = validateResponse(parsed);
  const tok = loadTokenizer();
  const out: string[] = [];

  out.push(
    `MEMENTO demo — ${options.responsePath ? path : "assets/sample-response.txt (a response written for this project)"}`,
  );
  if (problem) out.push(`Problem: ${problem}`);
  out.push(
    diagnostics.length === 0
      ? "Format: valid Memento response"
      : `Format: ${diagnostics.length} problem(s), first: ${diagnostics[0].code}: ${diagnostics[0].message}`,
  );
  out.push("");

  for (const block of parsed.blocks) {
    const blockTokens = tok.count(block.text);
    out.push(`Block ${block.index + 1} (${blockTokens} tokens): ${clip(block.text, 90)}`);
    const memento = block.mementoIndex === null ? undefined : parsed.mementos[block.mementoIndex];
    if (memento) {
      const mTokens = tok.count(memento.text);
      out.push(
        `  memento (${mTokens} tokens, ${((100 * mTokens) / Math.max(1, blockTokens)).toFixed(0)}% of the block): ${clip(memento.text, 160)}`,
      );
    } else {
      out.push("  (no memento)");
    }
  }
  if (parsed.answer) out.push("", `Answer: ${clip(parsed.answer.text, 200)}`);

  const prompt = problem ? encodeChat([{ role: "user", content: problem }], { tokenizer: tok }).ids : [];
  const tokens = prompt.concat(tok.encode(text));
  const special = trackerIdsOf(tok);
  const arch = ARCHITECTURE_PRESETS["qwen3-8b"];
  const opts = { architecture: arch, trajectory: true };
  const mem = simulateKv(tokens, prompt.length, special, resolveMasking({ keepLastNBlocks: 0 }), opts);
  const van = simulateKv(tokens, prompt.length, special, resolveMasking({ keepLastNBlocks: -1 }), opts);
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

  out.push("");
  out.push(
    `KV cache replay: ${prompt.length} prompt + ${tokens.length - prompt.length} output tokens (Qwen3 tokenizer), ${arch.name} at ${bytesPerToken(arch) / 1024} KiB/token`,
  );
  out.push(
    `  full attention : peak ${van.peakTokens} tokens (${mb(van.bytes!.peakBytes)}), AUC ${van.aucTokens} token-steps`,
  );
  out.push(
    `  memento (keep 0): peak ${mem.peakTokens} tokens (${mb(mem.bytes!.peakBytes)}), AUC ${mem.aucTokens} token-steps, ${mem.compactions.length} blocks evicted`,
  );
  out.push(
    `  => ${(van.peakTokens / mem.peakTokens).toFixed(2)}x lower peak, ${(van.aucTokens / mem.aucTokens).toFixed(2)}x lower AUC`,
  );
  out.push("");
  out.push(
    renderKvChart({ memento: mem.trajectory!, vanilla: van.trajectory! }, { width: options.width ?? 64, height: 10 }),
  );
  out.push("");
  out.push("Try: memento trace stats FILE | memento kv simulate < input.json | memento --help");
  return out.join("\n");
}
