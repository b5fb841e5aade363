#!/usr/bin/env bash
# The GPU side of the device check: one call on the lent machine, with the carry set named.
#   bash scripts/gpu-check/run.sh .gpucarry        # figures as JSON under $OUT (docs/gpu.md)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
carry="${1:-.gpucarry}"
out="${OUT:?OUT must name the folder the figures go to}"
exec python3 "$root/scripts/gpu-check/device_check.py" --carry "$carry" --out "$out" --budget-s "${POSED_CHECK_BUDGET_S:-540}"
