import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe } from "vitest";

/** The repository root (this file is test/helpers/reference.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `../shared/reference` next to the checkout; a user's fresh clone does not have it. */
export const referenceDir = resolve(repoRoot, "..", "shared", "reference");
export const hasReference = existsSync(join(referenceDir, "README.md"));

export function referencePath(name: string): string {
  return join(referenceDir, name);
}

/** `describe` that skips, saying why, when ../shared/reference is absent. */
export function describeWithReference(name: string, fn: () => void): void {
  if (hasReference) {
    describe(name, fn);
  } else {
    describe.skip(`${name} (skipped: ../shared/reference is absent in this checkout)`, fn);
  }
}
