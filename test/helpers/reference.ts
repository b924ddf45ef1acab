import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "vitest";

/** The repository root (this file is test/helpers/reference.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `../shared/reference` next to the checkout; a user's fresh clone does not have it. */
export const referenceDir = resolve(repoRoot, "..", "shared", "reference");
export const hasReference = existsSync(join(referenceDir, "README.md"));

export function referencePath(name: string): string {
  return join(referenceDir, name);
}

/**
 * `describe` that skips, saying why, when ../shared/reference is absent. The body is not even collected then,
 * since bodies commonly read the reference files while registering their tests.
 */
export function describeWithReference(name: string, fn: () => void): void {
  if (hasReference) {
    describe(name, fn);
  } else {
    describe(name, () => {
      it.skip("skipped: ../shared/reference is absent in this checkout", () => {});
    });
  }
}
