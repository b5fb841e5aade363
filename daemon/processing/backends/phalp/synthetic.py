"""``posed bench --synthetic-weights``: the real phalp stack with random weights of the right shapes.

Before fetching 3 GB of weights (and registering for SMPL), a user with the GPU stack installed
can measure what their card does with the real architectures: frames/s, peak VRAM, peak host
memory. This module fills a temporary cache with every file ``configs/models.yaml`` lists, so
the normal loader runs unchanged (same checks, same mmap loading, same wiring):

- files plain numpy can write are written here: the stand-in SMPL body model
  (``stand_in_smpl.py``), the 19-joint regressors, mean SMPL parameters, PHALP's texture
  layout and UV atlas, the pose predictor's normalisation, and both architecture configs;
- the weight files are written by ``synthetic_models.py`` in a child process (so its memory
  never counts in the bench's peaks): it builds HMR 2.0 (ViT-H + SMPL head), PHALP's
  appearance model and pose predictor, and the detectron2 detector with their random
  initialisation and saves their state dicts in the upstream formats.

Where the GPU stack is missing (CI, this project's CPU machines) ``require_gpu_stack`` says
which modules are missing before anything is written.
"""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from daemon.processing.backends.phalp import stand_in_smpl
from daemon.processing.backends.phalp.manifest import load_manifest
from daemon.config import PhalpConfig
from daemon.errors import BackendUnavailable

GPU_STACK = ("torch", "torchvision", "detectron2", "smplx", "hmr2", "phalp")
MODELS_MODULE = "daemon.processing.backends.phalp.synthetic_models"
WEIGHT_KEYS = ("hmr2_checkpoint", "phalp_hmar_weights", "phalp_pose_predictor_weights", "detector_maskrcnn", "detector_vitdet")
SMPL_MEAN_POSE_6D = (1.0, 0.0, 0.0, 0.1, 1.0, 0.0)  # not degenerate under either 6D convention (HMR 2.0's, PHALP's)
SMPL_MEAN_CAMERA = (0.9, 0.0, 0.0)  # weak-perspective scale and translation of an average crop
SYNTHETIC_PEOPLE_PER_FRAME = 3
POSE_PREDICTOR_FRAME_LENGTH = 100  # >= max_age_track + track_history: see POSE_PREDICTOR_CONFIG
POSE_PREDICTOR_INPUT = 229  # PHALP pads its pose features to 229 (pose_transformer_v2.py:320)
# HMR 2.0's architecture, as 4D-Humans' experiment/hmr_vit_transformer.yaml and default.yaml define it.
HMR2_CONFIG = {
    "MODEL": {
        "IMAGE_SIZE": 256,
        "IMAGE_MEAN": [0.485, 0.456, 0.406],
        "IMAGE_STD": [0.229, 0.224, 0.225],
        "BBOX_SHAPE": [192, 256],
        "BACKBONE": {"TYPE": "vit", "PRETRAINED_WEIGHTS": ""},
        "SMPL_HEAD": {
            "TYPE": "transformer_decoder",
            "IN_CHANNELS": 2048,
            "TRANSFORMER_DECODER": {
                "depth": 6, "heads": 8, "mlp_dim": 1024, "dim_head": 64, "dropout": 0.0,
                "emb_dropout": 0.0, "norm": "layer", "context_dim": 1280,
            },
        },
    },
    "SMPL": {"MODEL_PATH": "", "GENDER": "neutral", "NUM_BODY_JOINTS": 23, "JOINT_REGRESSOR_EXTRA": "", "MEAN_PARAMS": ""},
    "EXTRA": {"FOCAL_LENGTH": 5000, "NUM_LOG_IMAGES": 4, "NUM_LOG_SAMPLES_PER_IMAGE": 8, "PELVIS_IND": 39},
    "LOSS_WEIGHTS": {"KEYPOINTS_3D": 0.05, "KEYPOINTS_2D": 0.01, "GLOBAL_ORIENT": 0.001, "BODY_POSE": 0.001, "BETAS": 0.0005, "ADVERSARIAL": 0.0},
}  # fmt: skip
# PHALP's pose predictor (LART). The real config_40006.yaml was not available to read: these
# sizes follow the code's constraints (transformer width = encoder output = in_feat) and come
# to about 30 M parameters, near the real 140 MB checkpoint. Approximate, and a small share of
# the per-frame time either way. frame_length is the predictor's time window: upstream
# predict_next places each of a track's track_history (7) detections at its frame offset from
# the first, and crashes ('int' object has no attribute 'item') once that offset reaches
# frame_length - 1, i.e. as soon as a track's history spans a gap. Random detections make gaps
# likely, so the window covers max_age_track (50) plus the history with room to spare.
POSE_PREDICTOR_CONFIG = {
    "configs": {
        "in_feat": 512, "frame_length": POSE_PREDICTOR_FRAME_LENGTH, "max_people": 1, "num_smpl_heads": 1, "mask_ratio": 0.4,
        "mask_type_test": "zero",
        "transformer": {"depth": 6, "heads": 8, "mlp_dim": 512, "dim_head": 64, "dropout": 0.0, "emb_dropout": 0.0,
                        "droppath": 0.0, "conv": {"pad": 1, "stride": 1}},
        "extra_feat": {"enable": "", "pose_shape": {"dim": POSE_PREDICTOR_INPUT, "mid_dim": 1024, "en_dim": 512}},
        "ava": {"predict_valid": True, "num_action_classes": 80, "num_valid_action_classes": 60},
    }
}  # fmt: skip


