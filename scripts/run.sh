#!/usr/bin/env bash
# README command 1: set up .venv if needed, then run the daemon on the embedded CPU backend.
# Drop videos into var/inbox/ and read results from var/outbox/. Extra arguments go to
# `posed run` (e.g. ./scripts/run.sh --inbox /mnt/c/posed/inbox worker.stall_timeout_s=120).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/_venv.sh"
mkdir -p var/inbox var/outbox
exec "$root/.venv/bin/posed" run "$@"
