// Play a video file in Debian's chromium through a <video> element; print what the browser saw.
// Usage: node check-video.mjs VIDEO_URL [CHROMIUM]   (VIDEO_URL on the test's localhost server)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];

const profile = await mkdtemp(join(tmpdir(), 'posed-chromium-'));
const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: FLAGS });
let report;
try {
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(new URL('/examples/.blank', url).href).catch(() => {});  // same origin as the video
  report = await page.evaluate(async (src) => {
    const video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    const outcome = new Promise((resolve) => {
      video.addEventListener('error', () => resolve({ error: video.error ? `${video.error.code} ${video.error.message}` : 'error' }));
      video.addEventListener('loadeddata', () => resolve({ error: null }));
    });
    video.src = src;
    const { error } = await outcome;
    if (error) return { error, canPlayH264: video.canPlayType('video/mp4; codecs="avc1.640028"') };
    await video.play();
    const started = performance.now();
    while (video.currentTime < 0.2 && performance.now() - started < 20000) await new Promise((r) => setTimeout(r, 50));
    return { error: null, width: video.videoWidth, height: video.videoHeight, duration: video.duration, playedTo: video.currentTime,
      canPlayH264: video.canPlayType('video/mp4; codecs="avc1.640028"') };
  }, url);
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));
