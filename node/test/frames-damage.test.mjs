// Every kind of damage a frames file can have gets its own error code; an intact file streams
// with each person's keypoints and joints by name. The files are the schema examples written
// by the daemon's writer (daemon/schemas/examples/), damaged here one way at a time.
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient, FRAMES_ERRORS, PosedError, readFrames } from '../src/index.mjs';

const EXAMPLES = fileURLToPath(new URL('../../daemon/schemas/examples/', import.meta.url));
const manifest = JSON.parse(readFileSync(path.join(EXAMPLES, 'result.example.json'), 'utf8'));
const intact = readFileSync(path.join(EXAMPLES, manifest.files.frames.name));

describe('frames(): verified stream', () => {
  let root, client;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-frames-'));
    await fs.mkdir(path.join(root, 'inbox'));
    client = createClient({ inbox: path.join(root, 'inbox'), outbox: root });
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  async function read(bytes) {
    await fs.writeFile(path.join(root, manifest.files.frames.name), bytes);
    const frames = [];
    for await (const frame of client.frames(manifest)) frames.push(frame);
    return frames;
  }

  async function damaged(bytes, kind) {
    const err = await read(bytes).then(() => assert.fail(`accepted a file with damage "${kind}"`), (e) => e);
    assert.ok(err instanceof PosedError, err);
    assert.equal(err.code, FRAMES_ERRORS[kind], err.message);
    assert.equal(err.damage, kind);
    return err;
  }

  const lines = () => intact.toString('utf8').split('\n').slice(0, -1);
  const join = (rows) => Buffer.from(`${rows.join('\n')}\n`);

  test('an intact file streams in order, each person with keypoints and joints by name', async () => {
    const frames = await read(intact);
    assert.deepEqual(frames.map((f) => f.frame_index), [0, 1, 2]);
    const person = frames.find((f) => f.people.length).people[0];
    const names = manifest.backend.keypoint_names;
    assert.equal(Object.keys(person.named.keypoints).length, names.length);
    assert.deepEqual(person.named.keypoints[names[0]], person.keypoints[0]);
    assert.deepEqual(person.named.joints_3d[manifest.backend.joint_names_3d.at(-1)], person.joints_3d.at(-1));
  });

  test('a file cut mid-line', async () => {
    const err = await damaged(intact.subarray(0, intact.length - 40), 'cut');
    assert.equal(err.line, 3);
  });

  test('a file cut exactly after a line: the line count', async () => {
    const rows = lines();
    await damaged(join(rows.slice(0, 2)), 'lines');
  });

  test('a line that is not JSON, and one that is not UTF-8', async () => {
    const rows = lines();
    await damaged(join([rows[0], rows[1].slice(0, -5), rows[2]]), 'json');
    const bytes = Buffer.from(intact);
    bytes[bytes.indexOf('"people"') - 2] = 0xff;
    await damaged(bytes, 'json');
  });

  test('a line that is JSON but not a frame', async () => {
    const rows = lines();
    await damaged(join([rows[0], '{"frame_index":1}', rows[2]]), 'schema');
  });

  test('frames out of order', async () => {
    const rows = lines();
    await damaged(join([rows[0], rows[2], rows[1]]), 'order');
  });

  test('other bytes with the same line count: size, then checksum', async () => {
    const rows = lines();
    await damaged(join([rows[0], rows[1].replace('"people"', ' "people"'), rows[2]]), 'bytes');
    const text = intact.toString('utf8');
    const at = text.indexOf('"confidence":0.') + '"confidence":0.'.length;
    const digit = text[at] === '1' ? '2' : '1';
    await damaged(Buffer.from(text.slice(0, at) + digit + text.slice(at + 1)), 'sha256');
  });

  test('the frames file is missing', async () => {
    await fs.rm(path.join(root, manifest.files.frames.name));
    const err = await (async () => {
      for await (const frame of readFrames(path.join(root, manifest.files.frames.name), manifest.files.frames)) void frame;
    })().then(() => assert.fail('accepted a missing file'), (e) => e);
    assert.equal(err.code, FRAMES_ERRORS.missing);
  });
});
