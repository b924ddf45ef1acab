/**
 * Option values of every command: integers, numbers, choices and paths, checked in one place so that a bad value
 * is always a one-line UserError naming the flag and quoting the value (printed as `memento: ...`, exit 2):
 * `--port: expected an integer from 0 to 65535, got "x"`, and for a value outside a list of choices
 * `--dtype: expected F32 or F16, got "Q4"`.
 *
 * Two ways in, same checks and messages:
 * - `integerOption`, `numberOption`, `choiceOption`, `pathOption` build commander Options whose argParser
 *   converts the value while the command line is parsed (so the action receives numbers);
 * - `parseInteger`, `parseNumber`, `parseChoice` (and `optional*` for absent values) check raw strings, for
 *   the exported functions that take the command's options as strings (`runServe`, `toyGenerateLines`, ...).
 */
import { Option } from "commander";
import { UserError } from "../errors.js";

/** Inclusive bounds of an integer option. */
export interface IntegerRange {
  min?: number;
  max?: number;
}

/** Bounds of a number option: `min`/`max` inclusive, `above`/`below` exclusive. */
export interface NumberRange {
  min?: number;
  max?: number;
  above?: number;
  below?: number;
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function invalid(flag: string, expected: string, raw: string): UserError {
  return new UserError(`${flag}: expected ${expected}, got ${JSON.stringify(raw)}`);
}

/** "an integer from 0 to 65535", "a positive integer", ... */
export function describeInteger(range: IntegerRange): string {
  const { min, max } = range;
  if (min !== undefined && max !== undefined) return `an integer from ${min} to ${max}`;
  if (min === 0) return "a non-negative integer";
  if (min === 1) return "a positive integer";
  if (min !== undefined) return `an integer >= ${min}`;
  if (max !== undefined) return `an integer <= ${max}`;
  return "an integer";
}

/** "a positive number", "a number in [0, 1)", ... */
export function describeNumber(range: NumberRange): string {
  const lower = range.min !== undefined ? `[${range.min}` : range.above !== undefined ? `(${range.above}` : undefined;
  const upper = range.max !== undefined ? `${range.max}]` : range.below !== undefined ? `${range.below})` : undefined;
  if (lower && upper) return `a number in ${lower}, ${upper}`;
  if (range.above === 0) return "a positive number";
  if (range.min === 0) return "a non-negative number";
  if (range.min !== undefined) return `a number >= ${range.min}`;
  if (range.above !== undefined) return `a number > ${range.above}`;
  if (range.max !== undefined) return `a number <= ${range.max}`;
  if (range.below !== undefined) return `a number < ${range.below}`;
  return "a number";
}

/** A decimal integer within `range` (no exponent, no hex, no fraction). */
export function parseInteger(flag: string, raw: string, range: IntegerRange = {}): number {
  const n = Number(raw.trim());
  const ok = INTEGER.test(raw.trim()) && Number.isSafeInteger(n);
  if (!ok || (range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
    throw invalid(flag, describeInteger(range), raw);
  }
  return n;
}

/** A finite decimal number (exponent allowed) within `range`. */
export function parseNumber(flag: string, raw: string, range: NumberRange = {}): number {
  const n = Number(raw.trim());
  const inRange =
    (range.min === undefined || n >= range.min) &&
    (range.max === undefined || n <= range.max) &&
    (range.above === undefined || n > range.above) &&
    (range.below === undefined || n < range.below);
  if (!DECIMAL.test(raw.trim()) || !Number.isFinite(n) || !inRange) throw invalid(flag, describeNumber(range), raw);
  return n;
}

/** "A or B", "one of A, B, C". */
export function describeChoices(choices: readonly string[]): string {
  return choices.length === 2 ? `${choices[0]} or ${choices[1]}` : `one of ${choices.join(", ")}`;
}

/** One of `choices`, returned as spelled in the list (`ignoreCase`: `f16` gives `F16`). */
export function parseChoice<T extends string>(
  flag: string,
  raw: string,
  choices: readonly T[],
  opts: { ignoreCase?: boolean } = {},
): T {
  const wanted = opts.ignoreCase ? raw.toLowerCase() : raw;
  const found = choices.find((c) => (opts.ignoreCase ? c.toLowerCase() : c) === wanted);
  if (found !== undefined) return found;
  throw new UserError(`${flag}: expected ${describeChoices(choices)}, got ${JSON.stringify(raw)}`);
}

/** A file or directory name: not empty, no NUL byte. Whether it exists is the caller's business. */
export function parsePath(flag: string, raw: string): string {
  if (raw.trim() === "" || raw.includes("\0")) throw invalid(flag, "a file or directory path", raw);
  return raw;
}

/** parseInteger, or undefined when the option was not given. */
export function optionalInteger(flag: string, raw: string | undefined, range: IntegerRange = {}): number | undefined {
  return raw === undefined ? undefined : parseInteger(flag, raw, range);
}

/** parseNumber, or undefined when the option was not given. */
export function optionalNumber(flag: string, raw: string | undefined, range: NumberRange = {}): number | undefined {
  return raw === undefined ? undefined : parseNumber(flag, raw, range);
}

/** The name a message should show for an option: its long flag, else its short one. */
function flagName(option: Option): string {
  return option.long ?? option.short ?? option.flags;
}

/** An option whose value becomes an integer within `range` while parsing. */
export function integerOption(flags: string, description: string, range: IntegerRange = {}): Option {
  const option = new Option(flags, description);
  return option.argParser((raw: string) => parseInteger(flagName(option), raw, range));
}

/** An option whose value becomes a number within `range` while parsing. */
export function numberOption(flags: string, description: string, range: NumberRange = {}): Option {
  const option = new Option(flags, description);
  return option.argParser((raw: string) => parseNumber(flagName(option), raw, range));
}

/** An option taking one of `choices` (listed in the help); the value is returned as spelled in the list. */
export function choiceOption<T extends string>(
  flags: string,
  description: string,
  choices: readonly T[],
  opts: { ignoreCase?: boolean } = {},
): Option {
  // choices() lists the values in the help; the argParser set after it does the checking, with our message.
  const option = new Option(flags, description).choices(choices);
  return option.argParser((raw: string) => parseChoice(flagName(option), raw, choices, opts));
}

/** An option naming a file or directory (refuses an empty value). */
export function pathOption(flags: string, description: string): Option {
  const option = new Option(flags, description);
  return option.argParser((raw: string) => parsePath(flagName(option), raw));
}
