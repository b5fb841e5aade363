// Unit tests of the reference client against a temp inbox/outbox that the tests fill themselves.
import assert from 'node:assert/strict';
import { promises as fs, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { spawnSync } from 'node:child_process';
import { createClient, DEFAULT_SCHEMAS_DIR, DOWN_AFTER_INTERVALS, heartbeatAgeMs, liveness, loadValidator, PosedError } from '../src/index.mjs';

const EXAMPLES = fileURLToPath(new URL('../../daemon/schemas/examples/', import.meta.url));
const example = (name) => JSON.parse(readFileSync(path.join(EXAMPLES, `${name}.example.json`), 'utf8'));

let root, inbox, outbox, client, video;

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-client-'));
  inbox = path.join(root, 'inbox');
  outbox = path.join(root, 'outbox');
  await fs.mkdir(inbox);
  await fs.mkdir(outbox);
  video = path.join(root, 'source clip ü.mp4');
  await fs.writeFile(video, Buffer.from('not really a video, but bytes to copy'));
  client = createClient({ inbox, outbox, pollMs: 20, maxPollMs: 100 });
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function publish(name, doc) {
  // As the daemon does: write under .tmp/, then rename into place.
  await fs.mkdir(path.join(outbox, '.tmp'), { recursive: true });
  const tmp = path.join(outbox, '.tmp', `${name}.${process.pid}`);
  await fs.writeFile(tmp, typeof doc === 'string' ? doc : JSON.stringify(doc));
  await fs.rename(tmp, path.join(outbox, name));
}

function resultFor(jobId) {
  return { ...example('result'), job_id: jobId };
}

describe('submit', () => {
  test('copies the video into the inbox under its own name and returns that name as the id', async () => {
    const id = await client.submit(video);
    assert.equal(id, 'source clip ü.mp4');
    assert.deepEqual(await fs.readdir(inbox), ['source clip ü.mp4']);
    assert.deepEqual(await fs.readFile(path.join(inbox, id)), await fs.readFile(video));
  });

  test('writes the sidecar next to the video when a job id, metadata or options are given', async () => {
    const id = await client.submit(video, { jobId: 'upload-4711', name: 'abc.mp4', metadata: { user: 12 }, options: { start_frame: 5 } });
    assert.equal(id, 'upload-4711');
    assert.deepEqual((await fs.readdir(inbox)).sort(), ['abc.mp4', 'abc.mp4.job.json']);
    const sidecar = JSON.parse(await fs.readFile(path.join(inbox, 'abc.mp4.job.json'), 'utf8'));
    assert.deepEqual(sidecar, { job_id: 'upload-4711', metadata: { user: 12 }, options: { start_frame: 5 } });
  });

  test('refuses to replace a file that is already in the inbox', async () => {
    await fs.writeFile(path.join(inbox, 'abc.mp4'), 'earlier upload');
    await assert.rejects(client.submit(video, { name: 'abc.mp4' }), { code: 'EEXIST' });
    assert.equal(await fs.readFile(path.join(inbox, 'abc.mp4'), 'utf8'), 'earlier upload');
  });

  test('refuses job ids and names the daemon could not use', async () => {
    for (const jobId of ['../x', '.hidden', 'a b', 'CON', 'LPT0', 'com0.x', 'a~2', 'x'.repeat(129), 'ends.', 'victim.mp4', 'other.MOV']) {
      await assert.rejects(client.submit(video, { jobId }), { code: 'E_CLIENT_BAD_JOB_ID' }, jobId);
    }
    for (const name of ['a.mp4.part', '.a.mp4', '~$a.mp4', 'x.tmp', 'a/b.mp4']) {
      await assert.rejects(client.submit(video, { name }), { code: 'E_CLIENT_BAD_NAME' }, name);
    }
    assert.deepEqual(await fs.readdir(inbox), []);
  });

  test('leaves nothing behind when the copy fails', async () => {
    await assert.rejects(client.submit(path.join(root, 'missing.mp4'), { jobId: 'j1' }), { code: 'ENOENT' });
    assert.deepEqual(await fs.readdir(inbox), []);
  });
});

describe('wait', () => {
  test('resolves with a result that appears after a delay', async () => {
    const id = await client.submit(video, { name: 'abc.mp4' });
    setTimeout(() => publish('abc.mp4.result.json', resultFor('abc.mp4')), 250);
    const result = await client.wait(id, { timeoutMs: 5000 });
    assert.equal(result.status, 'ok');
    assert.equal(result.job_id, 'abc.mp4');
  });

  test('finds a result under the outcome name the daemon uses: NFD kept, what NTFS cannot hold changed', async () => {
    const nfd = await client.submit(video, { name: 'Cafe\u0301.mp4' });
    await publish('Cafe\u0301.mp4.result.json', resultFor(nfd));
    assert.equal((await client.wait(nfd, { timeoutMs: 5000 })).job_id, nfd);
    const device = await client.submit(video, { name: 'con .mp4' });
    await publish('_con .mp4.result.json', resultFor(device));
    assert.equal((await client.wait(device, { timeoutMs: 5000 })).job_id, device);
  });

  test('rejects with the code and the report of an error report', async () => {
    const id = await client.submit(video, { name: 'x.mp4' });
    await publish('x.mp4.error.json', example('error'));
    const failure = await client.wait(id, { timeoutMs: 5000 }).then(() => assert.fail('resolved'), (err) => err);
    assert.ok(failure instanceof PosedError && failure instanceof Error);
    assert.equal(failure.code, 'E_NOT_A_VIDEO');
    assert.equal(failure.report.error.code, 'E_NOT_A_VIDEO');
    assert.match(failure.hint, /not a video container/);
  });

  test('a job id also waits for the video name, where a sidecar without a usable job id is answered', async () => {
    const id = await client.submit(video, { jobId: 'upload-12', name: 'clip.mp4', options: { start_frame: 1 } });
    const report = { ...example('error'), input: { ...example('error').input, name: 'clip.mp4' } };
    report.error = { ...report.error, code: 'E_BAD_SIDECAR', message: 'clip.mp4.job.json: job sidecar: the document is not valid JSON' };
    delete report.client; // the daemon could not read a job id: no client echo
    setTimeout(() => publish('clip.mp4.error.json', report), 100);
    const failure = await client.wait(id, { timeoutMs: 5000 }).then(() => assert.fail('resolved'), (err) => err);
    assert.equal(failure.code, 'E_BAD_SIDECAR');
  });

  test('an outcome under the video name that carries another job id is not this job\'s', async () => {
    const id = await client.submit(video, { jobId: 'upload-13', name: 'same.mp4' });
    await publish('same.mp4.result.json', { ...resultFor('x'), client: { job_id: 'same.mp4', metadata: null } });
    setTimeout(() => publish('upload-13.result.json', { ...resultFor('upload-13'), client: { job_id: 'upload-13', metadata: null } }), 150);
    const result = await client.wait(id, { timeoutMs: 5000 });
    assert.equal(result.client.job_id, 'upload-13');
  });

  test('reads again while the file is still being written (a Windows reader can see it mid-rename)', async () => {
    const text = JSON.stringify(resultFor('job-2'));
    await fs.writeFile(path.join(outbox, 'job-2.result.json'), text.slice(0, 100));
    setTimeout(() => fs.writeFile(path.join(outbox, 'job-2.result.json'), text), 300);
    const result = await client.wait('job-2', { timeoutMs: 5000 });
    assert.equal(result.job_id, 'job-2');
  });

  test('retries a file it may not read yet', { skip: process.getuid?.() === 0 && 'root reads files whatever their mode' }, async () => {
    const file = path.join(outbox, 'job-3.result.json');
    await fs.writeFile(file, JSON.stringify(resultFor('job-3')));
    await fs.chmod(file, 0o000); // EACCES, as Windows answers while a scanner holds the file
    setTimeout(() => fs.chmod(file, 0o644), 300);
    assert.equal((await client.wait('job-3', { timeoutMs: 5000 })).job_id, 'job-3');
  });

  test('ignores temp files and dot-directories', async () => {
    await fs.mkdir(path.join(outbox, '.tmp'));
    await fs.writeFile(path.join(outbox, '.tmp', 'job-4.result.json'), '{"half":');
    await fs.writeFile(path.join(outbox, '.job-4.result.json'), 'nope');
    await fs.writeFile(path.join(outbox, 'job-4.result.json.tmp'), 'nope');
    await fs.writeFile(path.join(outbox, 'job-40.result.json'), 'another job');
    setTimeout(() => publish('job-4.result.json', resultFor('job-4')), 200);
    assert.equal((await client.wait('job-4', { timeoutMs: 5000 })).job_id, 'job-4');
  });

  test('waits for the new copy when the id was used before (~2 suffix)', async () => {
    await publish('again.result.json', resultFor('again'));
    const id = await client.submit(video, { jobId: 'again', name: 'again.mp4' });
    setTimeout(() => publish('again~2.error.json', { ...example('error'), job_id: 'again' }), 200);
    await assert.rejects(client.wait(id, { timeoutMs: 5000 }), { code: 'E_NOT_A_VIDEO' });
  });

  test('rejects a document that breaks its schema', async () => {
    const { summary, ...withoutSummary } = resultFor('job-5');
    await publish('job-5.result.json', withoutSummary);
    await assert.rejects(client.wait('job-5', { timeoutMs: 5000 }), (err) => err.code === 'E_CLIENT_SCHEMA' && /summary/.test(err.message));
  });

  test('gives up on JSON that never becomes parsable', async () => {
    client = createClient({ inbox, outbox, pollMs: 20, maxPollMs: 50, brokenJsonGraceMs: 300 });
    await fs.writeFile(path.join(outbox, 'job-6.result.json'), '{"schema": "posed.res');
    await assert.rejects(client.wait('job-6', { timeoutMs: 5000 }), { code: 'E_CLIENT_BAD_JSON' });
  });

  test('times out with a clear code', async () => {
    const started = Date.now();
    await assert.rejects(client.wait('never', { timeoutMs: 300 }), { code: 'E_CLIENT_TIMEOUT' });
    // Not before the timeout; how long after depends on the machine's load, so it is not checked.
    assert.ok(Date.now() - started >= 300);
  });

  test('can be aborted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(client.wait('never', { timeoutMs: 5000, signal: controller.signal }), { name: 'AbortError' });
  });

  test('reports progress from the daemon status while waiting, matching the job by the client job id', async () => {
    const id = await client.submit(video, { jobId: 'job-7', name: 'seven.mp4' });
    const status = example('status');
    status.current_job = { ...status.current_job, job_id: 'seven.mp4@d1-01', client_job_id: 'job-7', input_name: 'seven.mp4', frames_done: 10, frames_total: 60, percent: 16.7 };
    await fs.mkdir(path.join(outbox, '.posed', 'status'), { recursive: true });
    await fs.writeFile(path.join(outbox, '.posed', 'status', 'wsl-gpu-1.json'), JSON.stringify(status));
    const seen = [];
    setTimeout(() => publish('job-7.result.json', resultFor('job-7')), 300);
    await client.wait(id, { timeoutMs: 5000, onProgress: (p) => seen.push(p) });
    assert.equal(seen.length, 1); // unchanged progress is reported once
    assert.equal(seen[0].frames_done, 10);
    assert.equal(seen[0].daemon, 'wsl-gpu-1');
    assert.equal(seen[0].state, 'busy');
  });
});

