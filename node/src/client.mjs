// The folder protocol's Node side (README, "The folder protocol"): submit a video (and its job
// sidecar) by .part + rename, wait for its outcome, stream its frames verified, read daemon
// status and the progress of one job.
//
// Which id is which: submit() returns the id wait() takes, the client's job id (`jobId`, echoed
// in the outcome as client.job_id and in status current_job.client_job_id) or, without one, the
// video's inbox name (`input_name` in status). The manifest's own `job_id` is the daemon's id.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PosedError } from './errors.mjs';
import { baseName, exists, readdirOrEmpty, readJson, renameWithRetry } from './files.mjs';
import { liveness } from './liveness.mjs';
import { listOutcomes, outcomeStem } from './naming.mjs';
import { readFrames } from './frames.mjs';
import { DEFAULT_SCHEMAS_DIR, loadValidator } from './schemas.mjs';
import { sidecarText } from './sidecar.mjs';

const IGNORED_SUFFIXES = ['.part', '.tmp', '.crdownload', '.partial'];
const BAD_SIDECAR = 'E_BAD_SIDECAR';

/**
 * @param {object} config
 * @param {string} config.inbox   folder the daemon watches (a Windows path on Windows)
 * @param {string} config.outbox  folder the daemon publishes into
 * @param {string} [config.schemasDir]  the daemon's schemas; the package carries its own copy
 * @param {number} [config.pollMs=200]  first poll delay; grows x1.5 up to maxPollMs
 * @param {number} [config.maxPollMs=2000]
 * @param {number} [config.brokenJsonGraceMs=10000]  how long unparsable JSON is re-read before failing
 */
