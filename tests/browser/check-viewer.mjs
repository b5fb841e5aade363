// Open examples/viewer.html in Debian's chromium (never a downloaded browser), play the GLB, seek
// to two times and take a screenshot at each. Prints one JSON line for the pytest side to judge.
// Usage: node check-viewer.mjs VIEWER_URL OUT_DIR [CHROMIUM] [FRACTIONS, default 0.3,0.7 of the duration]
import { join } from 'node:path';
import { recordPage, withPage } from './chromium.mjs';

const [url, outDir, executablePath = '/usr/bin/chromium', fractions = '0.3,0.7'] = process.argv.slice(2);
const WAIT_MS = 60000;

const report = { url, requests: [], errors: [], shots: [] };
await withPage({ executablePath, viewport: { width: 960, height: 720 } }, async (page) => {
  recordPage(page, report);
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
});
console.log(JSON.stringify(report));
