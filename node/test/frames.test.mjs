// Streaming a long result: an 18,000-frame result (10 minutes at 30 fps) written by the daemon's
// own writer (python -m tests.long_result) is read frame by frame through the client, every line
// checked against the frame schema, with flat memory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient, PosedError, readFrames } from '../src/index.mjs';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');
const FRAMES = 18_000;
const skip = existsSync(PYTHON) ? false : `${PYTHON} does not exist: run ./scripts/test.sh (it creates .venv)`;

describe('frames(): a long result, streamed', { skip, timeout: 300_000 }, () => {
  let outbox, client, manifest;

  before(async () => {
    outbox = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-frames-'));
    execFileSync(PYTHON, ['-m', 'tests.long_result', outbox, String(FRAMES)], { cwd: REPO });
    client = createClient({ inbox: path.join(outbox, 'in'), outbox });
    manifest = JSON.parse(await fs.readFile(path.join(outbox, 'long.mp4.result.json'), 'utf8'));
  });

  after(async () => {
    await fs.rm(outbox, { recursive: true, force: true });
  });

  test('the manifest is small and validates; it names its frames file', async () => {
    const size = (await fs.stat(path.join(outbox, 'long.mp4.result.json'))).size;
    assert.ok(size < 64 * 1024, `manifest is ${size} bytes`);
    assert.equal(client.validate(manifest), null);
    assert.equal(manifest.files.frames.name, 'long.mp4.frames.jsonl');
    assert.equal(manifest.files.frames.lines, FRAMES);
  });

  test('every one of 18,000 lines is read in order and checked, with flat memory', async () => {
    global.gc?.();
    const before = process.memoryUsage().rss;
    let count = 0;
    let people = 0;
    let peak = before;
    for await (const frame of client.frames(manifest)) {
      assert.equal(frame.frame_index, count);
      count += 1;
      people += frame.people.length;
      if (count % 1000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    const afterRss = process.memoryUsage().rss;
    const growthMb = (Math.max(peak, afterRss) - before) / 2 ** 20;
    console.log(`# streamed ${count} frames (${people} people, ${(manifest.files.frames.bytes / 2 ** 20).toFixed(1)} MiB): RSS before ${(before / 2 ** 20).toFixed(1)} MiB, peak ${(peak / 2 ** 20).toFixed(1)} MiB, after ${(afterRss / 2 ** 20).toFixed(1)} MiB, growth ${growthMb.toFixed(1)} MiB`);
    assert.equal(count, FRAMES);
    assert.equal(people, manifest.summary.people_total);
    assert.ok(growthMb < 50, `RSS grew ${growthMb.toFixed(1)} MiB while streaming`);
  });

  test('a frames file cut short is refused at its end, not silently accepted', async () => {
    const file = path.join(outbox, manifest.files.frames.name);
    const cut = path.join(outbox, 'cut.frames.jsonl');
    const text = await fs.readFile(file);
    await fs.writeFile(cut, text.subarray(0, text.lastIndexOf(10, text.length - 2) + 1)); // drop the last line
    const entry = { ...manifest.files.frames, name: 'cut.frames.jsonl' };
    await assert.rejects(async () => {
      for await (const frame of readFrames(cut, entry)) void frame;
    }, (err) => err instanceof PosedError && err.code === 'E_CLIENT_FRAMES_LINES' && /lines 17999/.test(err.message));
  });
});
