#!/usr/bin/env bash
# Download every model file of the phalp (GPU) backend into the configured cache.
#
#   scripts/fetch-models.sh                         # files for backend.phalp.detector
#   scripts/fetch-models.sh --detector all          # both detectors
#   scripts/fetch-models.sh --smpl ~/Downloads/basicModel_neutral_lbs_10_207_0_v1.0.0.pkl
#   scripts/fetch-models.sh --config my.yaml backend.phalp.cache_dir=/data/posed
#
# URLs, destinations and checksums live in configs/models.yaml, not here. Downloads are atomic
# (temp file, size/sha256 check, rename) and the sha256 of each file is printed for pinning.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

python="${POSED_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in "$root/.venv-gpu/bin/python" "$root/.venv/bin/python"; do
    if [ -x "$candidate" ]; then python="$candidate"; break; fi
  done
fi
if [ -z "$python" ]; then
  echo "fetch-models: no posed virtual environment found; run scripts/setup-gpu.sh first (or set POSED_PYTHON)" >&2
  exit 1
fi

exec "$python" "$root/scripts/fetch_models.py" "$@"
