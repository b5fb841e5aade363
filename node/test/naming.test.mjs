// The client finds its outcome by the daemon's naming rule (README, "The folder protocol"):
// outcomeStem() must agree with the daemon's safe_stem() for every name, byte for byte.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { outcomeStem } from '../src/index.mjs';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');

describe('outcomeStem', () => {
  test('keeps an NFD name (macOS uploads) exactly as given', () => {
    const nfd = 'Cafe\u0301 NFD.mp4';
    assert.equal(outcomeStem(nfd), nfd);
    assert.notEqual(outcomeStem(nfd), nfd.normalize('NFC'));
  });

  test('changes only what NTFS cannot hold', () => {
    assert.equal(outcomeStem('a:b?.mp4'), 'a_b_.mp4');
    assert.equal(outcomeStem('CON.mp4'), '_CON.mp4');
    assert.equal(outcomeStem('lpt\u00b9.mp4'), '_lpt\u00b9.mp4');
    assert.equal(outcomeStem('.hidden.mp4'), '_hidden.mp4');
    assert.equal(outcomeStem('  spaced. .'), 'spaced');
    const long = 'é'.repeat(125) + '.mp4';
    assert.match(outcomeStem(long), /^é{112}-[0-9a-f]{10}$/); // 225 bytes: 112 two-byte characters
  });

  const noPython = !existsSync(PYTHON) && `${PYTHON} does not exist: run ./scripts/test.sh to compare with the daemon`;
  test('agrees with the daemon on a corpus of hostile names', { skip: noPython }, () => {
    const names = corpus();
    const script = 'import json, sys\nfrom daemon.publishing.naming import safe_stem\n'
      + 'print(json.dumps([safe_stem(n) for n in json.load(sys.stdin)]))';
    const daemonStems = JSON.parse(execFileSync(PYTHON, ['-c', script], { cwd: REPO, input: JSON.stringify(names), encoding: 'utf8' }));
    const disagreements = names.map((name, i) => [name, daemonStems[i], outcomeStem(name)]).filter(([, d, c]) => d !== c);
    assert.deepEqual(disagreements.slice(0, 5), [], `${disagreements.length} of ${names.length} names disagree`);
  });
});

function corpus() {
  const fixed = ['Cafe\u0301.mp4', 'Caf\u00e9.mp4', 'CON', 'con .mp4', 'COM0.mp4', 'LPT9', 'conin$.x', 'AUX.', '...', ' ',
    'a'.repeat(300), '🏃'.repeat(70), 'e\u0301'.repeat(90), 'tab\there', 'new\nline', 'del\x7f', 'x<y>z:"|?*\\/'];
  // Deterministic pseudo-random names from an alphabet with every kind of character the rule handles.
  const alphabet = ['a', 'Z', '0', ' ', '.', '-', '~', ':', '*', '\\', '\u0301', '\u00e9', '\u00b9', 'ß', '東', '🏃', '\x01', 'CON', 'com1', 'Nul'];
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  const random = Array.from({ length: 2000 }, () => Array.from({ length: 1 + (next() % 40) }, () => alphabet[next() % alphabet.length]).join(''));
  const long = Array.from({ length: 200 }, (_, i) => 'x'.repeat(200 + (i % 40)) + '🏃é\u0301'.repeat(i % 7));
  return [...fixed, ...random, ...long];
}
