import type { Command } from "commander";
import { ensureOutputFile } from "../io/files.js";
import { exportCheckpointToGguf, type ExportGgufReport } from "../model/gguf.js";
import { writeJson } from "./io.js";
import { modelCommand } from "./model.js";
import { choiceOption, pathOption } from "./options.js";

interface ExportGgufCliOptions {
  dtype: "F32" | "F16";
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
    .addOption(
      choiceOption("--dtype <type>", "storage type of the 2-D weights (norms stay F32)", ["F32", "F16"], {
        ignoreCase: true,
      }).default("F32"),
    )
    .addOption(pathOption("--tokenizer <dir>", "directory with tokenizer.json / tokenizer_config.json (default: DIR)"))
    .option("--name <name>", "general.name of the model")
    .option("--json", "print the report as JSON")
    .exitOverride()
    .action((dir: string, out: string, opts: ExportGgufCliOptions) => {
      ensureOutputFile(out, "OUT");
      const exportOptions = { dtype: opts.dtype, tokenizerDir: opts.tokenizer, name: opts.name };
      const report = exportCheckpointToGguf(dir, out, exportOptions);
      if (opts.json) writeJson(report, true);
      else process.stdout.write(formatExportGgufReport(report) + "\n");
    });
}
