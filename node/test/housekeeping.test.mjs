// Housekeeping: answered inputs in inbox/done/ (and failed/) and old outcomes go by age; only
// what the protocol names is touched. Ages are set with utimes, never waited for.
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanInbox, cleanOutbox } from '../src/index.mjs';

const EXAMPLES = fileURLToPath(new URL('../../daemon/schemas/examples/', import.meta.url));
const example = (name) => JSON.parse(readFileSync(path.join(EXAMPLES, `${name}.example.json`), 'utf8'));
const DAY = 24 * 3600_000;
const NOW = Date.now();
let root;

beforeEach(async () => { root = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-house-')); });
afterEach(() => fs.rm(root, { recursive: true, force: true }));

async function put(relative, body, ageMs) {
  const file = path.join(root, relative);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, typeof body === 'string' ? body : JSON.stringify(body));
  const when = new Date(NOW - ageMs);
  await fs.utimes(file, when, when);
  return file;
}

async function listAll(dir) {
  const found = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) found.push(path.relative(root, path.join(entry.parentPath ?? entry.path, entry.name)));
  }
  return found.sort();
}

describe('cleanInbox', () => {
  test('removes answered inputs older than the age from done/, failed/ only when asked', async () => {
    await put('inbox/done/old.mp4', 'v', 8 * DAY);
    await put('inbox/done/old.mp4.job.json', '{}', 8 * DAY);
    await put('inbox/done/new.mp4', 'v', 1 * DAY);
    await put('inbox/done/.hidden', 'x', 30 * DAY);
    await put('inbox/failed/bad.mp4', 'v', 30 * DAY);
    await put('inbox/waiting.mp4', 'v', 30 * DAY);
    const { removed } = await cleanInbox(path.join(root, 'inbox'), { now: NOW });
    assert.deepEqual(removed.map((f) => path.relative(root, f)).sort(), ['inbox/done/old.mp4', 'inbox/done/old.mp4.job.json']);
    await cleanInbox(path.join(root, 'inbox'), { now: NOW, failed: true, olderThanMs: 2 * DAY });
    assert.deepEqual(await listAll(root), ['inbox/done/.hidden', 'inbox/done/new.mp4', 'inbox/waiting.mp4']);
  });

  test('an inbox without done/ yet is fine', async () => {
    assert.deepEqual(await cleanInbox(path.join(root, 'nothing'), { now: NOW }), { removed: [], skipped: [] });
  });
});

describe('cleanOutbox', () => {
  test('removes old results with the files their manifest lists, and old error reports; nothing else', async () => {
    const result = example('result');
    result.files = {
      frames: { ...result.files.frames, name: 'old.frames.jsonl' },
      motion: { ...result.files.frames, name: 'old.motion.glb' },
    };
    await put('old.result.json', result, 40 * DAY);
    await put('old.frames.jsonl', '{}\n', 40 * DAY);
    await put('old.motion.glb', 'glb', 40 * DAY);
    await put('bad.mp4.error.json', example('error'), 31 * DAY);
    await put('recent.result.json', { ...result, files: { frames: { ...result.files.frames, name: 'recent.frames.jsonl' } } }, 2 * DAY);
    await put('recent.frames.jsonl', '{}\n', 2 * DAY);
    await put('orphan.frames.jsonl', '{}\n', 40 * DAY); // a set whose manifest went in a run cut short
    await put('notes.txt', 'mine', 90 * DAY);
    await put('.tmp/writer.part', 'x', 90 * DAY);
    await put('.posed/status/d1.json', example('status'), 90 * DAY);
    const { removed } = await cleanOutbox(root, { now: NOW });
    assert.deepEqual(removed.map((f) => path.basename(f)).sort(), ['bad.mp4.error.json', 'old.frames.jsonl', 'old.motion.glb', 'old.result.json', 'orphan.frames.jsonl']);
    const order = removed.map((f) => path.basename(f));
    assert.ok(order.indexOf('old.result.json') < order.indexOf('old.frames.jsonl'), 'a manifest goes before its files');
    assert.deepEqual(await listAll(root), ['.posed/status/d1.json', '.tmp/writer.part', 'notes.txt', 'recent.frames.jsonl', 'recent.result.json']);
  });
});
