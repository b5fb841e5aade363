// Housekeeping the daemon leaves to its owner: inputs it answered pile up in inbox/done/ (and
// inbox/failed/), outcomes in the outbox. Both are removed here by age, by modification time,
// touching only what the protocol names: never a dot-file, a dot-directory (.tmp/, .posed/) or a
// file in the outbox that no outcome document claims.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readdirOrEmpty, readJson, TRANSIENT_CODES } from './files.mjs';

const DAY_MS = 24 * 3600_000;
const OUTCOME = /^(?<stem>.+)\.(?<kind>result|error)\.json$/;
const COMPANION = /^(?<stem>.+)\.(frames\.jsonl|motion\.glb|preview\.mp4)$/;

async function olderThan(file, cutoff) {
  try {
    const info = await fs.lstat(file);
    return info.isFile() && info.mtimeMs < cutoff ? info : null;
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
}

async function remove(file, removed, skipped) {
  try {
    await fs.unlink(file);
    removed.push(file);
  } catch (err) {
    if (err.code === 'ENOENT') return;
    if (!TRANSIENT_CODES.has(err.code)) throw err;
    skipped.push({ file, reason: err.code }); // held by Windows: next time
  }
}

/**
 * Removes answered inputs (videos and their sidecars) from `<inbox>/done/` and, with
 * `failed: true`, `<inbox>/failed/`, when older than `olderThanMs` (default 7 days).
 * Resolves with { removed: [paths], skipped: [{ file, reason }] }.
 */
export async function cleanInbox(inbox, { olderThanMs = 7 * DAY_MS, failed = false, now = Date.now() } = {}) {
  const removed = [];
  const skipped = [];
  for (const folder of failed ? ['done', 'failed'] : ['done']) {
    const dir = path.join(inbox, folder);
    for (const name of await readdirOrEmpty(dir)) {
      if (name.startsWith('.')) continue;
      const file = path.join(dir, name);
      if (await olderThan(file, now - olderThanMs)) await remove(file, removed, skipped);
    }
  }
  return { removed, skipped };
}

/**
 * Removes outcomes older than `olderThanMs` (default 30 days) from `outbox`: each result with the
 * files its manifest lists (frames, motion, preview), each error report. The manifest goes first,
 * so a reader never finds one whose files are gone; companions whose manifest is gone (a run of
 * this function cut short) are removed once they are as old. Resolves with { removed, skipped }.
 */
export async function cleanOutbox(outbox, { olderThanMs = 30 * DAY_MS, now = Date.now() } = {}) {
  const removed = [];
  const skipped = [];
  const cutoff = now - olderThanMs;
  const names = (await readdirOrEmpty(outbox)).filter((name) => !name.startsWith('.'));
  for (const name of names) {
    const match = OUTCOME.exec(name);
    const file = path.join(outbox, name);
    if (!match || !(await olderThan(file, cutoff))) continue;
    const read = await readJson(file, 3);
    const companions = read.ok && match.groups.kind === 'result' ? listedFiles(read.doc) : [];
    await remove(file, removed, skipped);
    for (const companion of companions) await remove(path.join(outbox, companion), removed, skipped);
  }
  const manifests = new Set((await readdirOrEmpty(outbox)).filter((n) => OUTCOME.test(n)).map((n) => OUTCOME.exec(n).groups.stem));
  for (const name of await readdirOrEmpty(outbox)) {
    const match = COMPANION.exec(name);
    if (!match || name.startsWith('.') || manifests.has(match.groups.stem)) continue;
    const file = path.join(outbox, name);
    if (await olderThan(file, cutoff)) await remove(file, removed, skipped);
  }
  return { removed, skipped };
}

// files.frames / files.motion / files.preview of a manifest: bare names in the outbox only.
function listedFiles(manifest) {
  return Object.values(manifest?.files ?? {})
    .map((entry) => entry?.name)
    .filter((name) => typeof name === 'string' && name && !name.startsWith('.') && !/[\\/]/.test(name));
}