describe('wait: the bad-sidecar rule', () => {
  const badSidecar = () => ({ ...example('error'), error: { ...example('error').error, code: 'E_BAD_SIDECAR', message: 'abc.mp4.job.json: job sidecar: input_path is outside the roots', stage: 'sidecar', details: { field: 'input_path' } } });

  test("a job id's bad-sidecar report published under the video's name answers wait(jobId)", async () => {
    await publish('abc.mp4.error.json', badSidecar()); // an earlier upload's: not ours
    const id = await client.submit(video, { jobId: 'j-9', name: 'abc.mp4' });
    setTimeout(() => publish('abc.mp4~2.error.json', badSidecar()), 200);
    const failure = await client.wait(id, { timeoutMs: 5000 }).then(() => assert.fail('resolved'), (err) => err);
    assert.equal(failure.code, 'E_BAD_SIDECAR');
    assert.equal(failure.published, 'abc.mp4~2.error.json');
  });

  test('and so does one published under the job id', async () => {
    const id = await client.submit(video, { jobId: 'j-10', name: 'abc.mp4' });
    await publish('j-10.error.json', badSidecar());
    await assert.rejects(client.wait(id, { timeoutMs: 5000 }), { code: 'E_BAD_SIDECAR', published: 'j-10.error.json' });
  });

  test("under the video's name, anything but a bad-sidecar report is another upload's", async () => {
    const id = await client.submit(video, { jobId: 'j-11', name: 'abc.mp4' });
    await publish('abc.mp4.result.json', resultFor('abc.mp4'));
    await publish('abc.mp4~2.error.json', example('error'));
    await assert.rejects(client.wait(id, { timeoutMs: 600 }), { code: 'E_CLIENT_TIMEOUT' });
    await publish('j-11.result.json', resultFor('j-11'));
    assert.equal((await client.wait(id, { timeoutMs: 5000 })).job_id, 'j-11');
  });
});

