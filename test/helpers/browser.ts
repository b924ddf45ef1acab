/**
 * Headless Chromium for page checks, driven by playwright-core with the system browser (Debian's `chromium`
 * package at /usr/bin/chromium, or $MEMENTO_CHROMIUM). Nothing is downloaded. Tests that need it skip, saying
 * why, when the executable is absent.
 *
 * Every page is opened in a fresh profile (a new user-data-dir, removed on close); console errors, page errors
 * and any request that leaves the machine (anything but file:, data:, blob:, about: and 127.0.0.1/localhost) are
 * collected in `problems`, and such requests are aborted.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { expect } from "vitest";

export const CHROMIUM = process.env.MEMENTO_CHROMIUM ?? "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);
export const noChromiumReason = `skipped: no Chromium at ${CHROMIUM} (install Debian's chromium package, or set MEMENTO_CHROMIUM)`;

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface CheckedPage {
  page: Page;
  /** Console errors, uncaught page errors and blocked external requests, in order. */
  problems: string[];
  close(): Promise<void>;
}

function isLocal(url: string): boolean {
  if (/^(file|data|blob|about):/i.test(url)) return true;
  try {
    const u = new URL(url);
    return u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]";
  } catch {
    return false;
  }
}

/** Launches Chromium with a fresh profile and opens `url` (waits for the load event). */
export async function openPage(url: string, viewport = { width: 1280, height: 900 }): Promise<CheckedPage> {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "memento-chromium-"));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport,
      timeout: 30_000,
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const problems: string[] = [];
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  await page.route("**/*", (route) => {
    const u = route.request().url();
    if (isLocal(u)) return route.continue();
    problems.push(`external request blocked: ${u}`);
    return route.abort();
  });
  const ctx = context;
  await page.goto(url, { waitUntil: "load", timeout: 30_000 });
  return {
    page,
    problems,
    close: async () => {
      await ctx.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Vertex counts (M and L commands) of every `path.series` in the page, in document order. */
export async function seriesPointCounts(page: Page, scope = "body"): Promise<number[]> {
  return page.$$eval(`${scope} path.series`, (paths) =>
    paths.map((p) => ((p.getAttribute("d") ?? "").match(/[ML]/g) ?? []).length),
  );
}

/** Saves a full-page screenshot to `path`, checks that it is a PNG, and copies it to `copyTo` for people to look at. */
export async function saveScreenshot(page: Page, path: string, copyTo: string): Promise<void> {
  await page.screenshot({ path, fullPage: true });
  expect(readFileSync(path).subarray(1, 4).toString()).toBe("PNG");
  copyFileSync(path, copyTo);
}
