// The daemon's outcome-name rule (README, "The folder protocol"; daemon/publishing/naming.py),
// and finding the outcomes published under a stem (`stem`, `stem~2`, ...).
import { createHash } from 'node:crypto';
import { readdirOrEmpty } from './files.mjs';

const NTFS_FORBIDDEN = /[<>:"/\\|?*\x00-\x1f\x7f]/g;
const RESERVED_STEMS = new Set(['CON', 'PRN', 'AUX', 'NUL', 'CONIN$', 'CONOUT$',
  ...['COM', 'LPT'].flatMap((device) => [...'0123456789\u00b9\u00b2\u00b3'].map((digit) => device + digit))]);
// Every file of an outcome shares the stem; the longest suffix decides how long it may be.
export const OUTCOME_SUFFIXES = ['.result.json', '.error.json', '.frames.jsonl', '.motion.glb', '.preview.mp4'];
const MAX_STEM_BYTES = 255 - ('~9999'.length + Math.max(...OUTCOME_SUFFIXES.map((s) => s.length)) + 1);

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

/** Outcome documents in `outbox` published under `stem` (or its `~N` copies), oldest copy first. */
export async function listOutcomes(outbox, stem) {
  const escaped = stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escaped}(?:~(\\d+))?\\.(result|error)\\.json$`);
  const found = [];
  for (const name of await readdirOrEmpty(outbox)) {
    const match = pattern.exec(name);
    if (match) found.push({ name, kind: match[2], copy: Number(match[1] ?? 1) });
  }
  return found.sort((a, b) => a.copy - b.copy);
}
