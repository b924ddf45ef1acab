/**
 * Loading Memento responses from the file kinds the CLI accepts, with the kind detected from the content:
 *
 * - "segments": one JSON object with a `segments` array (the reference `memento_output_*.json` files); the
 *   response is rebuilt in the canonical layout (`referenceToResponse`).
 * - "openmementos": JSONL (or a JSON array / single object) of OpenMementos `full` rows (objects with
 *   `sentences`, `blocks` or `block_summaries`); the response is the row's `response` field.
 * - "responses": JSONL (or a JSON array / single object) of objects with a string `response`.
 * - "text": anything else; the whole file is one response.
 *
 * A file is treated as JSON when its first non-blank character is "{" or "["; it must then be valid JSON or
 * JSONL (one JSON value per non-blank line), otherwise loading fails with a UserError naming the line.
 *
 * A file must be UTF-8 text: one holding a NUL byte or bytes that are not UTF-8 (an archive, a model file, a
 * Latin-1 export) is refused with a UserError instead of being read as one garbled text response.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { UserError } from "../errors.js";
import { referenceToResponse, referenceTraceSchema } from "./reference.js";

export type ResponseFileKind = "text" | "segments" | "openmementos" | "responses";

export interface LoadedResponse {
  /** `id` / `task_id` of the record when present, else "line N" (JSONL), "[i]" (array) or the file name. */
  id: string;
  text: string;
  problem?: string;
  /** 1-based line of the file where the record starts (1 for whole-file kinds). */
  line: number;
  /** The parsed JSON record (JSON kinds only), for kind-specific checks such as the row schema. */
  record?: unknown;
}

export interface LoadedResponses {
  kind: ResponseFileKind;
  responses: LoadedResponse[];
}

/** Reads `path` and detects its kind (see module comment). Throws UserError on unreadable or malformed input. */
export function loadResponses(path: string): LoadedResponses {
  return parseResponsesFile(readUtf8Text(path), path);
}

/** How many leading bytes are searched for a NUL (as `grep` and `git` decide a file is binary). */
const BINARY_SNIFF_BYTES = 64 * 1024;

/** Reads `path` as strict UTF-8 text; unreadable, NUL-holding or non-UTF-8 content is a one-line UserError. */
export function readUtf8Text(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: cannot read file${code ? ` (${code})` : ""}`);
  }
  const nul = bytes.subarray(0, BINARY_SNIFF_BYTES).indexOf(0);
  if (nul !== -1) throw new UserError(`${path}: binary file (a NUL byte at offset ${nul}), not a Memento response`);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`${path}: not UTF-8 text (binary or another encoding), not a Memento response`);
  }
}

/** `loadResponses` on content already read; `source` names the input in errors and is the id of a text file. */
export function parseResponsesFile(content: string, source: string): LoadedResponses {
  const body = content.charCodeAt(0) === 0xfeff ? content.slice(1) : content;
  const first = /\S/.exec(body);
  if (!first || (body[first.index] !== "{" && body[first.index] !== "[")) {
    return { kind: "text", responses: [{ id: basename(source), text: body, line: 1 }] };
  }

  let whole: unknown;
  let wholeOk = true;
  try {
    whole = JSON.parse(body);
  } catch {
    wholeOk = false;
  }

  if (wholeOk) {
    if (Array.isArray(whole)) {
      if (whole.length === 0) throw new UserError(`${source}: empty JSON array, no responses`);
      return fromRecords(
        whole.map((r, i) => ({ value: r, line: 1, fallbackId: `[${i}]` })),
        source,
      );
    }
    if (isObject(whole) && Array.isArray(whole.segments)) {
      const r = referenceTraceSchema.safeParse(whole);
      if (!r.success) {
        const i = r.error.issues[0];
        throw new UserError(
          `${source}: invalid segments JSON: ${i.path.length ? i.path.join(".") + ": " : ""}${i.message}`,
        );
      }
      return {
        kind: "segments",
        responses: [
          { id: basename(source), text: referenceToResponse(r.data), problem: r.data.problem, line: 1, record: r.data },
        ],
      };
    }
    return fromRecords([{ value: whole, line: 1, fallbackId: basename(source) }], source);
  }

  // JSONL
  const records: RawRecord[] = [];
  const lines = body.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (!/\S/.test(l)) continue;
    try {
      records.push({ value: JSON.parse(l), line: i + 1, fallbackId: `line ${i + 1}` });
    } catch (e) {
      throw new UserError(`${source}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
  }
  return fromRecords(records, source);
}

interface RawRecord {
  value: unknown;
  line: number;
  fallbackId: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isRow(v: Record<string, unknown>): boolean {
  return "sentences" in v || "blocks" in v || "block_summaries" in v;
}

function fromRecords(records: RawRecord[], source: string): LoadedResponses {
  let kind: ResponseFileKind | null = null;
  const responses: LoadedResponse[] = [];
  for (const r of records) {
    const where = `${source}:${r.line}`;
    if (!isObject(r.value)) throw new UserError(`${where}: expected a JSON object with a "response" string`);
    const v = r.value;
    if (typeof v.response !== "string") throw new UserError(`${where}: no "response" string in this record`);
    const k: ResponseFileKind = isRow(v) ? "openmementos" : "responses";
    kind ??= k;
    const rawId = v.id ?? v.task_id;
    responses.push({
      id: typeof rawId === "string" || typeof rawId === "number" ? String(rawId) : r.fallbackId,
      text: v.response,
      ...(typeof v.problem === "string" ? { problem: v.problem } : {}),
      line: r.line,
      record: v,
    });
  }
  if (kind === null) throw new UserError(`${source}: no records`);
  return { kind, responses };
}
