// File operations shaped by Windows: a rename or read fails with EPERM/EBUSY/EACCES while an
// antivirus scanner, the indexer or the WSL 9p server holds the file, so those are retried with
// backoff (the graceful-fs pattern); a reader may see a file mid-rename, so JSON that does not
// parse is read again before it counts as broken.
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const TRANSIENT_CODES = new Set(['EBUSY', 'EPERM', 'EACCES', 'EAGAIN']);

/**
 * The last component of a path written the Windows way or the POSIX way: `C:\uploads\a.mov` and
 * `/mnt/c/uploads/a.mov` both give `a.mov`, on any OS (the backend runs on Windows, the tests on
 * Linux). A backslash can never be part of an inbox name (Windows cannot hold it).
 */
export function baseName(file) {
  return path.win32.basename(String(file));
}

export async function readJson(file, attempts = 1) {
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

export async function renameWithRetry(from, to, { totalMs = 30_000 } = {}) {
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

export async function readdirOrEmpty(dir) {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if (err.code === 'ENOENT' || TRANSIENT_CODES.has(err.code)) return [];
    throw err;
  }
}

export async function exists(file) {
  try {
    await fs.access(file, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}
