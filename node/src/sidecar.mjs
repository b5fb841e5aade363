// The job sidecar, checked with the daemon's own rules and limits (daemon/intake/sidecar.py,
// and the video-name rule of daemon/intake/folder.py) so that a request the daemon would answer
// with E_BAD_SIDECAR fails at submit instead. A contract test runs both on the same documents.
import path from 'node:path';
import { PosedError } from './errors.mjs';

export const MAX_SIDECAR_BYTES = 256 * 1024;
export const MAX_METADATA_BYTES = 64 * 1024;
export const MAX_METADATA_DEPTH = 32;
export const MAX_JOB_ID_CHARS = 128;
export const MAX_FRAME_INDEX = 10 ** 9;
export const PRIORITY_RANGE = [0, 2 ** 21]; // BullMQ's direction and largest priority, as daemon/intake/sidecar.py
export const MAX_GAP_S_LIMIT = 10;
export const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.m4v', '.avi', '.mkv', '.webm'];
const TOP_LEVEL_KEYS = ['job_id', 'options', 'metadata', 'input_path'];
const OUTPUT_SWITCHES = ['legacy_fields', 'motion_glb', 'motion_mesh', 'preview'];
const OPTION_KEYS = ['start_frame', 'end_frame', 'include_mesh', 'backend', 'priority', 'motion', ...OUTPUT_SWITCHES];
const MOTION_SWITCHES = ['smoothing', 'fill_gaps', 'include_raw'];
const JOB_ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const DEVICE_NAMES = /^(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])$/i;
const BACKEND_HINT = /^[a-z0-9_-]{1,32}$/;

function bad(field, problem, code = 'E_CLIENT_BAD_SIDECAR') {
  return new PosedError(code, `job sidecar: ${field ?? 'the document'} ${problem}`, { field: field ?? null });
}

function jsonType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return { object: 'an object', string: 'a string', boolean: 'a boolean', number: 'a number' }[typeof value] ?? typeof value;
}

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

function refuseUnknownKeys(doc, allowed, prefix) {
  const unknown = Object.keys(doc).filter((key) => !allowed.includes(key)).sort();
  if (unknown.length) {
    throw bad(prefix + unknown[0], `is not a known key; allowed: ${allowed.map((k) => prefix + k).join(', ')}`);
  }
}

/**
 * Throws PosedError E_CLIENT_BAD_JOB_ID for a job id the daemon refuses. `videoName`: the video's
 * inbox name, the only video-like name a sidecar's job id may have (queue job data: leave it out).
 */
export function checkJobId(jobId, videoName) {
  const problem = typeof jobId !== 'string' ? `must be a string, got ${jsonType(jobId)}`
    : jobId.length < 1 || jobId.length > MAX_JOB_ID_CHARS ? `must be 1 to ${MAX_JOB_ID_CHARS} characters, got ${jobId.length}`
      : !JOB_ID_PATTERN.test(jobId) || jobId.endsWith('.') ? `may hold only A-Z a-z 0-9 _ . - (not first: . -; not last: .), got ${JSON.stringify(jobId)}`
        : DEVICE_NAMES.test(jobId.split('.')[0]) ? `is a Windows device name, which cannot be a file name: ${JSON.stringify(jobId)}`
          : videoName !== undefined && jobId !== videoName && VIDEO_EXTENSIONS.some((ext) => jobId.toLowerCase().endsWith(ext))
            ? `${JSON.stringify(jobId)} looks like a video file name; it may only be the video's own name (${JSON.stringify(videoName)})`
            : null;
  if (problem) throw bad('job_id', problem, 'E_CLIENT_BAD_JOB_ID');
}

function integer(value, field, low, high) {
  if (value === undefined || value === null) return;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw bad(field, `must be an integer, got ${jsonType(value)}`);
  if (value < low || value > high) throw bad(field, `must be between ${low} and ${high}, got ${value}`);
}

function boolean(value, field) {
  if (value !== undefined && value !== null && typeof value !== 'boolean') throw bad(field, `must be true or false, got ${jsonType(value)}`);
}

/** `options` of a sidecar or of queue job data (the same options). Throws PosedError. */
export function checkOptions(options) {
  if (options === undefined || options === null) return;
  if (!isObject(options)) throw bad('options', `must be a JSON object, got ${jsonType(options)}`);
  refuseUnknownKeys(options, OPTION_KEYS, 'options.');
  integer(options.start_frame, 'options.start_frame', 0, MAX_FRAME_INDEX);
  integer(options.end_frame, 'options.end_frame', 1, MAX_FRAME_INDEX);
  if (Number.isInteger(options.start_frame) && Number.isInteger(options.end_frame) && options.end_frame <= options.start_frame) {
    throw bad('options.end_frame', `must be greater than options.start_frame (${options.start_frame}), got ${options.end_frame}`);
  }
  boolean(options.include_mesh, 'options.include_mesh');
  integer(options.priority, 'options.priority', ...PRIORITY_RANGE);
  for (const key of OUTPUT_SWITCHES) boolean(options[key], `options.${key}`);
  const hint = options.backend;
  if (hint !== undefined && hint !== null && (typeof hint !== 'string' || !BACKEND_HINT.test(hint))) {
    throw bad('options.backend', `must be a backend name like "phalp" (a-z 0-9 _ -, up to 32), got ${JSON.stringify(hint)}`);
  }
  checkMotion(options.motion);
}

