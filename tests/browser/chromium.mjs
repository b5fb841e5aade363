// Debian's chromium (never a downloaded browser) on a throwaway profile, shared by the check-*.mjs tools.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** Runs `use(page)` in a fresh headless chromium; the browser and its profile are gone afterwards. */
export async function withPage({ executablePath, viewport, flags = [] }, use) {
  const profile = await mkdtemp(join(tmpdir(), 'posed-chromium-'));
  const size = viewport ? { viewport, deviceScaleFactor: 1 } : {};
  const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: [...FLAGS, ...flags], ...size });
  try {
    return await use(context.pages()[0] ?? await context.newPage());
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

/** Records every request and every page or console error of `page` into `report`. */
export function recordPage(page, report) {
  page.on('request', (request) => report.requests.push(request.url()));
  page.on('pageerror', (error) => report.errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => { if (message.type() === 'error') report.errors.push(`console: ${message.text()}`); });
}
