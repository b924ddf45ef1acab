/**
 * The block-masking flags, made from MASKING_FIELDS (src/masking/config.ts) so that every command taking them
 * (serve, trace stats, view) has the same flags accepting the same values, and read back as a
 * Partial<MaskingConfig> holding only what the command line changed (the rest falls to the command's defaults).
 *
 * Values stay strings until `maskingFromOptions` checks them, so the exported functions that take a command's
 * raw options (`runServe`) read them the same way.
 */
import { Option, type Command } from "commander";
import { UserError } from "../errors.js";
import { MASKING_FIELD_NAMES, MASKING_FIELDS, type MaskingConfig, type MaskingField } from "../masking/config.js";
import { parseInteger, type IntegerRange } from "./options.js";

/** The flags of a setting, as commander spells them (`-k, --keep-last-n-blocks <n>`). */
function flagsOf(f: MaskingField): string | null {
  if (f.flag === null) return null;
  return f.short ? `${f.short}, ${f.flag}` : f.flag;
}

/** An alias with the main flag's value placeholder (`--keep <n>`). */
function aliasFlags(f: MaskingField, alias: string): string {
  const placeholder = f.flag?.split(" ")[1];
  return placeholder ? `${alias} ${placeholder}` : alias;
}

/** The integer bounds the zod type of a numeric setting sets (`.int()` alone implies the safe-integer range). */
function rangeOf(f: MaskingField): IntegerRange {
  const s = f.schema as unknown as { minValue?: number | null; maxValue?: number | null };
  const range: IntegerRange = {};
  if (typeof s.minValue === "number" && s.minValue > Number.MIN_SAFE_INTEGER) range.min = s.minValue;
  if (typeof s.maxValue === "number" && s.maxValue < Number.MAX_SAFE_INTEGER) range.max = s.maxValue;
  return range;
}

/**
 * Adds a flag for every setting that has one (and its hidden aliases) to `cmd`. `defaults`: the command's own
 * overlay (train rl caps blocks at 96), shown in the help instead of the table's default.
 */
export function addMaskingOptions(cmd: Command, defaults: Partial<MaskingConfig> = {}): Command {
  for (const name of MASKING_FIELD_NAMES) {
    const f: MaskingField = MASKING_FIELDS[name];
    const flags = flagsOf(f);
    if (flags === null) continue;
    const numeric = typeof f.default === "number";
    // The command's own default where it overlays one (train rl caps blocks), else the table's.
    const shown = (defaults as Record<string, unknown>)[name] ?? f.default;
    cmd.addOption(new Option(flags, numeric ? `${f.help} (default: ${String(shown)})` : f.help));
    for (const alias of f.aliases ?? []) {
      cmd.addOption(new Option(aliasFlags(f, alias), `alias of ${f.flag}`).hideHelp());
    }
  }
  return cmd;
}

/** The long flags of every setting that has one, aliases included (for tests and docs). */
export function maskingFlagNames(): string[] {
  const out: string[] = [];
  for (const name of MASKING_FIELD_NAMES) {
    const f: MaskingField = MASKING_FIELDS[name];
    if (f.flag === null) continue;
    out.push(f.flag.split(" ")[0], ...(f.aliases ?? []));
  }
  return out;
}

/**
 * The settings given on the command line: numbers checked against the setting's zod bounds (a one-line
 * UserError naming the flag), booleans only when flipped from their default.
 */
export function maskingFromOptions(options: object): Partial<MaskingConfig> {
  const opts = options as Readonly<Record<string, unknown>>;
  const out: Record<string, unknown> = {};
  for (const name of MASKING_FIELD_NAMES) {
    const f: MaskingField = MASKING_FIELDS[name];
    if (f.flag === null) continue;
    if (typeof f.default === "boolean") {
      if (typeof opts[name] === "boolean" && opts[name] !== f.default) out[name] = opts[name];
      continue;
    }
    const spellings = [f.flag.split(" ")[0], ...(f.aliases ?? [])];
    const given = spellings
      .map((flag, i) => ({ flag, raw: opts[i === 0 ? name : new Option(flag).attributeName()] }))
      .filter((g) => g.raw !== undefined);
    if (given.length > 1) throw new UserError(`give one of ${given.map((g) => g.flag).join(", ")}, not several`);
    if (given.length === 1) out[name] = parseInteger(given[0].flag, String(given[0].raw), rangeOf(f));
  }
  return out as Partial<MaskingConfig>;
}
