// The sidecar check at submit agrees with the daemon's parser on every case here: both refuse or
// both accept, naming the same field. The daemon's side runs for real (daemon/intake/sidecar.py
// and the video-name rule of daemon/intake/folder.py, via the repository's Python).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkSidecar, createClient, MAX_METADATA_DEPTH, MAX_SIDECAR_BYTES, PosedError } from '../src/index.mjs';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');
const VIDEO = 'clip.mp4';

const nest = (depth) => {
  let value = 1;
  for (let i = 0; i < depth; i++) value = { k: value };
  return value;
};

// Each case: a sidecar document (JSON-able), for the video clip.mp4.
const CASES = [
  {},
  { job_id: 'upload-4711', metadata: { user: 12, note: 'größe' }, options: { start_frame: 0, end_frame: 300 } },
  { job_id: 'clip.mp4' }, { job_id: 'other.MP4' }, { job_id: 'a.webm.x' },
  { job_id: '' }, { job_id: 'x'.repeat(128) }, { job_id: 'x'.repeat(129) }, { job_id: '.hidden' }, { job_id: '-x' },
  { job_id: 'ends.' }, { job_id: 'a b' }, { job_id: 'a~2' }, { job_id: 'CON' }, { job_id: 'com7.log' }, { job_id: 'LPT0' },
  { job_id: 'CONIN' }, { job_id: 42 }, { job_id: null },
  { jobid: 'typo' }, { options: { start_fame: 3 } }, { options: [] }, { options: null },
  { options: { start_frame: -1 } }, { options: { start_frame: 1.5 } }, { options: { start_frame: true } },
  { options: { start_frame: 10, end_frame: 10 } }, { options: { end_frame: 0 } }, { options: { end_frame: 1e9 } }, { options: { end_frame: 1e9 + 1 } },
  { options: { priority: 1000 } }, { options: { priority: -1001 } }, { options: { include_mesh: 'yes' } },
  { options: { backend: 'phalp' } }, { options: { backend: 'PHALP' } }, { options: { backend: 'x'.repeat(33) } },
  { options: { legacy_fields: true, motion_glb: true, motion_mesh: false, preview: true } }, { options: { preview: 1 } },
  { options: { motion: { smoothing: false, fill_gaps: true, include_raw: true, max_gap_s: 0.3 } } },
  { options: { motion: { max_gap_s: 10 } } }, { options: { motion: { max_gap_s: 10.5 } } }, { options: { motion: { max_gap_s: -0.1 } } },
  { options: { motion: { max_gap_s: true } } }, { options: { motion: { smooth: true } } }, { options: { motion: 'on' } },
  { metadata: [] }, { metadata: 'x' }, { metadata: { s: 'x'.repeat(65_000) } }, { metadata: { s: 'x'.repeat(66_000) } },
  { metadata: { s: 'é'.repeat(32_760) } }, { metadata: { s: 'é'.repeat(32_770) } },
  { metadata: nest(MAX_METADATA_DEPTH) }, { metadata: nest(MAX_METADATA_DEPTH + 1) }, { metadata: { a: [[[[1]]]] } },
  { metadata: { deep: nest(200) } },
  { input_path: 42 },
];

function nodeVerdict(doc) {
  try {
    checkSidecar(doc, VIDEO);
    return { ok: true, field: null };
  } catch (err) {
    assert.ok(err instanceof PosedError, err);
    assert.match(err.code, /^E_CLIENT_BAD_(SIDECAR|JOB_ID)$/);
    return { ok: false, field: err.field };
  }
}

const DAEMON = `
import json, sys
from pathlib import Path
from daemon.errors import JobError
from daemon.intake.sidecar import job_id_takes_a_video_name, parse_sidecar
out = []
for text in json.load(sys.stdin):
    try:
        sidecar = parse_sidecar(text.encode("utf-8"), ["/"])
        if sidecar.job_id is not None and job_id_takes_a_video_name(sidecar.job_id, "clip.mp4", [".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"]):
            out.append({"ok": False, "field": "job_id"})  # the daemon's rule for a job id shaped like a video name
            continue
        out.append({"ok": True, "field": None})
    except JobError as exc:
        out.append({"ok": False, "field": exc.details.get("field")})
print(json.dumps(out))
`;

describe('sidecar checks at submit', () => {
  test('agree with the daemon on every case', { skip: !existsSync(PYTHON) && `${PYTHON} does not exist: run ./scripts/test.sh` }, () => {
    const texts = CASES.map((doc) => JSON.stringify(doc));
    const daemon = JSON.parse(execFileSync(PYTHON, ['-c', DAEMON], { cwd: REPO, input: JSON.stringify(texts), encoding: 'utf8', maxBuffer: 64 << 20 }));
    const disagreements = CASES.map((doc, i) => ({ doc: texts[i].slice(0, 80), node: nodeVerdict(doc), daemon: daemon[i] }))
      .filter(({ node, daemon: d }) => node.ok !== d.ok || node.field !== d.field);
    assert.deepEqual(disagreements, []);
    assert.ok(daemon.some((d) => d.ok) && daemon.some((d) => !d.ok)); // both kinds are covered
  });

  test('a whole sidecar over the size limit is refused before it is written', () => {
    const big = { metadata: { a: 'x'.repeat(60_000) }, input_path: `C:\\${'d\\'.repeat(MAX_SIDECAR_BYTES / 2)}` };
    assert.throws(() => checkSidecar(big, VIDEO), { code: 'E_CLIENT_BAD_SIDECAR', field: null });
  });

  test('values JSON cannot carry are refused, not silently changed', () => {
    for (const metadata of [{ x: Infinity }, { x: NaN }, { x: undefined }, { x: () => 1 }, { x: '\ud800' }]) {
      assert.throws(() => checkSidecar({ metadata }, VIDEO), { code: 'E_CLIENT_BAD_SIDECAR', field: 'metadata' });
    }
  });

  test('submit refuses a bad sidecar and leaves the inbox empty', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-sidecar-'));
    try {
      await fs.mkdir(path.join(root, 'inbox'));
      const video = path.join(root, 'v.mp4');
      await fs.writeFile(video, 'bytes');
      const client = createClient({ inbox: path.join(root, 'inbox'), outbox: root });
      await assert.rejects(client.submit(video, { options: { start_frame: 5, end_frame: 2 } }), { code: 'E_CLIENT_BAD_SIDECAR', field: 'options.end_frame' });
      await assert.rejects(client.submit(video, { metadata: nest(40) }), { code: 'E_CLIENT_BAD_SIDECAR', field: 'metadata' });
      assert.deepEqual(await fs.readdir(path.join(root, 'inbox')), []);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
