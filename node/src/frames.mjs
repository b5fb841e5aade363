// A verified frame stream: one object per line of `<stem>.frames.jsonl`, in order, each checked,
// and at the end the file's line count, size and sha256 against the manifest's files.frames.
// Every kind of damage has its own code (FRAMES_ERRORS). Lines are split on bytes here rather
// than with readline, which cannot tell a file cut mid-line from a complete one.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { FRAMES_ERRORS, PosedError } from './errors.mjs';

const NEWLINE = 0x0a;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function damage(kind, entry, message, extra = {}) {
  return new PosedError(FRAMES_ERRORS[kind], `${entry.name}: ${message}`, { damage: kind, ...extra });
}

/** Lines of a stream as Buffers, without their newline; a last line without one is flagged `cut`. */
async function* bytesLines(stream, onChunk) {
  let rest = Buffer.alloc(0);
  for await (const chunk of stream) {
    onChunk(chunk);
    let data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    let start = 0;
    for (let end = data.indexOf(NEWLINE, start); end !== -1; end = data.indexOf(NEWLINE, start)) {
      yield { bytes: data.subarray(start, end), cut: false };
      start = end + 1;
    }
    rest = Buffer.from(data.subarray(start)); // a copy: the chunk's buffer may be reused
  }
  if (rest.length) yield { bytes: rest, cut: true };
}

/**
 * Named keypoints and joints of one person: `{ keypoints: { nose: [x, y, c], ... }, joints_3d: { ... } }`,
 * zipped from the manifest's backend.keypoint_names and joint_names_3d.
 */
export function nameJoints(person, names) {
  const zip = (rows, labels) => (rows && labels ? Object.fromEntries(labels.map((label, i) => [label, rows[i]])) : undefined);
  return { keypoints: zip(person.keypoints, names.keypoint_names), joints_3d: zip(person.joints_3d, names.joint_names_3d) };
}

/**
 * Stream a frames file. `entry` is the manifest's files.frames ({ name, lines, bytes, sha256 }).
 * Options: `validate` (doc -> null | problem, from loadValidator(); null to skip), `backend` (the
 * manifest's backend block: each person then gets `named`, its keypoints and 3D joints by name).
 */
export async function* readFrames(file, entry, { validate = null, backend = null } = {}) {
  const hash = createHash('sha256');
  let bytes = 0;
  let lines = 0;
  let expected = null;
  const stream = createReadStream(file);
  const opened = new Promise((resolve, reject) => { stream.once('open', resolve); stream.once('error', reject); });
  try {
    await opened;
  } catch (err) {
    if (err.code === 'ENOENT') throw damage('missing', entry, 'the frames file the manifest names is not there', { cause: err });
    throw err;
  }
  try {
    for await (const line of bytesLines(stream, (chunk) => { hash.update(chunk); bytes += chunk.length; })) {
      lines += 1;
      if (line.cut) throw damage('cut', entry, `line ${lines} has no newline: the file was cut mid-line (${bytes} bytes read)`, { line: lines });
      const frame = parseLine(line.bytes, entry, lines);
      const problem = validate?.({ schema: 'posed.frame', ...frame });
      if (problem) throw damage('schema', entry, `line ${lines} is not a frame: ${problem}`, { line: lines });
      if (expected !== null && frame.frame_index !== expected) {
        throw damage('order', entry, `line ${lines}: frame ${frame.frame_index} follows frame ${expected - 1}`, { line: lines });
      }
      expected = frame.frame_index + 1;
      if (backend) for (const person of frame.people) person.named = nameJoints(person, backend);
      yield frame;
    }
  } finally {
    stream.destroy();
  }
  const found = { lines, bytes, sha256: hash.digest('hex') };
  for (const key of ['lines', 'bytes', 'sha256']) {
    if (found[key] !== entry[key]) throw damage(key, entry, `${key} ${found[key]} (manifest: ${entry[key]})`, { found, expected: entry });
  }
}

function parseLine(bytes, entry, lineNumber) {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch (err) {
    throw damage('json', entry, `line ${lineNumber} is not JSON: ${err.message}`, { line: lineNumber });
  }
}
