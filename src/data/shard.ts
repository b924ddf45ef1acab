/**
 * Shards of a data build (`memento data build --shard K/N`): which of the seed-selected traces a host processes.
 * This module owns the shard spec, its parsing and the trace -> shard assignment; it never reads or writes files.
 *
 * Policy:
 * 1. A trace's shard depends only on its stable id (`SeedTrace.id`): shard = 1 + (the first 48 bits of the
 *    SHA-256 of the id's UTF-8 bytes) mod N. Never on input order, `--limit`, workers or the host, so N hosts
 *    reading the same input agree without talking, and a resume takes exactly the same traces.
 * 2. Shards are numbered 1..N; `K/N` needs integers 1 <= K <= N. Every trace is in exactly one of the N shards.
 * 3. The hash scheme is part of the on-disk contract: shards built by two versions are merged together, so
 *    changing it would silently repeat or drop traces (a guard test pins some values).
 */
import { createHash } from "node:crypto";
import { UserError } from "../errors.js";

/** One of N equal-by-hash parts of the seed-selected traces. */
export interface ShardSpec {
  /** 1-based shard number K, 1 <= index <= count. */
  index: number;
  /** The number of shards N, >= 1. */
  count: number;
}

/** Hex digits of the id's SHA-256 read as the shard hash: 48 bits, exact in a double. */
const SHARD_HASH_HEX_DIGITS = 12;

const SHARD_PATTERN = /^\s*(\d+)\s*\/\s*(\d+)\s*$/;

/** `--shard 2/8` -> {index: 2, count: 8}; anything else is a one-line UserError naming the flag. */
export function parseShardSpec(flag: string, raw: string): ShardSpec {
  const m = SHARD_PATTERN.exec(raw);
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index < 1 || index > count)
    throw new UserError(`${flag}: expected K/N with whole numbers 1 <= K <= N (e.g. 1/4), got ${JSON.stringify(raw)}`);
  return { index, count };
}

/** "K/N", as the flag takes it and the manifest records it. */
export function formatShard(spec: ShardSpec): string {
  return `${spec.index}/${spec.count}`;
}

/** The 1-based shard of the trace `id` among `count` shards (policy 1). */
export function shardOfId(id: string, count: number): number {
  const hex = createHash("sha256").update(id, "utf8").digest("hex").slice(0, SHARD_HASH_HEX_DIGITS);
  return 1 + (Number.parseInt(hex, 16) % count);
}

/** Whether the trace `id` belongs to `spec`. */
export function inShard(id: string, spec: ShardSpec): boolean {
  return shardOfId(id, spec.count) === spec.index;
}
