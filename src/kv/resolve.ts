import { existsSync } from "node:fs";
import { UserError } from "../errors.js";
import { architectureFromHfConfig, architecturePreset, type KvArchitecture } from "./architecture.js";
import { readFileSync } from "node:fs";

/**
 * Turns what a user wrote into an architecture: a preset name ("qwen3-8b"), a path to a config.json
 * (or a directory holding one), or an already-parsed config object.
 */
export function resolveArchitecture(spec: string | Record<string, unknown>): KvArchitecture {
  if (typeof spec !== "string") return architectureFromHfConfig(spec);
  const looksLikePath = spec.includes("/") || spec.endsWith(".json") || existsSync(spec);
  if (!looksLikePath) return architecturePreset(spec);
  const file = existsSync(`${spec}/config.json`) ? `${spec}/config.json` : spec;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UserError(`${file}: cannot read architecture config`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  return architectureFromHfConfig(json, file);
}
