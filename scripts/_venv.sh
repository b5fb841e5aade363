#!/usr/bin/env bash
# Shared by run.sh and test.sh: make sure .venv exists and holds the project with the given
# extras. Reinstalls only when pyproject.toml changed since the last install (stamp file).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
venv="$root/.venv"
python="${POSED_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3.10 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "posed: creating $venv with $python" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
stamp="$venv/.posed-installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "posed: installing posed${extras:+[$extras]} into $venv" >&2
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  "$venv/bin/python" -m pip install -q -e "$spec" >&2
  "$venv/bin/python" -m pip check >&2
  touch "$stamp"
fi
