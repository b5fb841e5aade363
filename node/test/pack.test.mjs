// What a backend developer does: `npm pack`, `npm install <tarball>` in a fresh project, paste the
// README's block. The block is taken from README.md (the fence after "<!-- run: pack test"), run
// exactly as written against a real daemon (`python -m daemon run`) on a real clip; the typed
// example's use of the package also compiles there, from the tarball's declarations.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const REPO = path.join(PACKAGE, '..');
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');
const CLIP = path.join(REPO, '..', 'shared', 'media', 'running-2s-320.mp4');
const CLIP_FRAMES = 60;
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const skip = !existsSync(PYTHON) ? `${PYTHON} does not exist: run ./scripts/test.sh (it creates .venv)`
  : !existsSync(CLIP) ? `test clip ${CLIP} is missing` : false;

/** The fenced block right after the marker comment, exactly as written. */
export function blockAfter(markdown, marker) {
  const at = markdown.indexOf(marker);
  assert.notEqual(at, -1, `README has no ${marker}`);
  const fence = /```[a-z]*\n([\s\S]*?)```/.exec(markdown.slice(at));
  return fence[1];
}

function run(command, args, options) {
  return execFileSync(command, args, { encoding: 'utf8', timeout: 240_000, stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

describe('the packed package in a fresh project', { skip, timeout: 600_000 }, () => {
  let root, project, inbox, outbox, daemon;
  const daemonOutput = [];

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'posed-pack-'));
    [project, inbox, outbox] = ['project', 'inbox', 'outbox'].map((name) => path.join(root, name));
    await Promise.all([project, inbox, outbox].map((dir) => fs.mkdir(dir)));
    daemon = spawn(PYTHON, ['-m', 'daemon', 'run', '--inbox', inbox, '--outbox', outbox, 'daemon.name=node-pack', 'inbox.settle_s=0.5',
      'inbox.poll_interval_s=0.2', `daemon.state_dir=${path.join(root, 'state')}`], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [daemon.stdout, daemon.stderr]) stream.on('data', (chunk) => daemonOutput.push(chunk.toString()));
  });

  after(async () => {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      daemon.kill('SIGTERM');
      await exited;
    }
    await fs.rm(root, { recursive: true, force: true });
  });

  test('npm pack, npm install <tarball>, then the README block streams a real result with keypoint names', async () => {
    const packed = JSON.parse(run(NPM, ['pack', '--json', '--pack-destination', root], { cwd: PACKAGE }));
    const tarball = path.join(root, packed[0].filename);
    const files = packed[0].files.map((f) => f.path);
    for (const needed of ['package.json', 'src/index.mjs', 'types/index.d.ts', 'types/schemas/result.d.ts', 'schemas/result.schema.json', 'README.md']) {
      assert.ok(files.includes(needed), `${needed} missing from the tarball: ${files.join(', ')}`);
    }
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/')), files.join(', '));
    assert.ok(!existsSync(path.join(PACKAGE, 'schemas')), 'postpack leaves no copy of the schemas in the repository');

    await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'backend', private: true, type: 'module' }));
    run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: project });
    const installed = path.join(project, 'node_modules', 'posed-client');
    assert.ok(existsSync(path.join(installed, 'schemas', 'frame.schema.json')));

    const snippet = blockAfter(readFileSync(path.join(PACKAGE, 'README.md'), 'utf8'), '<!-- run: pack test');
    await fs.writeFile(path.join(project, 'posed-demo.mjs'), snippet);
    const output = await new Promise((resolve, reject) => {
      const demo = spawn(process.execPath, ['posed-demo.mjs', CLIP], { cwd: project, env: { ...process.env, POSED_INBOX: inbox, POSED_OUTBOX: outbox } });
      let out = '';
      demo.stdout.on('data', (chunk) => { out += chunk; });
      demo.stderr.on('data', (chunk) => { out += chunk; });
      demo.on('error', reject);
      demo.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`posed-demo exited ${code}:\n${out}\n--- daemon ---\n${daemonOutput.join('').slice(-3000)}`))));
    });
    const frameLines = output.split('\n').filter((line) => /^\d+ \d+ people nose /.test(line));
    assert.deepEqual(frameLines.map((line) => Number(line.split(' ')[0])), [...Array(CLIP_FRAMES).keys()]);
    const withNose = frameLines.filter((line) => !line.endsWith(' -'));
    assert.ok(withNose.length > CLIP_FRAMES / 2, `the runner's nose by name in most frames:\n${output}`);
    assert.match(withNose[0], /nose \[ [\d.]+, [\d.]+, [\d.]+ \]$/);
    assert.match(output, new RegExp(`^${CLIP_FRAMES} frames for upload-\\d+ \\{ userId: 12 \\}$`, 'm'));

    // The tarball's declarations, as the project sees them (bullmq is not installed: not needed
    // unless posed-client/queue is imported).
    const typed = "import { createClient, type NamedFrame, type PosedResult } from 'posed-client';\n"
      + "const posed = createClient({ inbox: 'C:\\\\posed\\\\inbox', outbox: 'C:\\\\posed\\\\outbox' });\n"
      + "export async function names(result: PosedResult): Promise<number> {\n"
      + "  let n = 0;\n  for await (const frame of posed.frames(result)) { const f: NamedFrame = frame; n += Object.keys(f.people[0]?.named.keypoints ?? {}).length; }\n"
      + "  return n + result.backend.keypoint_names.length;\n}\n";
    await fs.writeFile(path.join(project, 'typed.ts'), typed);
    await fs.writeFile(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, types: ['node'], typeRoots: [path.join(PACKAGE, 'node_modules', '@types')] },
      files: ['typed.ts'],
    }));
    const tsc = path.join(PACKAGE, 'node_modules', 'typescript', 'bin', 'tsc');
    if (existsSync(tsc)) run(process.execPath, [tsc, '-p', project], { cwd: project });
  });
});