describe('progress', () => {
  async function daemonIsOn(job) {
    const status = example('status');
    status.current_job = { ...status.current_job, ...job };
    await fs.mkdir(path.join(outbox, '.posed', 'status'), { recursive: true });
    await fs.writeFile(path.join(outbox, '.posed', 'status', 'wsl-gpu-1.json'), JSON.stringify(status));
  }

  test("maps a daemon's current job to the client's id: the job id, else the inbox name", async () => {
    const withId = await client.submit(video, { jobId: 'job-8', name: 'same.mp4' });
    await daemonIsOn({ client_job_id: 'job-8', input_name: 'same.mp4', frames_done: 7 });
    assert.equal((await client.progress(withId)).frames_done, 7);
    assert.equal(await client.progress('same.mp4'), null); // the video name is not the job's id here
    await daemonIsOn({ client_job_id: 'other', input_name: 'same.mp4' });
    assert.equal(await client.progress(withId), null);
    await fs.rm(path.join(inbox, 'same.mp4'));
    const byName = await client.submit(video, { name: 'plain.mp4' });
    await daemonIsOn({ client_job_id: null, input_name: 'plain.mp4', frames_done: 3 });
    const found = await client.progress(byName);
    assert.equal(found.frames_done, 3);
    assert.equal(found.daemon, 'wsl-gpu-1');
    assert.ok(['alive', 'down'].includes(found.liveness.verdict));
  });
});

