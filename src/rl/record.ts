/**
 * The rollout record of `memento rl rollouts`: one row per sampled completion, in the columns a PyTorch RL
 * trainer (verl, TRL, prime-rl, ...) consumes, and its two writers (JSONL, Parquet).
 *
 *   problem_id             string      the benchmark problem's id (rows of one group share it)
 *   sample_index           int32       0..group-1 within the group
 *   seed                   int64       the sampling seed sent for this sample (derived from --seed, id, index)
 *   prompt_ids             int32[p]    the chat-templated prompt, as sent to the endpoint
 *   completion_ids         int32[c]    the sampled tokens, a final stop token (e.g. <|im_end|>) included
 *   old_logprobs           float64[c]  log pi_old of each completion token as the endpoint returned it (log_softmax
 *                                      of the raw logits); [] when they could not be aligned to completion_ids
 *   reward                 float64     1 when our checker (src/eval/check.ts) finds the answer correct, else 0
 *   advantage              float64     the group-relative advantage (src/rl/advantages.ts); 0 for a group whose
 *                                      rewards are all equal
 *   prompt_length          int32       p
 *   memento_visible_until  int32[p+c]  the compact Stage-2 mask over prompt_ids + completion_ids, exactly as
 *   view_at                int32[p+c]  `memento train export` writes it (src/train/sft-data.ts; -1 = never evicted)
 *   finish_reason          string      "stop" or "length", as the endpoint said
 *   forced                 int32[]     indices into completion_ids of `<|block_end|>` tokens the engine forced
 *                                      (maxBlockTokens), when the endpoint says (ours does); else []
 *   token_source           string      where completion_ids came from: "token_ids" (the endpoint's ids),
 *                                      "logprobs" (its `token_id:<id>` logprob tokens) or "retokenized" (our
 *                                      tokenizer over the text: the endpoint returned no ids)
 *   completion_text        string      the completion as the endpoint decoded it (markers included)
 *
 * Policy: 1. Records of one group are written together or not at all (advantages need the whole group).
 * 2. Parquet columns have the dtypes above (lists as LIST of REQUIRED elements); JSONL rows hold the same keys.
 */
import { parquetWriteBuffer } from "hyparquet-writer";
import type { ColumnSource, SchemaElement } from "hyparquet-writer";
import { writeFileAtomic, writeJsonlAtomic } from "../data/writers.js";

/** Where `completion_ids` came from (see the header). */
export type TokenSource = "token_ids" | "logprobs" | "retokenized";

export interface RolloutRecord {
  problem_id: string;
  sample_index: number;
  seed: number;
  prompt_ids: number[];
  completion_ids: number[];
  old_logprobs: number[];
  reward: number;
  advantage: number;
  prompt_length: number;
  memento_visible_until: number[];
  view_at: number[];
  finish_reason: string;
  forced: number[];
  token_source: TokenSource;
  completion_text: string;
}

/** The record's columns in file order (JSONL rows keep this key order too). */
export const ROLLOUT_COLUMNS = [
  "problem_id",
  "sample_index",
  "seed",
  "prompt_ids",
  "completion_ids",
  "old_logprobs",
  "reward",
  "advantage",
  "prompt_length",
  "memento_visible_until",
  "view_at",
  "finish_reason",
  "forced",
  "token_source",
  "completion_text",
] as const satisfies readonly (keyof RolloutRecord)[];

/** The version of the record format, written into the Parquet metadata and the run's manifest. */
export const ROLLOUT_FORMAT = "memento.rl.rollouts/1";

type ColumnKind = "string" | "int32" | "int64" | "double" | "int32[]" | "double[]";

const KINDS: Record<(typeof ROLLOUT_COLUMNS)[number], ColumnKind> = {
  problem_id: "string",
  sample_index: "int32",
  seed: "int64",
  prompt_ids: "int32[]",
  completion_ids: "int32[]",
  old_logprobs: "double[]",
  reward: "double",
  advantage: "double",
  prompt_length: "int32",
  memento_visible_until: "int32[]",
  view_at: "int32[]",
  finish_reason: "string",
  forced: "int32[]",
  token_source: "string",
  completion_text: "string",
};

/** The schema elements of one column (a list is the 3-level LIST of REQUIRED elements). */
function schemaOf(name: string, kind: ColumnKind): SchemaElement[] {
  const req = { repetition_type: "REQUIRED" } as const;
  switch (kind) {
    case "string":
      return [{ name, type: "BYTE_ARRAY", converted_type: "UTF8", ...req }];
    case "int32":
      return [{ name, type: "INT32", ...req }];
    case "int64":
      return [{ name, type: "INT64", ...req }];
    case "double":
      return [{ name, type: "DOUBLE", ...req }];
    case "int32[]":
    case "double[]":
      return [
        { name, converted_type: "LIST", num_children: 1, ...req },
        { name: "list", repetition_type: "REPEATED", num_children: 1 },
        { name: "element", type: kind === "int32[]" ? "INT32" : "DOUBLE", ...req },
      ];
  }
}

/** The records as a Parquet file in memory. */
export function encodeRolloutsParquet(records: readonly RolloutRecord[]): Uint8Array {
  const schema: SchemaElement[] = [{ name: "root", num_children: ROLLOUT_COLUMNS.length }];
  const columnData: ColumnSource[] = [];
  for (const name of ROLLOUT_COLUMNS) {
    const kind = KINDS[name];
    schema.push(...schemaOf(name, kind));
    const data = records.map((r) => (kind === "int64" ? BigInt(r[name] as number) : r[name]));
    columnData.push({ name, data: data as ColumnSource["data"] });
  }
  return new Uint8Array(
    parquetWriteBuffer({
      columnData,
      schema,
      rowGroupSize: 1000,
      kvMetadata: [{ key: "memento.format", value: ROLLOUT_FORMAT }],
      createdBy: "memento rl rollouts",
    }),
  );
}

/** A record with its keys in ROLLOUT_COLUMNS order. */
function ordered(r: RolloutRecord): Record<string, unknown> {
  return Object.fromEntries(ROLLOUT_COLUMNS.map((k) => [k, r[k]]));
}

/** Writes the records atomically as JSONL (one row per line). Returns the rows written. */
export function writeRolloutsJsonl(path: string, records: readonly RolloutRecord[]): number {
  return writeJsonlAtomic(path, records.map(ordered));
}

/** Writes the records atomically as Parquet. */
export function writeRolloutsParquet(path: string, records: readonly RolloutRecord[]): void {
  writeFileAtomic(path, encodeRolloutsParquet(records));
}
