#!/usr/bin/env bash
# Debian packages the test suite drives for real: a headless browser (the glTF viewer and
# preview checks), a Redis server (the BullMQ intake), faketime (clock skew between daemons)
# and bindfs (a real FUSE mount for the inbox watcher). Installs the missing ones with apt-get
# when run as root (CI, containers); otherwise prints the command and fails, never sudo-prompts.
set -euo pipefail
declare -A wanted=(
  [chromium]=chromium
  [redis-server]=redis-server
  [faketime]=faketime
  [bindfs]=bindfs
)
missing=()
for command in "${!wanted[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${wanted[$command]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "posed: the tests need these Debian packages: ${missing[*]}" >&2
  echo "posed: install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "posed: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
