// Open examples/viewer.html in Debian's chromium (never a downloaded browser), play the GLB, seek
// to two times and take a screenshot at each. Prints one JSON line for the pytest side to judge.
// Usage: node check-viewer.mjs VIEWER_URL OUT_DIR [CHROMIUM] [FRACTIONS, default 0.3,0.7 of the duration]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, outDir, executablePath = '/usr/bin/chromium', fractions = '0.3,0.7'] = process.argv.slice(2);
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const WAIT_MS = 60000;

const profile = await mkdtemp(join(tmpdir(), 'posed-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath, headless: true, args: FLAGS, viewport: { width: 960, height: 720 }, deviceScaleFactor: 1,
});
const report = { url, requests: [], errors: [], shots: [] };
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('request', (request) => report.requests.push(request.url()));
  page.on('pageerror', (error) => report.errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => { if (message.type() === 'error') report.errors.push(`console: ${message.text()}`); });
  await page.goto(url);
  await page.waitForFunction(() => window.posedViewer && (window.posedViewer.ready || window.posedViewer.error), null, { timeout: WAIT_MS });
  Object.assign(report, await page.evaluate(() => ({ error: posedViewer.error, duration: posedViewer.duration, clips: posedViewer.clips })));
  if (!report.error) {
    // Playing: the mixer's clock must advance by itself (requestAnimationFrame loop).
    await page.waitForFunction(() => posedViewer.time() > 0.2, null, { timeout: WAIT_MS });
    report.playedTo = await page.evaluate(() => posedViewer.time());
    for (const [i, fraction] of fractions.split(',').map(Number).entries()) {
      const label = String.fromCharCode(97 + i);
      const at = report.duration * fraction;
      const state = await page.evaluate((t) => ({ time: posedViewer.seek(t), joints: posedViewer.joints(), box: posedViewer.screenBox(), bodies: posedViewer.bodies() }), at);
      const path = join(outDir, `viewer-${label}.png`);
      await page.screenshot({ path });
      report.shots.push({ at, ...state, path });
    }
  }
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));
