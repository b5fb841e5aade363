// Play a video file in Debian's chromium through a <video> element; print what the browser saw.
// Usage: node check-video.mjs VIDEO_URL [CHROMIUM]   (VIDEO_URL on the test's localhost server)
import { withPage } from './chromium.mjs';

const [url, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);

const report = await withPage({ executablePath, flags: ['--autoplay-policy=no-user-gesture-required'] }, async (page) => {
  await page.goto(new URL('/examples/.blank', url).href).catch(() => {});  // same origin as the video
  return page.evaluate(async (src) => {
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
});
console.log(JSON.stringify(report));
