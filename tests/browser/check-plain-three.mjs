// Open tests/browser/plain-three.html (three.js' GLTFLoader + AnimationMixer, no posed code) in
// Debian's chromium, read the skinned skeletons at given times and take a screenshot at each.
// Prints one JSON line for the pytest side to judge.
// Usage: node check-plain-three.mjs PAGE_URL OUT_DIR CHROMIUM TIMES (seconds, comma-separated)
import { join } from 'node:path';
import { recordPage, withPage } from './chromium.mjs';

const [url, outDir, executablePath, times] = process.argv.slice(2);
const WAIT_MS = 60000;

const report = { url, requests: [], errors: [], shots: [] };
await withPage({ executablePath, viewport: { width: 640, height: 640 } }, async (page) => {
  recordPage(page, report);
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
});
console.log(JSON.stringify(report));
