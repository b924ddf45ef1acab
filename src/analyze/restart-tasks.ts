/**
 * Problem sets for the restart ablation: the toy task's held-out problems as tokenized `AblationProblem`s, read
 * from the generator or from a JSONL file.
 *
 * 1. Default set: `generateHeldOut(DEFAULT_RESTART_PROBLEMS)`, the 200 held-out problems `memento demo --json`
 *    and `assets/toy-benchmark.jsonl` hold.
 * 2. A file gives one JSON object per line whose `problem` (or `prompt`) is a toy prompt (`s=3714 k=6`); the
 *    benchmark's own rows fit. A line that is not such an object is a UserError naming the line.
 * 3. Each problem is the chat prompt the model was trained on, graded by the toy task's checker (the answer's
 *    four digits), with the generation budget `train toy` evaluates with.
 */
import { readTextFile } from "../io/files.js";
import { UserError } from "../errors.js";
import { trackerIdsOf } from "../masking/config.js";
import { toyTokenizer, type CharTokenizer } from "../train/char-tokenizer.js";
import { renderSftPrompt } from "../train/sft-data.js";
import { generateHeldOut, gradeResponse, parsePrompt, type ToyProblem } from "../train/toy-task.js";
import { toyMaxTokens } from "../train/toy.js";
import type { AblationProblem, AblationTaskTokens } from "./restart-generate.js";

/** Held-out problems of the default set (clause 1). */
export const DEFAULT_RESTART_PROBLEMS = 200;

/** A problem set with the tokens its loop needs. */
export interface AblationTask extends AblationTaskTokens {
  /** What the problems are, for the report ("toy task, 200 held-out problems"). */
  name: string;
  problems: AblationProblem[];
}

/** The toy prompts of a JSONL file (clause 2). */
export function readToyPrompts(path: string): string[] {
  const prompts: string[] = [];
  readTextFile(path)
    .split("\n")
    .forEach((line, i) => {
      if (line.trim() === "") return;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        throw new UserError(`${path}:${i + 1}: not a JSON object`);
      }
      const r = row as Record<string, unknown> | null;
      const prompt = r?.problem ?? r?.prompt;
      if (typeof prompt !== "string") throw new UserError(`${path}:${i + 1}: no "problem" (or "prompt") string`);
      prompts.push(prompt);
    });
  if (prompts.length === 0) throw new UserError(`${path}: no problems`);
  return prompts;
}

function toyProblem(tok: CharTokenizer, id: string, prompt: string, problem: ToyProblem): AblationProblem {
  return {
    id,
    promptIds: tok.encode(renderSftPrompt(prompt)),
    maxTokens: toyMaxTokens(problem),
    isCorrect: (completion) => gradeResponse(problem, tok.decode([...completion])).correct,
  };
}

/** The toy task over `prompts` (default: the first `limit` held-out problems, clause 1). */
export function toyAblationTask(options: { prompts?: readonly string[]; limit?: number } = {}): AblationTask {
  const tok = toyTokenizer();
  const limit = options.limit ?? DEFAULT_RESTART_PROBLEMS;
  const prompts = options.prompts ? options.prompts.slice(0, limit) : generateHeldOut(limit).map((item) => item.prompt);
  const problems = prompts.map((prompt, i) => {
    let parsed: ToyProblem;
    try {
      parsed = parsePrompt(prompt);
    } catch (e) {
      throw new UserError(`problem ${i + 1}: ${(e as Error).message}`);
    }
    return toyProblem(tok, `toy-${i}`, prompt, parsed);
  });
  const stopIds = [tok.specialTokens.imEnd, tok.specialTokens.eos, tok.specialTokens.pad].filter(
    (x): x is number => x !== undefined && x >= 0,
  );
  return {
    name: `toy task, ${problems.length} ${options.prompts ? "" : "held-out "}problems`,
    problems,
    trackerIds: trackerIdsOf(tok),
    stopIds,
    requireAssistantSection: true,
  };
}
