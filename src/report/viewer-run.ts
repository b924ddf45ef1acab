/**
 * Which architecture (KV bytes) and tokenizer (token counts, KV replay) `memento view` uses, and why.
 *
 * 1. A flag (`-a`, `-t`) always wins.
 * 2. Otherwise, when the source is a run directory written by `memento eval run` (or its generations.jsonl),
 *    its run.json decides: `architecture` (a preset name or a config.json path) and `tokenizer` (a tokenizer
 *    directory; null means the default Qwen3 tokenizer, recorded as such). A recorded path is looked up from
 *    the working directory first (where `eval run` was started), then from the run directory.
 * 3. A run that recorded no tokenizer but whose architecture is a model's config.json with a tokenizer.json
 *    beside it (e.g. `-a models/toy/config.json`) uses that directory's tokenizer.
 * 4. Only when nothing is recorded: DEFAULT_VIEW_ARCHITECTURE and the default Qwen3 tokenizer.
 * 5. A recorded value that cannot be found is a one-line UserError naming run.json and the flag to pass, never
 *    a silent fall back to the default. Each choice carries a one-line `why` the page shows.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { ARCHITECTURE_PRESETS, type KvArchitecture } from "../kv/architecture.js";
import { resolveArchitecture } from "../kv/resolve.js";

/** The architecture used when neither a flag nor a run records one. */
export const DEFAULT_VIEW_ARCHITECTURE = "qwen3-8b";

/** The manifest file of a run directory (written by `memento eval run`). */
const RUN_MANIFEST_FILE = "run.json";
const TOKENIZER_FILE = "tokenizer.json";

/** Where a setting came from. */
export type SettingOrigin = "flag" | "run" | "default";

export interface ViewerSetting<T> {
  value: T;
  origin: SettingOrigin;
  /** One line for the page, e.g. `recorded in runs/x/run.json: models/toy/config.json`. */
  why: string;
}

export interface ViewerSetup {
  architecture: ViewerSetting<KvArchitecture>;
  /** The tokenizer directory; undefined = the default Qwen3 tokenizer. */
  tokenizerDir: ViewerSetting<string | undefined>;
}

/** What the user passed; undefined = not given. */
export interface ViewerSetupFlags {
  architecture?: string;
  tokenizer?: string;
}

interface RunRecord {
  manifestPath: string;
  runDir: string;
  manifest: Record<string, unknown>;
}

/** The run.json of `source` when it is a run directory or a file inside one, else null. */
export function runRecordOf(source: string): RunRecord | null {
  if (!existsSync(source)) return null;
  const runDir = statSync(source).isDirectory() ? source : dirname(source);
  const manifestPath = join(runDir, RUN_MANIFEST_FILE);
  if (!existsSync(manifestPath) || basename(source) === RUN_MANIFEST_FILE) return null;
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch (e) {
    throw new UserError(`${manifestPath}: unreadable run manifest (${(e as Error).message.replace(/\s+/g, " ")})`);
  }
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest))
    throw new UserError(`${manifestPath}: expected a JSON object`);
  return { manifestPath, runDir, manifest: manifest as Record<string, unknown> };
}

/** A recorded path as found from the working directory, else from the run directory; null when neither. */
function findRecordedPath(recorded: string, runDir: string): string | null {
  if (existsSync(recorded)) return recorded;
  if (!isAbsolute(recorded) && existsSync(join(runDir, recorded))) return join(runDir, recorded);
  return null;
}

function isPresetName(spec: string): boolean {
  return Object.hasOwn(ARCHITECTURE_PRESETS, spec.toLowerCase());
}

function architectureFromRun(run: RunRecord): ViewerSetting<KvArchitecture> | null {
  const recorded = run.manifest.architecture;
  if (typeof recorded !== "string" || recorded === "") return null;
  const why = `recorded in ${run.manifestPath}: ${recorded}`;
  if (isPresetName(recorded)) return { value: resolveArchitecture(recorded), origin: "run", why };
  const found = findRecordedPath(recorded, run.runDir);
  if (found === null)
    throw new UserError(
      `${run.manifestPath}: records architecture "${recorded}", which is neither a preset nor a file found from ` +
        `here or from the run directory; pass -a NAME|config.json`,
    );
  return { value: resolveArchitecture(found), origin: "run", why };
}

/** The directory of a config.json-based architecture when a tokenizer.json sits beside it. */
function tokenizerBesideArchitecture(run: RunRecord): string | null {
  const recorded = run.manifest.architecture;
  if (typeof recorded !== "string" || isPresetName(recorded)) return null;
  const found = findRecordedPath(recorded, run.runDir);
  if (found === null) return null;
  const dir = statSync(found).isDirectory() ? found : dirname(found);
  return existsSync(join(dir, TOKENIZER_FILE)) ? dir : null;
}

function tokenizerFromRun(run: RunRecord): ViewerSetting<string | undefined> | null {
  const m = run.manifest;
  if ("tokenizer" in m && (m.tokenizer === null || m.tokenizer === undefined))
    return { value: undefined, origin: "run", why: `recorded in ${run.manifestPath}: the default Qwen3 tokenizer` };
  if (typeof m.tokenizer === "string" && m.tokenizer !== "") {
    const found = findRecordedPath(m.tokenizer, run.runDir);
    if (found === null)
      throw new UserError(
        `${run.manifestPath}: records tokenizer "${m.tokenizer}", which is not found from here or from the run ` +
          `directory; pass -t DIR`,
      );
    return { value: found, origin: "run", why: `recorded in ${run.manifestPath}: ${m.tokenizer}` };
  }
  const beside = tokenizerBesideArchitecture(run);
  if (beside === null) return null;
  return {
    value: beside,
    origin: "run",
    why: `${resolve(beside)}: beside the architecture recorded in ${run.manifestPath} (no tokenizer recorded)`,
  };
}

/** Decides the viewer's architecture and tokenizer for `source` (a path, or null for a live endpoint). */
export function resolveViewerSetup(source: string | null, flags: ViewerSetupFlags): ViewerSetup {
  const run = source === null ? null : runRecordOf(source);
  const notARun = source === null ? "a live endpoint" : "not a run directory";
  const architecture: ViewerSetting<KvArchitecture> =
    flags.architecture !== undefined
      ? { value: resolveArchitecture(flags.architecture), origin: "flag", why: `-a ${flags.architecture}` }
      : ((run && architectureFromRun(run)) ?? {
          value: resolveArchitecture(DEFAULT_VIEW_ARCHITECTURE),
          origin: "default",
          why: run
            ? `default (${run.manifestPath} records no architecture)`
            : `default (${notARun}; pass -a to change)`,
        });
  const tokenizerDir: ViewerSetting<string | undefined> =
    flags.tokenizer !== undefined
      ? { value: flags.tokenizer, origin: "flag", why: `-t ${flags.tokenizer}` }
      : ((run && tokenizerFromRun(run)) ?? {
          value: undefined,
          origin: "default",
          why: run
            ? `default Qwen3 (${run.manifestPath} records no tokenizer)`
            : `default Qwen3 (${notARun}; pass -t to change)`,
        });
  return { architecture, tokenizerDir };
}
