#!/usr/bin/env bash
# README command 2: install the Debian packages the tests drive (chromium, redis-server, faketime,
# bindfs: scripts/system-deps.sh, apt-get when missing), set up
# .venv with the test extras and the Node packages, then run every test: the Python suite
# (including the browser checks) and the Node client's `node --test` suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/system-deps.sh"
"$root/scripts/_venv.sh" test
# The browser checks (glTF validator, viewer, preview playback) use their own Node packages.
(cd "$root/tests/browser" && npm ci --silent --no-audit --no-fund)
status=0
"$root/.venv/bin/python" -m pytest "$@" || status=$?
if [ -f "$root/node/package.json" ]; then
  if command -v node >/dev/null 2>&1; then
    (cd "$root/node" && npm ci --silent --no-audit --no-fund && npm test) || status=$?
  else
    echo "posed: node is not installed; the Node client tests need Node >= 18" >&2
    status=1
  fi
fi
exit "$status"
