// The queue producer against a real redis-server (Debian package) on a free port in a temp dir.
// The consuming side here is a plain BullMQ Worker playing posed's part of the protocol (progress,
// return value, "E_CODE: ..." failures); the Python suite drives the real posed intake with this
// producer (tests/test_queue_intake.py, tests/test_queue_e2e.py).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnrecoverableError, Worker } from 'bullmq';
import { createProducer, failureCode, JOB_NAME, PosedQueueError } from '../src/queue.mjs';

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRedis(dir) {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  for (let i = 0; i < 200; i += 1) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (up) return { proc, url: `redis://127.0.0.1:${port}/0` };
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${port}`);
}

describe('queue producer', { timeout: 120_000 }, () => {
  let dir, redis, producer;

  before(async () => {
    assert.ok(haveRedis, 'redis-server is not installed: apt-get update && apt-get install -y redis-server');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-queue-'));
    redis = await startRedis(dir);
    producer = createProducer({ url: redis.url, queue: 'posed-node-test' });
  });

  after(async () => {
    await producer?.close();
    redis?.proc.kill('SIGTERM');
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  test('enqueue adds a "pose" job with the data and retry options posed expects', async () => {
    const job = await producer.enqueue('C:\\posed\\uploads\\a.mov', { jobId: 'upload-1', metadata: { user: 12 }, options: { end_frame: 30 } });
    const stored = await producer.queue.getJob(job.id);
    assert.equal(stored.name, JOB_NAME);
    assert.deepEqual(stored.data, { input: 'C:\\posed\\uploads\\a.mov', job_id: 'upload-1', options: { end_frame: 30 }, metadata: { user: 12 } });
    assert.equal(stored.opts.attempts, 3);
    assert.deepEqual(stored.opts.backoff, { type: 'exponential', delay: 10_000 });
    await stored.remove();
  });

  test('data that breaks queue-job.schema.json is refused before it reaches Redis', async () => {
    const before = await producer.counts();
    let deep = 1;
    for (let i = 0; i < 33; i++) deep = { k: deep }; // deeper than the daemon's 32 levels
    const refused = [['', {}], ['/x.mp4', { jobId: '../evil' }], ['/x.mp4', { options: { start_fame: 1 } }], ['/x.mp4', { jobId: 'COM1' }],
      ['/x.mp4', { jobId: 'LPT0' }], ['/x.mp4', { jobId: 'com0.upload' }],
      ['/x.mp4', { metadata: deep }], ['/x.mp4', { metadata: { n: Infinity } }], ['/x.mp4', { options: { start_frame: 9, end_frame: 3 } }]];
    for (const [input, extra] of refused) {
      await assert.rejects(producer.enqueue(input, extra), (err) => err instanceof PosedQueueError && err.code === 'E_CLIENT_BAD_JOB_DATA');
    }
    assert.deepEqual(await producer.counts(), before);
  });

  test('metadata nested 3,000 levels or bigger than the daemon reads is refused before it reaches Redis', async () => {
    const before = await producer.counts();
    let deep = {};
    for (let i = 0; i < 3000; i += 1) deep = { a: deep };
    for (const metadata of [deep, { blob: 'x'.repeat(300 * 1024) }]) {
      await assert.rejects(producer.enqueue('/x.mp4', { metadata }),
        (err) => err instanceof PosedQueueError && err.code === 'E_CLIENT_BAD_JOB_DATA' && /deeper than 32|bytes of JSON/.test(err.message));
    }
    await producer.queue.remove((await producer.enqueue('/x.mp4', { metadata: { nested: { ok: [1, 2, { three: 3 }] } } })).id);
    assert.deepEqual(await producer.counts(), before);
  });

  test('wait resolves with the return value after progress events; failures carry the code', async () => {
    const worker = new Worker('posed-node-test', async (job) => {
      if (job.data.input.endsWith('bad.mp4')) throw new UnrecoverableError('E_TRUNCATED: the file is cut short (report: /o/x.error.json)');
      await job.updateProgress({ stage: 'running', frames_done: 30, frames_total: 60, percent: 50 });
      await sleep(50);
      return { status: 'ok', summary: { frames: 60 } };
    }, { connection: { url: redis.url } });
    try {
      const good = await producer.enqueue('/srv/share/good.mp4');
      const bad = await producer.enqueue('/srv/share/bad.mp4');
      const seen = [];
      const result = await producer.wait(good, { timeoutMs: 60_000, onProgress: (p) => seen.push(p) });
      assert.deepEqual(result, { status: 'ok', summary: { frames: 60 } });
      assert.equal(seen.at(-1).frames_done, 30);
      await assert.rejects(producer.wait(bad, { timeoutMs: 60_000 }), (err) => err.code === 'E_TRUNCATED' && /report: \/o\/x\.error\.json/.test(err.message));
      const failed = await producer.queue.getJob(bad.id);
      assert.equal(failed.attemptsMade, 1); // unrecoverable: not retried although attempts is 3
    } finally {
      await worker.close();
    }
  });

  test('failureCode reads the code a posed failure reason starts with', () => {
    assert.equal(failureCode('E_BAD_JOB_DATA: queue job data.input: ...'), 'E_BAD_JOB_DATA');
    assert.equal(failureCode('job stalled more than allowable limit'), null);
  });
});
