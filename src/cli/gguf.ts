import type { Command } from "commander";
import { UserError } from "../errors.js";
import { exportCheckpointToGguf, type ExportGgufReport } from "../model/gguf.js";
import { writeJson } from "./io.js";
import { modelCommand } from "./model.js";

interface ExportGgufCliOptions {
  dtype: string;
  tokenizer?: string;
  name?: string;
  json?: boolean;
}

/** The one-line summary printed by `memento model export-gguf` (exported for tests). */
export function formatExportGgufReport(r: ExportGgufReport): string {
  const mib = (r.bytes / (1 << 20)).toFixed(1);
  return (
    `wrote ${r.output} (${mib} MiB, GGUF v3, qwen3, ${r.tensors} tensors ${r.dtype}, vocab ${r.vocabSize} with ${r.tokenizerTokens} tokenizer tokens, ` +
    `${r.tiedEmbeddings ? "tied" : "untied"} embeddings)`
  );
}

/** `memento model export-gguf DIR OUT.gguf`: a Hugging Face Qwen3 checkpoint to GGUF for llama.cpp. */
export function register(program: Command): void {
  modelCommand(program)
    .command("export-gguf")
    .description(
      "export a Hugging Face Qwen3 checkpoint DIR (config.json, safetensors, tokenizer.json) to one GGUF v3 file for llama.cpp / " +
        "node-llama-cpp: qwen3 metadata, llama.cpp tensor names, gpt2-style vocabulary; tensors are streamed",
    )
    .argument("<dir>", "checkpoint directory")
    .argument("<out>", "output .gguf file")
    .option("--dtype <type>", "storage type of the 2-D weights: F32 or F16 (norms stay F32)", "F32")
    .option("--tokenizer <dir>", "directory with tokenizer.json / tokenizer_config.json (default: DIR)")
    .option("--name <name>", "general.name of the model")
    .option("--json", "print the report as JSON")
    .exitOverride()
    .action((dir: string, out: string, opts: ExportGgufCliOptions) => {
      const dtype = opts.dtype.toUpperCase();
      if (dtype !== "F32" && dtype !== "F16") throw new UserError(`--dtype must be F32 or F16, got ${JSON.stringify(opts.dtype)}`);
      const report = exportCheckpointToGguf(dir, out, { dtype, tokenizerDir: opts.tokenizer, name: opts.name });
      if (opts.json) writeJson(report, true);
      else process.stdout.write(formatExportGgufReport(report) + "\n");
    });
}
