import type { Command } from "commander";
import { readStdin, parseJson, writeJson } from "./io.js";
import { parseKvSimulateInput, simulateKv } from "../kv/simulate.js";
import { resolveArchitecture } from "../kv/resolve.js";
import { ARCHITECTURE_PRESETS, bytesPerToken } from "../kv/architecture.js";

export function register(program: Command): void {
  const kv = program.command("kv").description("KV-cache simulation and accounting");

  kv.command("simulate")
    .description(
      "replay ONE JSON object from stdin {tokens, promptLength, specialTokens, masking} through the block tracker; " +
        "print {compactions, peakTokens, finalTokens, aucTokens, ...}",
    )
    .option(
      "-a, --architecture <name|config.json>",
      `add bytes for an architecture (${Object.keys(ARCHITECTURE_PRESETS).join(", ")}, or a config.json)`,
    )
    .option("--trajectory", "include the resident count after every output token")
    .option("--pretty", "indent the JSON output")
    .action(async (opts: { architecture?: string; trajectory?: boolean; pretty?: boolean }) => {
      const input = parseKvSimulateInput(parseJson(await readStdin(), "stdin"));
      const archSpec = opts.architecture ?? input.architecture;
      const result = simulateKv(input.tokens, input.promptLength, input.specialTokens, input.maskingConfig, {
        architecture: archSpec === undefined ? undefined : resolveArchitecture(archSpec),
        trajectory: opts.trajectory ?? input.trajectory ?? false,
      });
      writeJson(result, opts.pretty);
    });

  kv.command("arch")
    .description("print the KV bytes per token of an architecture preset or config.json")
    .argument("[spec]", "preset name or config.json path; all presets when omitted")
    .action((spec?: string) => {
      const archs = spec ? [resolveArchitecture(spec)] : Object.values(ARCHITECTURE_PRESETS);
      for (const a of archs) {
        const sw = a.slidingWindow
          ? `, ${a.slidingWindow.layers} sliding-window layers (window ${a.slidingWindow.window})`
          : "";
        process.stdout.write(
          `${a.name}: ${a.layers} layers x ${a.kvHeads} KV heads x ${a.headDim} dim x ${a.bytesPerElement} B = ${bytesPerToken(a)} B/token (${(bytesPerToken(a) / 1024).toFixed(0)} KiB)${sw}\n`,
        );
      }
    });
}
