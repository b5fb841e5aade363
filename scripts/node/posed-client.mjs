// Reference client for the posed folder protocol (issue 4). Plain Node >= 18, ES module.
//
//   const posed = createClient({ inbox: 'C:\\posed\\inbox', outbox: 'C:\\posed\\outbox' });
//   const id = await posed.submit('C:\\uploads\\a.mov', { jobId: 'upload-4711', metadata: { user: 12 } });
//   const result = await posed.wait(id, { timeoutMs: 30 * 60_000, onProgress: (p) => console.log(p.percent) });
//   for await (const frame of posed.frames(result)) store(frame);   // one frame at a time, any length
//
// Protocol (see README.md): write <inbox>/<name>.part, then rename to <inbox>/<name>; an optional
// sidecar <inbox>/<name>.job.json goes first, the same way. The daemon publishes
// <outbox>/<stem>.result.json or <outbox>/<stem>.error.json (stem = jobId, else the file name,
// plus ~2, ~3... if taken) by renaming from <outbox>/.tmp/, and rewrites
// <outbox>/.posed/status/<daemon>.json every ~2 s. A result is a small manifest (what wait()
// resolves with) plus <stem>.frames.jsonl, one JSON object per frame, published before the
// manifest: stream it with frames(), never readFile + JSON.parse (long videos exceed V8's
// string limit).
//
// Windows facts this code is shaped by: a rename or read fails with EPERM/EBUSY/EACCES while an
// antivirus scanner, the indexer or the WSL 9p server holds the file, so those are retried with
// backoff (the graceful-fs pattern); fs.rename replaces an existing target, so the client checks
// first and never reuses a name; a reader may see a file mid-rename, so JSON that does not parse
// is read again before it counts as broken.

