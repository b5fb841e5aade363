// End to end: the reference client against a real `posed run` subprocess on a temp inbox/outbox.
// Skips itself when the daemon is not installed (.venv/bin/posed; ./scripts/test.sh creates it).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient, loadValidator } from '../src/index.mjs';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const POSED = path.join(REPO, '.venv', 'bin', 'posed');
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');
const CLIP = path.join(REPO, '..', 'shared', 'media', 'running-2s-320.mp4');
const CLIP_FRAMES = 60;
const LONG_LOOPS = 10; // the clip played 10 times: 600 frames, long enough to watch progress
const skip = !existsSync(POSED)
  ? `${POSED} does not exist: run ./scripts/test.sh (it creates .venv) to include the end-to-end tests`
  : !existsSync(CLIP)
    ? `test clip ${CLIP} is missing`
    : false;

describe('end to end against `posed run`', { skip, timeout: 300_000 }, () => {
  let root, inbox, outbox, daemon, client;
  const daemonOutput = [];

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-e2e-'));
    inbox = path.join(root, 'inbox');
    outbox = path.join(root, 'outbox');
    await fs.mkdir(inbox);
    await fs.mkdir(outbox);
    const args = ['run', '--inbox', inbox, '--outbox', outbox, 'daemon.name=node-e2e', 'inbox.settle_s=0.5',
      'inbox.poll_interval_s=0.2', `daemon.state_dir=${path.join(root, 'state')}`];
    daemon = spawn(POSED, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [daemon.stdout, daemon.stderr]) {
      stream.on('data', (chunk) => {
        daemonOutput.push(chunk.toString());
        if (daemonOutput.length > 400) daemonOutput.shift();
      });
    }
    client = createClient({ inbox, outbox, pollMs: 100, maxPollMs: 500 });
  });

  after(async () => {
    await stopDaemon();
    await fs.rm(root, { recursive: true, force: true });
  });

  async function stopDaemon() {
    if (!daemon || daemon.exitCode !== null || daemon.signalCode !== null) return;
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGTERM'); // warm stop: the daemon finishes or checkpoints, then exits
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }

  function explain(err) {
    // On failure, show what the daemon said: the test alone rarely says why.
    err.message += `\n--- posed output (tail) ---\n${daemonOutput.join('').slice(-4000)}`;
    return err;
  }

  test('a good video resolves with a valid result of 60 frames', { timeout: 90_000 }, async () => {
    const id = await client.submit(CLIP, { name: 'good.mp4' });
    assert.equal(id, 'good.mp4');
    const result = await client.wait(id, { timeoutMs: 80_000 }).catch((err) => { throw explain(err); });
    assert.equal(result.status, 'ok');
    assert.equal(result.summary.frames, CLIP_FRAMES);
    assert.equal(result.input.name, 'good.mp4');
    assert.equal(result.client, undefined);
    assert.ok(existsSync(path.join(outbox, 'good.mp4.result.json')));
    assert.equal(result.files.frames.name, 'good.mp4.frames.jsonl');
    const frames = [];
    for await (const frame of client.frames(result)) frames.push(frame);
    assert.equal(frames.length, CLIP_FRAMES);
    const [person] = frames[0].people;
    assert.equal(person.keypoints.length, result.backend.keypoint_names.length);
    assert.equal(frames[0].frame_number, undefined); // the legacy flat fields only on request
  });

  test('a sidecar job id names the result and its metadata comes back', { timeout: 90_000 }, async () => {
    const metadata = { upload: 1, who: 'e2e', note: 'Läufer 🏃' };
    const id = await client.submit(CLIP, { jobId: 'e2e-sidecar', name: 'sidecar.mp4', metadata, options: { start_frame: 10, end_frame: 20, legacy_fields: true } });
    assert.equal(id, 'e2e-sidecar');
    // Also watch the video's own name, so a daemon that ignores the sidecar fails fast.
    const stop = new AbortController();
    const underJobId = client.wait(id, { timeoutMs: 80_000, signal: stop.signal });
    const underVideoName = client.wait('sidecar.mp4', { timeoutMs: 80_000, signal: stop.signal }).then(
      () => 'video name',
      (err) => (err.name === 'AbortError' ? 'aborted' : 'video name'),
    );
    const winner = await Promise.race([underJobId.then((doc) => ({ doc })), underVideoName.then((how) => ({ how }))]).catch((err) => ({ err }));
    stop.abort();
    await Promise.allSettled([underJobId, underVideoName]);
    if (winner.err) throw explain(winner.err);
    assert.ok(winner.doc, 'the daemon ignored the sidecar: it published under sidecar.mp4, not e2e-sidecar');
    assert.deepEqual(winner.doc.client, { job_id: 'e2e-sidecar', metadata });
    const frames = [];
    for await (const frame of client.frames(winner.doc)) frames.push(frame);
    assert.equal(frames.length, 10);
    assert.equal(frames[0].frame_index, 10);
    assert.equal(frames[0].frame_number, 10); // asked for: the old service's flat fields ride along
    assert.equal(frames[0].frame_width, winner.doc.video.width);
  });

  test('a bad option beside a valid job id rejects wait(jobId) with E_BAD_SIDECAR, not a timeout', { timeout: 90_000 }, async () => {
    // submit() refuses this sidecar itself; a producer that does not check writes it as is.
    await assert.rejects(client.submit(CLIP, { jobId: 'e2e-bad-option', name: 'badopt.mp4', options: { preview: 'yes' } }),
      (err) => err.code === 'E_CLIENT_BAD_SIDECAR');
    const sidecar = path.join(inbox, 'badopt.mp4.job.json');
    await fs.writeFile(`${sidecar}.part`, JSON.stringify({ job_id: 'e2e-bad-option', options: { preview: 'yes' } }));
    await fs.rename(`${sidecar}.part`, sidecar);
    await fs.copyFile(CLIP, path.join(inbox, 'badopt.mp4.part'));
    await fs.rename(path.join(inbox, 'badopt.mp4.part'), path.join(inbox, 'badopt.mp4'));
    const failure = await client.wait('e2e-bad-option', { timeoutMs: 80_000 }).then(() => assert.fail('resolved'), (err) => err);
    if (failure.code !== 'E_BAD_SIDECAR') throw explain(failure);
    assert.equal(failure.report.client.job_id, 'e2e-bad-option');
    assert.equal(failure.report.error.details.field, 'options.preview');
  });

  test('a text file named x.mp4 rejects with E_NOT_A_VIDEO', { timeout: 90_000 }, async () => {
    const text = path.join(root, 'x.mp4');
    await fs.writeFile(text, 'this is not a video\n');
    const id = await client.submit(text);
    const failure = await client.wait(id, { timeoutMs: 80_000 }).then(
      () => assert.fail('a text file was accepted as a video'),
      (err) => err,
    );
    if (failure.code !== 'E_NOT_A_VIDEO') throw explain(failure);
    assert.equal(failure.report.status, 'error');
    assert.equal(failure.report.input.name, 'x.mp4');
  });

  test('a sidecar the daemon refuses still answers wait(jobId), under whichever name the daemon used', { timeout: 90_000 }, async () => {
    // input_path outside the daemon's roots: only the daemon knows its roots, so submit() lets it through.
    const id = await client.submit(CLIP, { jobId: 'e2e-bad-sidecar', name: 'refused.mp4', inputPath: 'C:\\elsewhere\\a.mov' });
    const failure = await client.wait(id, { timeoutMs: 80_000 }).then(() => assert.fail('resolved'), (err) => err);
    if (failure.code !== 'E_BAD_SIDECAR') throw explain(failure);
    assert.equal(failure.report.error.details.field, 'input_path');
    assert.match(failure.message, /input_path/);
    assert.ok(['e2e-bad-sidecar.error.json', 'refused.mp4.error.json'].includes(failure.published), failure.published);
  });

  test('status() is readable while a long video is processed', { timeout: 180_000 }, async (t) => {
    const long = makeLongClip(path.join(root, 'long-source.mp4'));
    if (!long) {
      t.skip('no ffmpeg (imageio-ffmpeg in .venv) to loop the clip into a long video');
      return;
    }
    const id = await client.submit(long, { name: 'long.mp4' });
    const progress = [];
    const waiting = client.wait(id, { timeoutMs: 170_000, onProgress: (p) => progress.push(p) });
    let busy = null;
    for (const deadline = Date.now() + 160_000; !busy && Date.now() < deadline; await sleep(200)) {
      busy = (await client.status()).find((s) => s.current_job?.input_name === 'long.mp4' && s.current_job.frames_done > 0);
      if (await hasOutput(outbox, 'long.mp4')) break; // finished before we looked: machine too fast
    }
    const result = await waiting.catch((err) => { throw explain(err); });
    assert.equal(result.files.frames.lines, CLIP_FRAMES * LONG_LOOPS);
    if (!busy) {
      t.diagnostic('the long video finished between two status polls; nothing to check mid-run');
      return;
    }
    assert.equal(busy.daemon.name, 'node-e2e');
    assert.equal(busy.state, 'busy');
    // Judged when the snapshot was read, not after waiting for the whole video (issue 10, item 17).
    assert.equal(busy.liveness.verdict, 'alive', busy.liveness.reason);
    assert.ok(progress.length > 0, 'onProgress was called');
    assert.ok(progress.every((p) => p.input_name === 'long.mp4'));
  });

  test('after stopping, every file in the outbox validates against its schema', { timeout: 60_000 }, async () => {
    await stopDaemon();
    const validate = loadValidator();
    const files = (await fs.readdir(outbox)).filter((n) => !n.startsWith('.') && /\.(result|error)\.json$/.test(n)).map((n) => path.join(outbox, n));
    const statusDir = path.join(outbox, '.posed', 'status');
    files.push(...(await fs.readdir(statusDir)).filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => path.join(statusDir, n)));
    assert.ok(files.some((f) => f.startsWith(statusDir)), 'a status file exists');
    assert.ok(files.some((f) => !f.startsWith(statusDir)), 'a result or error report exists');
    for (const file of files) {
      const problems = validate(JSON.parse(await fs.readFile(file, 'utf8')));
      assert.equal(problems, null, `${file}: ${problems}`);
    }
    const [status] = await client.status();
    assert.equal(status.state, 'stopped');
    assert.equal(status.liveness.verdict, 'stopped');
  });
});

function makeLongClip(target) {
  try {
    const ffmpeg = execFileSync(PYTHON, ['-c', 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())'], { encoding: 'utf8' }).trim();
    // -stream_loop repeats the input; stream copy keeps it fast and the timestamps continuous.
    execFileSync(ffmpeg, ['-v', 'error', '-y', '-stream_loop', String(LONG_LOOPS - 1), '-i', CLIP, '-c', 'copy', target]);
    return target;
  } catch {
    return null;
  }
}

async function hasOutput(outbox, stem) {
  const names = await fs.readdir(outbox);
  return names.some((n) => n.startsWith(`${stem}.`) && /\.(result|error)\.json$/.test(n));
}