def missing_gpu_stack() -> list[str]:
    return [name for name in GPU_STACK if importlib.util.find_spec(name) is None]


def require_gpu_stack(backend_name: str) -> None:
    """Fail fast, before any file is written or video opened, naming what is missing."""
    if backend_name != "phalp":
        raise BackendUnavailable(f"--synthetic-weights measures the phalp backend; add backend.name=phalp (configured: {backend_name!r})")
    missing = missing_gpu_stack()
    if missing:
        raise BackendUnavailable(
            f"--synthetic-weights builds the real PHALP + HMR 2.0 stack, which is not installed here (missing: {', '.join(missing)}). "
            "Fix: install it with scripts/setup-gpu.sh on a machine with an NVIDIA GPU and run .venv-gpu/bin/posed"
        )


def synthetic_overrides(directory: Path, user_overrides: list[str] = ()) -> list[str]:
    """Config overrides that point every phalp model path into ``directory``, and cap the
    detections per frame (unless the user chose a cap): the biased random detector calls
    every proposal a person, up to detectron2's 100 a frame, where a sports clip has a few."""
    overrides = [f"backend.phalp.cache_dir={directory}"]
    for key, sub in (("phalp_cache_dir", "phalp"), ("hmr2_cache_dir", "4DHumans"), ("detectron2_cache_dir", "detectron2")):
        overrides.append(f"backend.phalp.{key}={directory / sub}")
    overrides.append(f"backend.phalp.smpl_path={directory / 'smpl' / 'SMPL_NEUTRAL.pkl'}")
    if not any(item.startswith("backend.phalp.max_detections=") for item in user_overrides):
        overrides.append(f"backend.phalp.max_detections={SYNTHETIC_PEOPLE_PER_FRAME}")
    return overrides


def prepare_cache(cfg: PhalpConfig, config_overrides: list[str]) -> None:
    """Every file of the model list, synthetic, where ``cfg`` (from ``synthetic_overrides``) points."""
    write_support_files(model_paths(cfg))
    write_weight_files(cfg, config_overrides)


def model_paths(cfg: PhalpConfig) -> dict[str, Path]:
    """Every file the configured detector needs, by manifest key (SMPL included)."""
    return {model_file.key: model_file.path for model_file in load_manifest(cfg).required(cfg.detector)}


def write_support_files(paths: dict[str, Path]) -> list[str]:
    """Write every non-weight file; returns the keys written."""
    written = []
    for key, path in paths.items():
        writer = SUPPORT_WRITERS.get(key)
        if writer is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path)
            written.append(key)
    return written


def write_weight_files(cfg: PhalpConfig, config_overrides: list[str], timeout_s: float = 3600.0) -> None:
    """Build the real architectures in a child process and save their random weights."""
    argv = [sys.executable, "-m", MODELS_MODULE, *config_overrides, f"backend.phalp.detector={cfg.detector}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise BackendUnavailable(f"building the synthetic weights failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


# --- the support files, in the formats upstream reads ---------------------------------------


def _write_smpl(path: Path) -> None:
    stand_in_smpl.write_body_model(path)


def _write_joint_regressor(path: Path) -> None:
    with path.open("wb") as handle:  # read by pickle.load(f, encoding="latin1") into a tensor
        pickle.dump(stand_in_smpl.extra_joint_regressor(), handle, protocol=2)


def _write_mean_params(path: Path) -> None:
    pose = np.tile(np.asarray(SMPL_MEAN_POSE_6D), stand_in_smpl.JOINTS)  # (144,): 24 joints in 6D
    with path.open("wb") as handle:  # np.savez appends .npz to a bare name; a handle keeps the path
        np.savez(handle, pose=pose, shape=np.zeros(10), cam=np.asarray(SMPL_MEAN_CAMERA))


def _write_mean_std(path: Path) -> None:
    # Pose_transformer_v2: mean_, std_ = np.load(...), each (1, n <= 229), padded to 229.
    with path.open("wb") as handle:
        np.save(handle, np.stack([np.zeros((1, POSE_PREDICTOR_INPUT)), np.ones((1, POSE_PREDICTOR_INPUT))]))


def _write_texture(path: Path) -> None:
    faces = stand_in_smpl.sphere_faces().astype(np.int64)
    with path.open("wb") as handle:  # HMAR: smpl_faces, vt (UV per UV-vertex), ft (UV-vertex per face corner)
        np.savez(handle, smpl_faces=faces, vt=stand_in_smpl.uv_coordinates(), ft=faces)


def _write_bmap(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, stand_in_smpl.uv_atlas().barycentric)


def _write_fmap(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, stand_in_smpl.uv_atlas().face)


def _write_yaml(content: dict) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(yaml.safe_dump(content, sort_keys=False))

    return write


SUPPORT_WRITERS: dict[str, Callable[[Path], None]] = {
    "smpl_neutral": _write_smpl,
    "phalp_smpl_to_j19": _write_joint_regressor,
    "hmr2_smpl_to_j19": _write_joint_regressor,
    "phalp_smpl_mean_params": _write_mean_params,
    "hmr2_smpl_mean_params": _write_mean_params,
    "phalp_mean_std": _write_mean_std,
    "phalp_texture": _write_texture,
    "phalp_bmap": _write_bmap,
    "phalp_fmap": _write_fmap,
    "hmr2_model_config": _write_yaml(HMR2_CONFIG),
    "phalp_pose_predictor_config": _write_yaml(POSE_PREDICTOR_CONFIG),
}
