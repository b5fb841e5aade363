#!/usr/bin/env bash
# Install the GPU backend (PHALP + HMR 2.0 / 4D-Humans) into .venv-gpu with pip alone.
#
#   scripts/setup-gpu.sh                 # then: scripts/fetch-models.sh --smpl ...; .venv-gpu/bin/posed doctor backend.name=phalp
#   scripts/setup-gpu.sh --dry-run       # print every step (argv) and the constraints; change nothing
#   scripts/setup-gpu.sh --print-constraints
#
# Needs: the NVIDIA driver on Windows (WSL2 uses it; never install a Linux driver inside WSL),
# Python >= 3.10 with venv, and network access to PyPI, download.pytorch.org and github.com.
# No compiler, no CUDA toolkit, no Python headers, no git: torch's wheel carries its CUDA
# runtime; PHALP and 4D-Humans are pure Python and come as commit tarballs (--no-deps: their own
# requirement lists pull git URLs and a second OpenCV); detectron2 is installed from its commit
# tarball with its C++/CUDA extension list emptied (posed's detectors take ROIAlign and NMS from
# torchvision; docs/gpu.md); chumpy is not needed (fetch-models converts the SMPL file);
# neural_renderer is not needed (posed renders the depth map in torch). A constraints file keeps
# any later step from replacing torch or adding a second OpenCV.
#
# Settings (environment): POSED_GPU_VENV (default .venv-gpu), POSED_GPU_PYTHON (python3),
# POSED_GPU_CUDA (cu128: Windows driver R570 or newer; cu126: R560; cu130: R580).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${POSED_GPU_VENV:-$root/.venv-gpu}"
python="${POSED_GPU_PYTHON:-python3}"
cuda="${POSED_GPU_CUDA:-cu128}"

# 2.11 is the release a lent GPU machine could validate (docs/gpu.md); it has wheels for
# Python 3.10-3.14 and every CUDA build below. Nothing compiled is tied to it any more.
TORCH_VERSION="2.11.0"
TORCHVISION_VERSION="0.26.0"
PHALP_COMMIT="96f7e6c09fb858ec3f597d59246c151ab4394bc3"        # brjathu/PHALP master, 2026-02-07 ("Update Links")
HMR2_COMMIT="6ec79656a23c33237c724742ca2a0ec00b398b53"         # shubham-goel/4D-Humans main, 2024-05-17
DETECTRON2_COMMIT="70f454304e1a38378200459dd2dbca0f0f4a5ab4"   # facebookresearch/detectron2 main, 2024-06-21
PHALP_URL="https://github.com/brjathu/PHALP/archive/$PHALP_COMMIT.tar.gz"
HMR2_URL="https://github.com/shubham-goel/4D-Humans/archive/$HMR2_COMMIT.tar.gz"
DETECTRON2_URL="https://github.com/facebookresearch/detectron2/archive/$DETECTRON2_COMMIT.tar.gz"

dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  --print-constraints) print_only=1 ;;
  "") ;;
  *) echo "usage: scripts/setup-gpu.sh [--dry-run | --print-constraints]" >&2; exit 2 ;;
esac

case "$cuda" in
  cu126|cu128|cu130) ;;
  *) echo "setup-gpu: POSED_GPU_CUDA=$cuda: choose cu126, cu128 or cu130 (docs/gpu.md, driver table)" >&2; exit 2 ;;
esac
TORCH_INDEX="https://download.pytorch.org/whl/$cuda"

constraints_text() {
  cat <<EOF
# Written by scripts/setup-gpu.sh: nothing may replace these.
torch==$TORCH_VERSION
torchvision==$TORCHVISION_VERSION
# detectron2's model_zoo imports pkg_resources, which setuptools 82 removed.
setuptools<82
# MediaPipe 0.10.21 (posed's CPU backend, installed with posed) needs numpy 1.
numpy<2
# posed uses opencv-contrib-python (MediaPipe's flavour); a second OpenCV package would overwrite its cv2/.
opencv-python<0
opencv-python-headless<0
EOF
}

if [ "${print_only:-0}" = 1 ]; then
  constraints_text
  exit 0
fi

say() { printf 'setup-gpu: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
run() {  # every step goes through here: printed (and not run) with --dry-run
  if [ "$dry_run" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

if [ "$dry_run" = 0 ]; then
  command -v "$python" >/dev/null 2>&1 || die "$python not found. Install it: sudo apt-get install python3 python3-venv"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$python is older than 3.10; set POSED_GPU_PYTHON"
  "$python" -c 'import venv, ensurepip' 2>/dev/null || die "$python has no venv/ensurepip. Install it: sudo apt-get install python3-venv"
fi

vpython="$venv/bin/python"
pip=("$vpython" -m pip)
constraints="$venv/posed-constraints.txt"

say "1/6 virtual environment $venv"
if [ ! -x "$vpython" ]; then
  run "$python" -m venv "$venv"
fi
run "${pip[@]}" install --quiet --upgrade pip "setuptools<82" wheel
if [ "$dry_run" = 1 ]; then
  printf '+ write %q:\n' "$constraints"; constraints_text | sed 's/^/    /'
else
  constraints_text >"$constraints"
fi

say "2/6 torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION, $cuda build (the CUDA runtime is inside the wheel)"
run "${pip[@]}" install --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

say "3/6 posed with the gpu extra (wheels and pure-Python packages only)"
run "${pip[@]}" install -c "$constraints" -e "$root[gpu]"

say "4/6 PHALP and 4D-Humans at pinned commits, from tarballs (dependencies come from the gpu extra)"
run "${pip[@]}" install --no-deps -c "$constraints" "$PHALP_URL" "$HMR2_URL"

say "5/6 detectron2 at $DETECTRON2_COMMIT as a pure-Python package (its extension list emptied)"
work="$venv/posed-build"
run "$vpython" "$root/scripts/detectron2_pure.py" "$DETECTRON2_URL" "$work"
# --no-build-isolation: detectron2's setup.py imports torch, the one installed above.
run "${pip[@]}" install --no-deps --no-build-isolation -c "$constraints" "$work/detectron2-$DETECTRON2_COMMIT"
run rm -rf "$work"

say "6/6 checking the install"
run "$vpython" "$root/scripts/detectron2_pure.py" --verify "$TORCH_VERSION"

say "done. Next:"
say "  scripts/fetch-models.sh --smpl PATH/TO/basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
say "  $venv/bin/posed doctor backend.name=phalp"
say "  run the daemon from $venv with backend.name=phalp (see docs/gpu.md)"