describe('status', () => {
  test('reads every daemon status file and skips temp and invalid ones', async () => {
    const dir = path.join(outbox, '.posed', 'status');
    await fs.mkdir(dir, { recursive: true });
    const second = example('status');
    second.daemon = { ...second.daemon, name: 'b-daemon' };
    second.state = 'ready';
    second.current_job = null;
    await fs.writeFile(path.join(dir, 'wsl-gpu-1.json'), JSON.stringify(example('status')));
    await fs.writeFile(path.join(dir, 'b-daemon.json'), JSON.stringify(second));
    await fs.writeFile(path.join(dir, '.wsl-gpu-1.json.tmp'), '{');
    await fs.writeFile(path.join(dir, 'broken.json'), '{"schema": "posed.status"}');
    const docs = await client.status();
    assert.deepEqual(docs.map((d) => d.daemon.name), ['b-daemon', 'wsl-gpu-1']);
    assert.equal(docs[0].state, 'ready');
    assert.ok(heartbeatAgeMs(docs[0], Date.parse('2025-01-31T12:00:10.200Z')) === 10_000);
  });

  test('says for each daemon whether it is alive, stopped or down, by the rule in the README', async () => {
    const dir = path.join(outbox, '.posed', 'status');
    await fs.mkdir(dir, { recursive: true });
    const doc = { ...example('status'), heartbeat_at: new Date().toISOString() };
    await fs.writeFile(path.join(dir, 'wsl-gpu-1.json'), JSON.stringify(doc));
    const [read] = await client.status();
    assert.equal(read.liveness.verdict, 'alive');
  });

  test('is an empty list before any daemon has run', async () => {
    assert.deepEqual(await client.status(), []);
  });
});

