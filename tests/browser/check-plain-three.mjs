// Open tests/browser/plain-three.html (three.js' GLTFLoader + AnimationMixer, no posed code) in
// Debian's chromium, read the skinned skeletons at given times and take a screenshot at each.
// Prints one JSON line for the pytest side to judge.
// Usage: node check-plain-three.mjs PAGE_URL OUT_DIR CHROMIUM TIMES (seconds, comma-separated)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, outDir, executablePath, times] = process.argv.slice(2);
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const WAIT_MS = 60000;

const profile = await mkdtemp(join(tmpdir(), 'posed-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath, headless: true, args: FLAGS, viewport: { width: 640, height: 640 }, deviceScaleFactor: 1,
});
const report = { url, requests: [], errors: [], shots: [] };
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('request', (request) => report.requests.push(request.url()));
  page.on('pageerror', (error) => report.errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => { if (message.type() === 'error') report.errors.push(`console: ${message.text()}`); });
  await page.goto(url);
  await page.waitForFunction(() => window.plain && (window.plain.ready || window.plain.error), null, { timeout: WAIT_MS });
  Object.assign(report, await page.evaluate(() => ({ error: plain.error, duration: plain.duration })));
  if (!report.error) {
    for (const [i, at] of times.split(',').map(Number).entries()) {
      const meshes = await page.evaluate((t) => plain.at(t), at);
      const path = join(outDir, `plain-three-${i}.png`);
      await page.screenshot({ path });
      report.shots.push({ at, meshes, path });
    }
  }
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));
