#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled library (npm install runs the build via `prepare`).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write("memento: the package is not built; run `npm install` (or `npm run build`) first\n");
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