describe('schemas', () => {
  test('compile in Ajv strict mode', () => {
    for (const name of ['result', 'frame', 'error', 'status']) {
      const ajv = new Ajv2020({ strict: true });
      addFormats(ajv);
      ajv.compile(JSON.parse(readFileSync(path.join(DEFAULT_SCHEMAS_DIR, `${name}.schema.json`), 'utf8')));
    }
  });

  test('accept the examples and reject broken documents, as the Python validator does', () => {
    const validate = loadValidator();
    for (const name of ['result', 'error', 'status']) assert.equal(validate(example(name)), null, name);
    const result = example('result');
    delete result.files.frames.sha256;
    assert.match(validate(result), /sha256/);
    const frame = readFileSync(path.join(DEFAULT_SCHEMAS_DIR, 'examples', 'frames.example.jsonl'), 'utf8').split('\n')[0];
    const broken = { schema: 'posed.frame', ...JSON.parse(frame) };
    assert.equal(validate(broken), null);
    broken.people[0].bbox = [1, 2, 3];
    assert.match(validate(broken), /bbox/);
    assert.match(validate({ ...example('status'), state: 'sleeping' }), /state/);
    assert.match(validate({ ...example('error'), created_at: 'yesterday' }), /created_at/);
    assert.match(validate({ schema: 'posed.unknown' }), /unknown document schema/);
    assert.match(validate(null), /unknown document schema/);
  });
});

describe('liveness', () => {
  const doc = example('status'); // another host: its boot id is not ours
  const beat = Date.parse(doc.heartbeat_at);
  const interval = doc.status_interval_s ?? 2;

  test('a daemon elsewhere is down after DOWN_AFTER_INTERVALS status intervals without a heartbeat', () => {
    assert.equal(DOWN_AFTER_INTERVALS, 5);
    assert.equal(liveness(doc, { now: beat + 4.5 * interval * 1000 }).verdict, 'alive');
    const down = liveness(doc, { now: beat + 5.5 * interval * 1000 });
    assert.equal(down.verdict, 'down');
    assert.match(down.reason, /^no heartbeat for 11 s \(limit 5 x 2 s\)$/);
    assert.equal(down.pidChecked, false); // as from Windows: only the heartbeat half applies
  });

  test('a dead pid of a daemon on another kernel (or seen from Windows) waits for the heartbeat rule', () => {
    const exited = spawnSync(process.execPath, ['-e', '']).pid;
    const fresh = { ...doc, heartbeat_at: new Date().toISOString(), daemon: { ...doc.daemon, pid: exited } };
    const seen = liveness(fresh, { now: Date.parse(fresh.heartbeat_at) + 1000 });
    assert.deepEqual(seen, { verdict: 'alive', reason: 'heartbeat 1 s ago', pidChecked: false });
  });

  test('a clock that lags does not kill a live daemon: a freshly written file counts', () => {
    const now = beat + 600_000;
    assert.equal(liveness(doc, { now, mtimeMs: now - 1000 }).verdict, 'alive');
    assert.equal(liveness(doc, { now, mtimeMs: now - 11_000 }).verdict, 'down');
  });

  test('a clean stop says stopped', () => {
    assert.deepEqual(liveness({ ...doc, state: 'stopped' }, { now: beat + 3_600_000 }).verdict, 'stopped');
  });

  test('a daemon on this kernel whose pid is gone is down at once', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
    const exited = spawnSync(process.execPath, ['-e', '']).pid; // a pid that just ended
    const here = {
      boot_id: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
      pid_namespace: readlinkSync('/proc/self/ns/pid'),
    };
    const fresh = { ...doc, heartbeat_at: new Date().toISOString() };
    const gone = liveness({ ...fresh, daemon: { ...doc.daemon, ...here, pid: exited } });
    assert.deepEqual(gone, { verdict: 'down', reason: `pid ${exited} is gone`, pidChecked: true });
    const self = liveness({ ...fresh, daemon: { ...doc.daemon, ...here, pid: process.pid, start_time: undefined } });
    assert.equal(self.verdict, 'alive');
  });
});

describe('Windows paths', () => {
  test('a file given the Windows way or the POSIX way gets its base name in the inbox, on any OS', async () => {
    const { baseName } = await import('../src/files.mjs');
    assert.equal(baseName('C:\\uploads\\coach 1\\a.mov'), 'a.mov');
    assert.equal(baseName('\\\\wsl$\\Ubuntu\\srv\\b.mp4'), 'b.mp4');
    assert.equal(baseName('/mnt/c/uploads/c.mkv'), 'c.mkv');
    assert.equal(baseName('C:/mixed\\d.webm'), 'd.webm');
  });
});
