// The TypeScript side, checked as CI runs it: types/schemas/ is what json-schema-to-typescript
// makes from daemon/schemas/ today (else `npm run types` was forgotten), and a typed example
// using the whole API passes `tsc --noEmit` against the hand-written declarations.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('..', import.meta.url));
const TSC = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const skip = !existsSync(TSC) && 'the devDependencies are not installed (npm ci installs them)';

function run(command, args) {
  const done = spawnSync(command, args, { cwd: HERE, encoding: 'utf8', timeout: 240_000 });
  return { status: done.status, output: `${done.stdout}${done.stderr}` };
}

describe('TypeScript declarations', { skip, timeout: 300_000 }, () => {
  test('types/schemas/ is up to date with daemon/schemas/', () => {
    const { status, output } = run(process.execPath, ['scripts/gen-types.mjs', '--check']);
    assert.equal(status, 0, output);
  });

  test('tsc --noEmit accepts the typed example', () => {
    const { status, output } = run(process.execPath, [TSC, '--noEmit', '-p', 'examples']);
    assert.equal(status, 0, output);
  });

  test('tsc refuses a misuse of the API (the check has teeth)', () => {
    const { status, output } = run(process.execPath, [TSC, '--noEmit', '-p', 'test/fixtures/misuse']);
    assert.notEqual(status, 0);
    assert.match(output, /wrong\.ts.*TS2322/s);
  });
});