export function createClient({ inbox, outbox, schemasDir = DEFAULT_SCHEMAS_DIR, pollMs = 200, maxPollMs = 2000, brokenJsonGraceMs = 10_000 }) {
  if (!inbox || !outbox) throw new TypeError('createClient needs { inbox, outbox }');
  const validate = loadValidator(schemasDir);
  const jobs = new Map(); // id -> { inboxName, hasJobId, before: outcome names that existed before submit }

  async function submit(file, { jobId, metadata, options, inputPath, name } = {}) {
    const inboxName = name ?? baseName(file);
    checkInboxName(inboxName);
    const wantsSidecar = jobId !== undefined || metadata !== undefined || options !== undefined || inputPath !== undefined;
    const body = wantsSidecar ? sidecarText({ jobId, metadata, options, inputPath }, inboxName) : null;
    const id = jobId ?? inboxName;
    const target = path.join(inbox, inboxName);
    if (await exists(target)) throw new PosedError('EEXIST', `${target} is already in the inbox; use another name`);
    jobs.set(id, { inboxName, hasJobId: jobId !== undefined, before: new Set(await outcomeNames(id, inboxName)) });
    const sidecar = path.join(inbox, `${inboxName}.job.json`);
    try {
      if (body) {
        await fs.writeFile(`${sidecar}.part`, body, 'utf8');
        await renameWithRetry(`${sidecar}.part`, sidecar);
      }
      await fs.copyFile(file, `${target}.part`);
      await renameWithRetry(`${target}.part`, target);
    } catch (err) {
      await Promise.all([fs.rm(`${target}.part`, { force: true }), fs.rm(`${sidecar}.part`, { force: true })]);
      if (body && !(await exists(target))) await fs.rm(sidecar, { force: true });
      throw err;
    }
    return id;
  }

  async function outcomeNames(id, inboxName) {
    const stems = [...new Set([outcomeStem(id), outcomeStem(inboxName)])];
    return (await Promise.all(stems.map((stem) => listOutcomes(outbox, stem)))).flat().map((o) => o.name);
  }

  // The outcomes that may answer `id`: under the job id's stem; and, for a job id, also under the
  // video's name, where the daemon answers a sidecar it cannot use (E_BAD_SIDECAR) when it could
  // not read a valid job id from it. Outcomes that existed before submit() are not ours.
  async function candidates(id) {
    const job = jobs.get(id) ?? { inboxName: id, hasJobId: false, before: new Set() };
    const own = (await listOutcomes(outbox, outcomeStem(id))).map((o) => ({ ...o, underVideoName: false }));
    const byName = job.hasJobId && outcomeStem(job.inboxName) !== outcomeStem(id)
      ? (await listOutcomes(outbox, outcomeStem(job.inboxName))).filter((o) => o.kind === 'error').map((o) => ({ ...o, underVideoName: true }))
      : [];
    return [...own, ...byName].filter((o) => !job.before.has(o.name));
  }

  async function wait(id, { timeoutMs = 60 * 60_000, onProgress, signal } = {}) {
    const deadline = Date.now() + timeoutMs;
    let delay = pollMs;
    let brokenSince = null;
    let lastProgress = '';
    let lastProblem = '';
    for (;;) {
      signal?.throwIfAborted();
      for (const output of await candidates(id)) {
        const read = await readJson(path.join(outbox, output.name));
        if (read.ok) {
          // Under the video's name only a bad-sidecar report is ours (another upload of a video
          // with the same name may publish there too).
          if (output.underVideoName && read.doc?.error?.code !== BAD_SIDECAR) continue;
          return settle(id, output, read.doc);
        }
        lastProblem = `${output.name}: ${read.reason}`;
        brokenSince ??= read.broken ? Date.now() : null;
        if (brokenSince !== null && Date.now() - brokenSince > brokenJsonGraceMs) {
          throw new PosedError('E_CLIENT_BAD_JSON', `${output.name} stays unparsable: ${read.reason}`);
        }
        delay = pollMs; // it is there: read again soon
      }
      if (onProgress) lastProgress = await reportProgress(id, onProgress, lastProgress);
      if (Date.now() >= deadline) {
        const why = lastProblem ? ` (last read problem: ${lastProblem})` : '';
        throw new PosedError('E_CLIENT_TIMEOUT', `no result or error report for ${id} within ${timeoutMs} ms${why}`);
      }
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), undefined, signal ? { signal } : undefined);
      delay = Math.min(delay * 1.5, maxPollMs);
    }
  }

  function settle(id, output, doc) {
    const problems = validate(doc);
    if (problems) throw new PosedError('E_CLIENT_SCHEMA', `${output.name} does not match its schema: ${problems}`, { document: doc });
    if (output.kind === 'result') return doc;
    const { code, message, hint } = doc.error;
    throw new PosedError(code, `${id}: ${message}`, { report: doc, hint, published: output.name });
  }

  async function reportProgress(id, onProgress, lastProgress) {
    const found = await progress(id);
    if (!found) return lastProgress;
    const key = `${found.stage}:${found.frames_done}:${found.attempt}`;
    if (key !== lastProgress) onProgress(found);
    return key;
  }

  /**
   * The job `id` (what submit() returned) as a daemon is processing it now: its status
   * current_job plus `daemon` (name), `state` and `liveness`; null when no daemon has it.
   * Matched by current_job.client_job_id, or, for a video without a job id, by input_name.
   */
  async function progress(id) {
    const job = jobs.get(id);
    for (const daemon of await status()) {
      const current = daemon.current_job;
      if (!current) continue;
      const mine = isMine(current, id, job);
      if (mine) return { ...current, daemon: daemon.daemon.name, state: daemon.state, liveness: daemon.liveness };
    }
    return null;
  }

  async function status() {
    const dir = path.join(outbox, '.posed', 'status');
    const docs = [];
    for (const name of (await readdirOrEmpty(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'))) {
      const file = path.join(dir, name);
      const read = await readJson(file, 3);
      if (!read.ok || validate(read.doc)) continue;
      const mtimeMs = await fs.stat(file).then((s) => s.mtimeMs, () => undefined);
      docs.push({ ...read.doc, liveness: liveness(read.doc, { mtimeMs }) });
    }
    return docs.sort((a, b) => a.daemon.name.localeCompare(b.daemon.name));
  }

  /**
   * The frames of a result (the manifest wait() resolved with), one object per frame, in order,
   * streamed and verified (see readFrames); each person carries `named` keypoints and joints.
   */
  function frames(result, { validate: check = true, names = true } = {}) {
    const entry = result.files.frames;
    return readFrames(path.join(outbox, entry.name), entry, { validate: check ? validate : null, backend: names ? result.backend : null });
  }

  return { submit, wait, frames, status, progress, validate, inbox, outbox };
}

// current_job.client_job_id is the producer's job id (null without one); a daemon older than
// that field names the job by its video's inbox name only.
function isMine(current, id, job) {
  const inboxName = job?.inboxName ?? id;
  if (!('client_job_id' in current)) return current.input_name === inboxName;
  if (current.client_job_id) return current.client_job_id === id && (job?.hasJobId ?? true);
  return !job?.hasJobId && current.input_name === inboxName;
}

function checkInboxName(name) {
  const lower = name.toLowerCase();
  if (!name || name.startsWith('.') || name.startsWith('~$') || name.includes('/') || name.includes('\\') || IGNORED_SUFFIXES.some((s) => lower.endsWith(s))) {
    throw new PosedError('E_CLIENT_BAD_NAME', `inbox name ${JSON.stringify(name)} would be ignored by the daemon`);
  }
}
