#!/usr/bin/env bash
# Install the GPU backend (PHALP + HMR 2.0 / 4D-Humans) into .venv-gpu, on WSL2 Ubuntu 22.04.
#
#   scripts/setup-gpu.sh            # then: scripts/fetch-models.sh; .venv-gpu/bin/posed doctor backend.name=phalp
#
# Needs: the NVIDIA driver on Windows (WSL2 uses it; never install a Linux driver inside WSL),
# Python 3.10 with headers, a C++ compiler, git, and the CUDA 11.8 toolkit (nvcc) to compile
# detectron2 and neural_renderer against torch. Everything is pinned: torch/torchvision with their
# CUDA build, PHALP and 4D-Humans to commits, numpy < 2 (chumpy, mediapipe). A constraints file
# keeps any later step from replacing torch or adding a second OpenCV.
#
# Settings (environment): POSED_GPU_VENV (default .venv-gpu), POSED_GPU_PYTHON (python3.10),
# CUDA_HOME (/usr/local/cuda-11.8), TORCH_CUDA_ARCH_LIST (default: read from nvidia-smi, e.g. 8.9
# for an RTX 4060).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${POSED_GPU_VENV:-$root/.venv-gpu}"
python="${POSED_GPU_PYTHON:-python3.10}"
cuda_home="${CUDA_HOME:-/usr/local/cuda-11.8}"

TORCH_INDEX="https://download.pytorch.org/whl/cu118"
# 2.1 is the first torch whose torch.load(mmap=True) keeps HMR 2.0's 2.7 GB checkpoint out of
# anonymous memory while it loads (docs/gpu.md, "Host memory while loading"); 2.1.2 is still
# built for CUDA 11.8, so the toolkit and the compiled extensions stay as they were. Neither
# PHALP nor 4D-Humans pins torch (4D-Humans' environment.yml takes the newest pytorch-cuda=11.8).
TORCH="torch==2.1.2+cu118"
TORCHVISION="torchvision==0.16.2+cu118"
PHALP_COMMIT="96f7e6c09fb858ec3f597d59246c151ab4394bc3"        # brjathu/PHALP master, 2026-02-07 ("Update Links")
HMR2_COMMIT="6ec79656a23c33237c724742ca2a0ec00b398b53"         # shubham-goel/4D-Humans main, 2024-05-17
DETECTRON2_COMMIT="70f454304e1a38378200459dd2dbca0f0f4a5ab4"   # facebookresearch/detectron2 main, 2024-06-21
NMR_COMMIT="e990b3c70f48d39231f607c79d76ce3db4bf7483"          # shubham-goel/NMR (neural_renderer), 2023-02-16
CHUMPY_COMMIT="51d5afd92a8ded3637553be8cef41f328a1c863a"       # mattloper/chumpy master, 2023-02-21

say() { printf 'setup-gpu: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found. $2"; }

need "$python" "Install it: sudo apt-get install python3.10 python3.10-venv python3.10-dev (Ubuntu 24.04: add the deadsnakes PPA first)"
need git "Install it: sudo apt-get install git"
need g++ "Install a compiler: sudo apt-get install build-essential"
[ -x "$cuda_home/bin/nvcc" ] || die "no nvcc in $cuda_home. Install the CUDA 11.8 toolkit from NVIDIA's WSL-Ubuntu repository (package cuda-toolkit-11-8; not the 'cuda' meta-package, which would pull a Linux driver), or set CUDA_HOME"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || die "$python is not Python 3.10 (chumpy and the pinned torch need 3.10)"

nvidia_smi="$(command -v nvidia-smi || true)"
[ -z "$nvidia_smi" ] && [ -x /usr/lib/wsl/lib/nvidia-smi ] && nvidia_smi=/usr/lib/wsl/lib/nvidia-smi
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  arch=""
  if [ -n "$nvidia_smi" ]; then
    arch="$("$nvidia_smi" --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '[:space:]' || true)"
  fi
  [ -n "$arch" ] || die "cannot read the GPU's compute capability from nvidia-smi; set TORCH_CUDA_ARCH_LIST (8.9 for RTX 40xx, 8.6 for RTX 30xx)"
  export TORCH_CUDA_ARCH_LIST="$arch"
fi
say "compiling CUDA code for compute capability $TORCH_CUDA_ARCH_LIST with $cuda_home/bin/nvcc"

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
# pip 23.x: chumpy's setup.py imports pip internals that later releases moved.
"${pip[@]}" install --quiet --upgrade "pip==23.3.2" "setuptools==69.5.1" wheel ninja

constraints="$venv/posed-constraints.txt"
cat >"$constraints" <<EOF
# Written by scripts/setup-gpu.sh: nothing may replace these.
$TORCH
$TORCHVISION
numpy<2
# posed uses opencv-contrib-python (MediaPipe's flavour); a second OpenCV package would overwrite its cv2/.
opencv-python<0
opencv-python-headless<0
EOF

say "1/5 torch and torchvision for CUDA 11.8"
"${pip[@]}" install --index-url "$TORCH_INDEX" "$TORCH" "$TORCHVISION"

say "2/5 posed itself (with the CPU backend)"
"${pip[@]}" install -c "$constraints" -e "$root[test]"

say "3/5 what PHALP and 4D-Humans import (their own requirement lists pull git URLs and opencv-python)"
"${pip[@]}" install -c "$constraints" \
  "pytorch-lightning==2.0.9" "torchmetrics==1.2.1" "timm==0.9.16" "smplx==0.1.28" "yacs==0.1.8" \
  "einops==0.7.0" "joblib==1.3.2" "scikit-learn==1.3.2" "scipy==1.11.4" "dill==0.3.7" "rich==13.7.0" \
  "scikit-image==0.22.0" "webdataset==0.2.86" "pycocotools==2.0.7" "scenedetect==0.6.2" "trimesh==4.0.8" \
  "pyrender==0.1.45" "PyOpenGL==3.1.0" "av==11.0.0" "pytube==15.0.0" "pandas==2.1.4" "gdown==4.7.1" \
  "lap==0.5.12" "six==1.16.0"

say "4/5 compiled against this torch: chumpy, detectron2, neural_renderer (takes a while)"
export CUDA_HOME="$cuda_home" FORCE_CUDA=1
"${pip[@]}" install --no-build-isolation -c "$constraints" \
  "chumpy @ git+https://github.com/mattloper/chumpy.git@$CHUMPY_COMMIT" \
  "detectron2 @ git+https://github.com/facebookresearch/detectron2.git@$DETECTRON2_COMMIT" \
  "neural-renderer-pytorch @ git+https://github.com/shubham-goel/NMR.git@$NMR_COMMIT"

say "5/5 PHALP and 4D-Humans at pinned commits (dependencies installed above)"
"${pip[@]}" install --no-deps \
  "hmr2 @ git+https://github.com/shubham-goel/4D-Humans.git@$HMR2_COMMIT" \
  "phalp @ git+https://github.com/brjathu/PHALP.git@$PHALP_COMMIT"

"$venv/bin/python" - "$TORCH" <<'EOF'
import sys
import torch
wanted = sys.argv[1].split("==")[1]
if torch.__version__ != wanted:
    sys.exit(f"setup-gpu: torch was replaced: {torch.__version__} installed, {wanted} wanted")
EOF

say "done. Next:"
say "  scripts/fetch-models.sh --smpl PATH/TO/basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
say "  $venv/bin/posed doctor backend.name=phalp"
say "  run the daemon from $venv with backend.name=phalp (see docs/gpu.md)"
