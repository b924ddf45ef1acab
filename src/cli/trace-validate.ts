import type { Command } from "commander";
import { checkOpenMementosRow, checkRowConsistency, type OpenMementosRow } from "../format/openmementos.js";
import { type LoadedResponses, loadResponses } from "../format/load.js";
import { checkReferenceTrace, type ReferenceTrace } from "../format/reference.js";
import { validateResponse } from "../format/validate.js";
import { commandGroup } from "./group.js";

/** The `trace` command group: returns the existing one or creates it (other `trace` subcommands share it). */
export function traceCommand(program: Command): Command {
  return commandGroup(program, "trace", "inspect Memento reasoning traces");
}

export interface TraceValidateOptions {
  /** Accept responses that omit the leading <think>. */
  allowMissingThink?: boolean;
  /** Print warnings too (they never change the exit code). */
  warnings?: boolean;
}

export interface TraceValidateReport {
  /** 0 valid, 1 at least one error. */
  exitCode: 0 | 1;
  /** Diagnostic lines, `FILE:line:col: code: message`. */
  lines: string[];
  responses: number;
  errors: number;
  warnings: number;
}

/**
 * Validates every response of a loaded file. For a text file, line:col are positions in the file. For the JSON
 * kinds, line is the line where the record starts (1 for a single JSON document), col is 1, and the message ends
 * with the position inside the response text; for segments files that text is the canonical rebuild.
 */
export function validateLoaded(
  file: string,
  loaded: LoadedResponses,
  options: TraceValidateOptions = {},
): TraceValidateReport {
  const lines: string[] = [];
  let errors = 0;
  let warnings = 0;
  const emit = (line: number, col: number, code: string, severity: "error" | "warning", message: string): void => {
    if (severity === "error") errors++;
    else warnings++;
    if (severity === "warning" && !options.warnings) return;
    lines.push(`${file}:${line}:${col}: ${code}: ${severity === "warning" ? "warning: " : ""}${message}`);
  };

  for (const r of loaded.responses) {
    const where = loaded.kind === "text" ? "" : loaded.responses.length > 1 ? `response ${r.id}, ` : "";
    if (loaded.kind === "openmementos") {
      const issues = checkOpenMementosRow(r.record);
      for (const i of issues)
        emit(
          r.line,
          1,
          "row_schema",
          "error",
          `${where ? `row ${r.id}: ` : ""}${i.path ? i.path + ": " : ""}${i.message}`,
        );
      if (issues.length === 0) {
        for (const i of checkRowConsistency(r.record as OpenMementosRow))
          emit(r.line, 1, "row_mismatch", "error", `${where ? `row ${r.id}: ` : ""}${i.message}`);
      }
    } else if (loaded.kind === "segments") {
      for (const i of checkReferenceTrace(r.record as ReferenceTrace)) emit(r.line, 1, i.code, i.severity, i.message);
    }
    const result = validateResponse(r.text, { allowMissingThinkStart: options.allowMissingThink });
    for (const d of result.diagnostics) {
      if (loaded.kind === "text") emit(d.line, d.column, d.code, d.severity, d.message);
      else emit(r.line, 1, d.code, d.severity, `${d.message} (${where}response line ${d.line}, column ${d.column})`);
    }
  }
  return { exitCode: errors > 0 ? 1 : 0, lines, responses: loaded.responses.length, errors, warnings };
}

/** `memento trace validate FILE`: prints diagnostics to stdout, a summary to stderr, returns the exit code. */
export function runTraceValidate(file: string, options: TraceValidateOptions = {}): number {
  const loaded = loadResponses(file); // UserError -> exit 2
  const report = validateLoaded(file, loaded, options);
  if (report.lines.length) process.stdout.write(report.lines.join("\n") + "\n");
  process.stderr.write(
    `${file}: ${loaded.kind}, ${report.responses} response${report.responses === 1 ? "" : "s"}, ${report.errors} error${report.errors === 1 ? "" : "s"}, ${report.warnings} warning${report.warnings === 1 ? "" : "s"}\n`,
  );
  return report.exitCode;
}

export function register(program: Command): void {
  traceCommand(program)
    .command("validate")
    .description(
      "check the Memento format of FILE: a response text file, a JSONL of OpenMementos rows or of {response} objects, " +
        "or a segments JSON; prints FILE:line:col: code: message per problem; exits 1 on errors, 2 on unreadable input",
    )
    .argument("<file>", "file to validate")
    .option("--allow-missing-think", "accept responses without the leading <think> (prompt ended with <think>)")
    .option("--warnings", "also print warnings (empty blocks/mementos, no blocks)")
    .action((file: string, opts: { allowMissingThink?: boolean; warnings?: boolean }) => {
      const code = runTraceValidate(file, opts);
      // main() returns 0 after a successful parse; the exit status travels through process.exitCode.
      if (code !== 0) process.exitCode = code;
    });
}
