/**
 * The checks `memento data merge` (src/data/merge.ts) makes on the shard builds it is given, before reading any
 * record: manifests in, a verdict out (a one-line UserError naming what is wrong, or the shards in order). It
 * reads each shard's `manifest.json` and nothing else.
 *
 * Policy:
 * 1. Finished only: a shard whose manifest says anything but `status: "finished"` is refused (its outputs are
 *    missing or stale), as is a directory without a manifest or one built without `--shard`.
 * 2. One build: every recorded option but `--shard`, and the input fingerprint, must equal the first shard's
 *    (identityDifferences names what differs); so must `selectedTraces`, which differs when `--limit` did. The
 *    input's path may differ (hosts mount it in different places); its fingerprint may not.
 * 3. A full set: the shards are K/N of one N, each K exactly once, none missing.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../errors.js";
import { identityDifferences, type JobIdentity } from "../io/manifest.js";
import { MANIFEST_FILE } from "./runner.js";
import { formatShard, parseShardSpec, type ShardSpec } from "./shard.js";

/** The flag under which a build records its shard (src/data/runner.ts `buildIdentity`). */
export const SHARD_FLAG = "--shard";

/** What a shard's manifest says, as far as merging needs it. */
export interface ShardBuild {
  dir: string;
  spec: ShardSpec;
  /** The build's identity without `--shard`: what every shard of one build shares. */
  identity: JobIdentity;
  /** Seed-selected traces after `--limit`, before sharding. */
  selectedTraces: number;
  /** Traces of this shard (completed + failed). */
  totalTraces: number;
  /** The whole manifest, for the fields the merged manifest carries over (input path, provider, usage). */
  manifest: Record<string, unknown>;
}

function readManifest(dir: string): Record<string, unknown> {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) throw new UserError(`${dir}: no ${MANIFEST_FILE}; not a data build directory`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new UserError(`${path}: unreadable manifest`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    throw new UserError(`${path}: unreadable manifest`);
  return parsed as Record<string, unknown>;
}

function objectField(m: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = m[key];
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Reads and checks one shard directory's manifest (policy 1). */
export function readShardBuild(dir: string): ShardBuild {
  const manifest = readManifest(dir);
  if (manifest.status !== "finished")
    throw new UserError(
      `${dir}: its build is not finished (status ${String(manifest.status ?? "unknown")}); ` +
        "run its data build command again to finish it, then merge",
    );
  const { [SHARD_FLAG]: rawShard, ...options } = objectField(manifest, "options");
  if (typeof rawShard !== "string") throw new UserError(`${dir}: not a sharded build (built without --shard)`);
  const spec = parseShardSpec(`${dir}: ${SHARD_FLAG}`, rawShard);
  const selectedTraces = manifest.selectedTraces;
  const totalTraces = manifest.total;
  if (typeof selectedTraces !== "number" || typeof totalTraces !== "number")
    throw new UserError(`${dir}: its manifest records no trace counts; rebuild it with this version`);
  return {
    dir,
    spec,
    identity: { options, input: objectField(manifest, "input") },
    selectedTraces,
    totalTraces,
    manifest,
  };
}

/** Refuses shards of another build than the first (policy 2). */
function checkSameBuild(builds: readonly ShardBuild[]): void {
  const [first, ...rest] = builds;
  for (const b of rest) {
    const diffs = identityDifferences(first.identity, b.identity);
    if (diffs.length > 0)
      throw new UserError(`${b.dir} was built with other options or input than ${first.dir}: ${diffs.join(", ")}`);
    if (b.selectedTraces !== first.selectedTraces)
      throw new UserError(
        `${b.dir} cut ${b.selectedTraces} selected traces but ${first.dir} ${first.selectedTraces}: ` +
          "build every shard with the same --limit",
      );
  }
}

/** Refuses a set that is not each of 1/N..N/N exactly once (policy 3); returns the builds by K. */
function checkFullSet(builds: readonly ShardBuild[]): ShardBuild[] {
  const first = builds[0];
  const count = first.spec.count;
  const byIndex = new Map<number, ShardBuild>();
  for (const b of builds) {
    if (b.spec.count !== count)
      throw new UserError(
        `${b.dir} is shard ${formatShard(b.spec)} but ${first.dir} is ${formatShard(first.spec)}: ` +
          "all shards of one build have the same N",
      );
    const twin = byIndex.get(b.spec.index);
    if (twin) throw new UserError(`shard ${formatShard(b.spec)} given twice: ${twin.dir} and ${b.dir}`);
    byIndex.set(b.spec.index, b);
  }
  const missing: string[] = [];
  for (let k = 1; k <= count; k++) if (!byIndex.has(k)) missing.push(formatShard({ index: k, count }));
  if (missing.length > 0)
    throw new UserError(
      `missing shard${missing.length > 1 ? "s" : ""} ${missing.join(", ")} (given ${builds.length} of ${count})`,
    );
  return [...byIndex.keys()].sort((a, b) => a - b).map((k) => byIndex.get(k)!);
}

/** Reads every shard's manifest and checks the set (policy 1-3); returns the shards ordered 1..N. */
export function checkShardSet(dirs: readonly string[]): ShardBuild[] {
  if (dirs.length === 0) throw new UserError("data merge: give the shard directories to merge");
  const builds = dirs.map(readShardBuild);
  checkSameBuild(builds);
  return checkFullSet(builds);
}