import { createHash } from 'node:crypto';
import { createReadStream, constants as fsConstants, promises as fs, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

export const DEFAULT_SCHEMAS_DIR = fileURLToPath(new URL('../../daemon/schemas/', import.meta.url));
export const TRANSIENT_CODES = new Set(['EBUSY', 'EPERM', 'EACCES', 'EAGAIN']);
const SCHEMA_FILES = {
  'posed.result': 'result.schema.json',
  'posed.error': 'error.schema.json',
  'posed.status': 'status.schema.json',
  'posed.frame': 'frame.schema.json',
};
// Same rule as the daemon's sidecar parser: the id becomes a Windows file name in the outbox.
const JOB_ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DEVICE_NAMES = /^(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])$/i;
// A job id that looks like a video file name may only be the video's own name (the daemon
// refuses it otherwise: it could take another upload's outcome name).
const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.m4v', '.avi', '.mkv', '.webm'];
const IGNORED_SUFFIXES = ['.part', '.tmp', '.crdownload', '.partial'];
// The daemon's outcome-name rule (README, "The folder protocol"; daemon/publishing/naming.py).
const NTFS_FORBIDDEN = /[<>:"/\\|?*\x00-\x1f\x7f]/g;
const RESERVED_STEMS = new Set(['CON', 'PRN', 'AUX', 'NUL', 'CONIN$', 'CONOUT$',
  ...['COM', 'LPT'].flatMap((device) => [...'0123456789\u00b9\u00b2\u00b3'].map((digit) => device + digit))]);
// Every file of an outcome shares the stem; the longest suffix decides how long it may be.
const OUTCOME_SUFFIXES = ['.result.json', '.error.json', '.frames.jsonl', '.motion.glb', '.preview.mp4'];
const MAX_STEM_BYTES = 255 - ('~9999'.length + Math.max(...OUTCOME_SUFFIXES.map((s) => s.length)) + 1);
// The liveness rule (README, "Health"; daemon/ops/health.py): down after this many status intervals.
export const DOWN_AFTER_INTERVALS = 5;
const DEFAULT_STATUS_INTERVAL_S = 2;

/** An error from the protocol: `.code` is E_* from an error report, or E_CLIENT_* from this client. */
export class PosedError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'PosedError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * @param {object} config
 * @param {string} config.inbox   folder the daemon watches
 * @param {string} config.outbox  folder the daemon publishes into
 * @param {string} [config.schemasDir]  daemon/schemas of the same posed version
 * @param {number} [config.pollMs=200]  first poll delay; grows x1.5 up to maxPollMs
 * @param {number} [config.maxPollMs=2000]
 * @param {number} [config.brokenJsonGraceMs=10000]  how long unparsable JSON is re-read before failing
 */
export function createClient({ inbox, outbox, schemasDir = DEFAULT_SCHEMAS_DIR, pollMs = 200, maxPollMs = 2000, brokenJsonGraceMs = 10_000 }) {
  if (!inbox || !outbox) throw new TypeError('createClient needs { inbox, outbox }');
  const validate = loadValidator(schemasDir);
  const knownOutputs = new Map(); // id -> names that existed before submit (older jobs with the same id)
  const inboxNames = new Map(); // id -> the video's inbox name: status files name jobs by it

  async function submit(file, { jobId, metadata, options, name } = {}) {
    const inboxName = name ?? path.basename(file);
    checkInboxName(inboxName);
    if (jobId !== undefined) checkJobId(jobId, inboxName);
    const id = jobId ?? inboxName;
    const target = path.join(inbox, inboxName);
    if (await exists(target)) throw new PosedError('EEXIST', `${target} is already in the inbox; use another name`);
    inboxNames.set(id, inboxName);
    knownOutputs.set(id, new Set((await listAnswers(id)).map((o) => o.name)));
    const sidecar = path.join(inbox, `${inboxName}.job.json`);
    const wantsSidecar = jobId !== undefined || metadata !== undefined || options !== undefined;
    try {
      if (wantsSidecar) {
        const body = JSON.stringify({ job_id: jobId, metadata, options }) + '\n';
        await fs.writeFile(`${sidecar}.part`, body, 'utf8');
        await renameWithRetry(`${sidecar}.part`, sidecar);
      }
      await fs.copyFile(file, `${target}.part`);
      await renameWithRetry(`${target}.part`, target);
    } catch (err) {
      await Promise.all([fs.rm(`${target}.part`, { force: true }), fs.rm(`${sidecar}.part`, { force: true })]);
      if (wantsSidecar && !(await exists(target))) await fs.rm(sidecar, { force: true });
      throw err;
    }
    return id;
  }

  async function wait(id, { timeoutMs = 60 * 60_000, onProgress, signal } = {}) {
    const deadline = Date.now() + timeoutMs;
    const ignore = knownOutputs.get(id) ?? new Set();
    let delay = pollMs;
    let brokenSince = null;
    let lastProgress = '';
    let lastProblem = '';
    for (;;) {
      signal?.throwIfAborted();
      const output = (await listAnswers(id)).find((o) => !ignore.has(o.name));
      if (output) {
        const read = await readJson(path.join(outbox, output.name));
        if (read.ok && output.byVideoName && read.doc.client?.job_id != null) {
          ignore.add(output.name); // another upload of this file name, answered under its own job id
          continue;
        }
        if (read.ok) return settle(id, output, read.doc);
        lastProblem = `${output.name}: ${read.reason}`;
        brokenSince ??= read.broken ? Date.now() : null;
        if (brokenSince !== null && Date.now() - brokenSince > brokenJsonGraceMs) {
          throw new PosedError('E_CLIENT_BAD_JSON', `${output.name} stays unparsable: ${read.reason}`);
        }
        delay = pollMs; // it is there: read again soon
      } else if (onProgress) {
        lastProgress = await reportProgress(id, onProgress, lastProgress);
      }
      if (Date.now() >= deadline) {
        const why = lastProblem ? ` (last read problem: ${lastProblem})` : '';
        throw new PosedError('E_CLIENT_TIMEOUT', `no result or error report for ${id} within ${timeoutMs} ms${why}`);
      }
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), undefined, signal ? { signal } : undefined);
      delay = Math.min(delay * 1.5, maxPollMs);
    }
  }

  // The daemon answers under the job id; a sidecar it could not take a valid job id from (not
  // JSON, not an object, a bad job_id) is answered under the video's name, without `client`
  // (README, "Job sidecar"): wait() watches both names.
  async function listAnswers(id) {
    const inboxName = inboxNames.get(id) ?? id;
    const own = await listOutputs(outbox, outcomeStem(id));
    if (outcomeStem(inboxName) === outcomeStem(id)) return own;
    const byVideo = (await listOutputs(outbox, outcomeStem(inboxName))).map((o) => ({ ...o, byVideoName: true }));
    return [...own, ...byVideo];
  }

  function settle(id, output, doc) {
    const problems = validate(doc);
    if (problems) throw new PosedError('E_CLIENT_SCHEMA', `${output.name} does not match its schema: ${problems}`, { document: doc });
    if (output.kind === 'result') return doc;
    const { code, message, hint } = doc.error;
    throw new PosedError(code, `${id}: ${message}`, { report: doc, hint });
  }

  async function reportProgress(id, onProgress, lastProgress) {
    // current_job.job_id is the daemon's own opaque id; the video's inbox name identifies it.
    const inboxName = inboxNames.get(id) ?? id;
    for (const daemon of await status()) {
      const job = daemon.current_job;
      if (job && (job.input_name === inboxName || job.job_id === id)) {
        const key = `${job.stage}:${job.frames_done}:${job.attempt}`;
        if (key !== lastProgress) onProgress({ ...job, daemon: daemon.daemon.name, state: daemon.state });
        return key;
      }
    }
    return lastProgress;
  }

  async function status() {
    const dir = path.join(outbox, '.posed', 'status');
    const names = await readdirOrEmpty(dir);
    const docs = [];
    for (const name of names.filter((n) => n.endsWith('.json') && !n.startsWith('.'))) {
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
   * streamed: memory stays flat however long the video. Each line is checked against the frame
   * schema (unless validate is false); at the end the line count, size and sha256 must match
   * the manifest, else it throws E_CLIENT_FRAMES.
   */
  function frames(result, { validate: check = true } = {}) {
    return readFrames(path.join(outbox, result.files.frames.name), result.files.frames, check ? validate : null);
  }

  return { submit, wait, frames, status, validate };
}

/** Stream a frames file; `entry` is the manifest's files.frames. See the client's frames(). */
export async function* readFrames(file, entry, validate = loadValidator()) {
  const hash = createHash('sha256');
  let lines = 0;
  let bytes = 0;
  let expected = null;
  const stream = createReadStream(file);
  stream.on('data', (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  for await (const line of readline.createInterface({ input: stream, crlfDelay: Infinity })) {
    lines += 1;
    const frame = parseFrameLine(line, entry.name, lines);
    if (validate) {
      const problems = validate({ schema: 'posed.frame', ...frame });
      if (problems) throw new PosedError('E_CLIENT_SCHEMA', `${entry.name} line ${lines}: ${problems}`);
    }
    if (expected !== null && frame.frame_index !== expected) {
      throw new PosedError('E_CLIENT_FRAMES', `${entry.name} line ${lines}: frame ${frame.frame_index} follows frame ${expected - 1}`);
    }
    expected = frame.frame_index + 1;
    yield frame;
  }
  const found = { lines, bytes, sha256: hash.digest('hex') };
  const wrong = Object.keys(found).filter((key) => found[key] !== entry[key]);
  if (wrong.length) {
    const detail = wrong.map((key) => `${key} ${found[key]} (manifest: ${entry[key]})`).join(', ');
    throw new PosedError('E_CLIENT_FRAMES', `${entry.name} does not match its manifest: ${detail}`);
  }
}

/** One line of a frames file; a line cut short or damaged is E_CLIENT_FRAMES like any other tampering. */
function parseFrameLine(line, name, number) {
  let frame;
  try {
    frame = JSON.parse(line);
  } catch (err) {
    throw new PosedError('E_CLIENT_FRAMES', `${name} line ${number} is not one whole JSON frame (cut short or damaged): ${err.message}`);
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame) || !Number.isInteger(frame.frame_index)) {
    throw new PosedError('E_CLIENT_FRAMES', `${name} line ${number} is not a frame object with an integer frame_index`);
  }
  return frame;
}

/**
 * The stem the daemon publishes `id` (a job id or an inbox file name) under: `<stem>.result.json`.
 * Kept byte for byte (no Unicode normalisation: NFD names from macOS stay NFD) except what NTFS
 * cannot hold: forbidden characters become `_`, trailing spaces and dots and leading spaces go,
 * a device name (`CON`, `COM1`, ...) or a leading dot gets a leading `_`, and a stem over
 * 236 UTF-8 bytes is cut to 225 bytes plus `-` and 10 hex digits of its SHA-1.
 */
export function outcomeStem(id) {
  let stem = id.toWellFormed?.() ?? id; // lone surrogates: U+FFFD, as the daemon writes them
  stem = stem.replace(NTFS_FORBIDDEN, '_').replace(/[ .]+$/, '').replace(/^ +/, '') || '_';
  if (RESERVED_STEMS.has(stem.split('.')[0].replace(/ +$/, '').toUpperCase())) stem = `_${stem}`;
  if (stem.startsWith('.')) stem = `_${stem.slice(1)}`;
  const bytes = Buffer.from(stem, 'utf8');
  if (bytes.length <= MAX_STEM_BYTES) return stem;
  const digest = createHash('sha1').update(bytes).digest('hex').slice(0, 10);
  let cut = MAX_STEM_BYTES - digest.length - 1;
  while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--; // never split a character
  return `${bytes.subarray(0, cut).toString('utf8')}-${digest}`;
}

/** Milliseconds since a status document's heartbeat (by the reader's clock; see liveness()). */
export function heartbeatAgeMs(statusDoc, now = Date.now()) {
  return now - Date.parse(statusDoc.heartbeat_at);
}

/**
 * Whether the daemon behind a status document runs: { verdict: 'alive' | 'stopped' | 'down', reason }.
 * The rule (README, "Health"), the same as `posed status`: state "stopped" is a clean stop; a daemon
 * on this kernel (same boot id and PID namespace) whose pid is gone is down at once; otherwise it is
 * down when its heartbeat is older than DOWN_AFTER_INTERVALS x status_interval_s, the age being the
 * smaller of now - heartbeat_at and now - the file's mtime (a skewed clock must not kill a live daemon).
 */
export function liveness(statusDoc, { now = Date.now(), mtimeMs } = {}) {
  if (statusDoc.state === 'stopped') return { verdict: 'stopped', reason: `stopped cleanly at ${statusDoc.updated_at}` };
  const gone = pidGone(statusDoc.daemon ?? {});
  if (gone) return { verdict: 'down', reason: gone };
  const interval = statusDoc.status_interval_s || DEFAULT_STATUS_INTERVAL_S;
  const ages = [Date.parse(statusDoc.heartbeat_at), mtimeMs].filter(Number.isFinite).map((t) => (now - t) / 1000);
  const age = ages.length ? Math.min(...ages) : Infinity;
  if (age > DOWN_AFTER_INTERVALS * interval) {
    return { verdict: 'down', reason: `no heartbeat for ${age.toFixed(0)} s (limit ${DOWN_AFTER_INTERVALS} x ${interval} s)` };
  }
  return { verdict: 'alive', reason: `heartbeat ${Math.max(age, 0).toFixed(0)} s ago` };
}

function pidGone({ pid, boot_id: bootId, pid_namespace: pidNamespace, start_time: startTime }) {
  const here = thisKernel();
  if (!Number.isInteger(pid) || !here.bootId || bootId !== here.bootId || pidNamespace !== here.pidNamespace) return null;
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    try {
      process.kill(pid, 0); // hidden from /proc (hidepid=) but present
      return null;
    } catch (err) {
      return err.code === 'ESRCH' ? `pid ${pid} is gone` : null;
    }
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
  if (fields[0] === 'Z' || fields[0] === 'X') return `pid ${pid} is gone`;
  if (Number.isInteger(startTime) && Number(fields[19]) !== startTime) return `pid ${pid} now belongs to another process`;
  return null;
}

let kernel;
function thisKernel() {
  if (!kernel) {
    const read = (fn) => { try { return fn().trim(); } catch { return ''; } };
    kernel = {
      bootId: read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
      pidNamespace: read(() => readlinkSync('/proc/self/ns/pid')),
    };
  }
  return kernel;
}

/** Returns a function doc -> null when valid, else a short description of what is wrong. */
export function loadValidator(schemasDir = DEFAULT_SCHEMAS_DIR) {
  const ajv = new Ajv2020({ allErrors: false, strict: false });
  addFormats(ajv);
  const validators = {};
  return (doc) => {
    const file = doc && typeof doc === 'object' ? SCHEMA_FILES[doc.schema] : undefined;
    if (!file) return `unknown document schema ${JSON.stringify(doc?.schema)}`;
    // Read at first use; synchronous so that loadValidator() and validate() stay synchronous.
    validators[file] ??= ajv.compile(JSON.parse(readFileSync(path.join(schemasDir, file), 'utf8')));
    const check = validators[file];
    if (check(doc)) return null;
    return check.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
  };
}

async function listOutputs(outbox, id) {
  const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escaped}(?:~(\\d+))?\\.(result|error)\\.json$`);
  const found = [];
  for (const name of await readdirOrEmpty(outbox)) {
    const match = pattern.exec(name);
    if (match) found.push({ name, kind: match[2], copy: Number(match[1] ?? 1) });
  }
  return found.sort((a, b) => a.copy - b.copy);
}

async function readJson(file, attempts = 1) {
  let last = { ok: false, broken: false, reason: 'not read' };
  for (let i = 0; i < attempts; i++) {
    if (i > 0) await sleep(50 * i);
    let text;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      // EBUSY/EPERM/EACCES: held by Windows for a moment; ENOENT: renamed away. Both: later.
      if (!TRANSIENT_CODES.has(err.code) && err.code !== 'ENOENT') throw err;
      last = { ok: false, broken: false, reason: err.code };
      continue;
    }
    try {
      return { ok: true, doc: JSON.parse(text) };
    } catch (err) {
      last = { ok: false, broken: true, reason: err.message };
    }
  }
  return last;
}

async function renameWithRetry(from, to, { totalMs = 30_000 } = {}) {
  const started = Date.now();
  for (let delay = 20; ; delay = Math.min(delay * 2, 1000)) {
    try {
      return await fs.rename(from, to);
    } catch (err) {
      if (!TRANSIENT_CODES.has(err.code) || Date.now() - started > totalMs) throw err;
      await sleep(delay);
    }
  }
}

async function readdirOrEmpty(dir) {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if (err.code === 'ENOENT' || TRANSIENT_CODES.has(err.code)) return [];
    throw err;
  }
}

async function exists(file) {
  try {
    await fs.access(file, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

function checkJobId(jobId, inboxName) {
  if (typeof jobId !== 'string' || !JOB_ID_PATTERN.test(jobId) || jobId.endsWith('.') || DEVICE_NAMES.test(jobId.split('.')[0])) {
    throw new PosedError('E_CLIENT_BAD_JOB_ID', `jobId ${JSON.stringify(jobId)}: use 1-128 of A-Z a-z 0-9 _ . - (not first . or -, not last .; not a Windows device name)`);
  }
  if (jobId !== inboxName && VIDEO_EXTENSIONS.some((ext) => jobId.toLowerCase().endsWith(ext))) {
    throw new PosedError('E_CLIENT_BAD_JOB_ID', `jobId ${JSON.stringify(jobId)} looks like a video file name; it may only be the video's own name (${inboxName})`);
  }
}

function checkInboxName(name) {
  const lower = name.toLowerCase();
  if (!name || name.startsWith('.') || name.startsWith('~$') || name.includes('/') || name.includes('\\') || IGNORED_SUFFIXES.some((s) => lower.endsWith(s))) {
    throw new PosedError('E_CLIENT_BAD_NAME', `inbox name ${JSON.stringify(name)} would be ignored by the daemon`);
  }
}