function checkMotion(motion) {
  if (motion === undefined || motion === null) return;
  if (!isObject(motion)) throw bad('options.motion', `must be a JSON object, got ${jsonType(motion)}`);
  refuseUnknownKeys(motion, [...MOTION_SWITCHES, 'max_gap_s'], 'options.motion.');
  for (const key of MOTION_SWITCHES) {
    if (key in motion && typeof motion[key] !== 'boolean') throw bad(`options.motion.${key}`, `must be true or false, got ${jsonType(motion[key])}`);
  }
  const gap = motion.max_gap_s;
  if ('max_gap_s' in motion && (typeof gap !== 'number' || !(gap >= 0 && gap <= MAX_GAP_S_LIMIT))) {
    throw bad('options.motion.max_gap_s', `must be a number of seconds from 0 to ${MAX_GAP_S_LIMIT}, got ${JSON.stringify(gap)}`);
  }
}

/** `metadata`: an object, at most MAX_METADATA_BYTES as compact JSON and MAX_METADATA_DEPTH deep. */
export function checkMetadata(metadata) {
  if (metadata === undefined || metadata === null) return;
  if (!isObject(metadata)) throw bad('metadata', `must be a JSON object, got ${jsonType(metadata)}`);
  if (jsonDepth(metadata) > MAX_METADATA_DEPTH) throw bad('metadata', `is nested more than ${MAX_METADATA_DEPTH} levels deep`);
  const text = JSON.stringify(metadata);
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_METADATA_BYTES) throw bad('metadata', `is ${size} bytes as JSON; at most ${MAX_METADATA_BYTES} are echoed back`);
}

// Depth as the daemon counts it: the metadata object itself is level 1. A value JSON cannot
// carry (Infinity, NaN, undefined, a function) is refused: JSON.stringify would change it; so is
// a lone UTF-16 surrogate, which JSON.stringify escapes and the daemon cannot write as UTF-8.
function jsonDepth(value) {
  if (typeof value === 'string' && !wellFormed(value)) throw bad('metadata', 'holds a lone UTF-16 surrogate (invalid Unicode)');
  if (typeof value === 'number' && !Number.isFinite(value)) throw bad('metadata', 'holds a number JSON cannot carry (Infinity or NaN)');
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
    throw bad('metadata', `holds ${typeof value}, which JSON cannot carry`);
  }
  if (value === null || typeof value !== 'object') return 0;
  let deepest = 0;
  for (const [key, child] of Object.entries(value)) {
    jsonDepth(key);
    deepest = Math.max(deepest, jsonDepth(child));
  }
  return 1 + deepest;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const wellFormed = (text) => (text.isWellFormed ? text.isWellFormed() : !LONE_SURROGATE.test(text));

function checkInputPath(value) {
  if (value === undefined || value === null) return;
  if (typeof value !== 'string') throw bad('input_path', `must be a string, got ${jsonType(value)}`);
  // The daemon also confines it to its roots, which only it knows.
  if (value.includes('\0') || !(path.win32.isAbsolute(value) || value.startsWith('/'))) {
    throw bad('input_path', `must be an absolute Windows or POSIX path without NUL, got ${JSON.stringify(value)}`);
  }
}

/**
 * The sidecar body for `{ jobId, metadata, options, inputPath }`, checked with the daemon's
 * rules; throws PosedError (E_CLIENT_BAD_JOB_ID for the job id, else E_CLIENT_BAD_SIDECAR, with
 * `.field` naming the field as the daemon's E_BAD_SIDECAR report would). Returns the JSON text.
 */
export function sidecarText({ jobId, metadata, options, inputPath }, videoName) {
  return checkSidecar({ job_id: jobId, metadata, options, input_path: inputPath }, videoName);
}

/** Checks a sidecar document as the daemon would (`videoName`: the video it belongs to). Returns its JSON text. */
export function checkSidecar(doc, videoName) {
  if (!isObject(doc)) throw bad(null, `must be a JSON object, got ${jsonType(doc)}`);
  refuseUnknownKeys(doc, TOP_LEVEL_KEYS, '');
  if (doc.job_id !== undefined && doc.job_id !== null) checkJobId(doc.job_id, videoName);
  checkOptions(doc.options);
  checkMetadata(doc.metadata);
  checkInputPath(doc.input_path);
  const text = `${JSON.stringify(doc)}\n`;
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_SIDECAR_BYTES) throw bad(null, `is larger than ${MAX_SIDECAR_BYTES} bytes (${size})`);
  return text;
}
