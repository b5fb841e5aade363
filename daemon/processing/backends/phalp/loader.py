"""Loading PHALP + HMR 2.0 without surprises: every check that can fail cheaply comes first.

Order: settings -> every model file present (all missing ones reported at once, each with its
path and the fix) -> torch importable -> CUDA usable -> cache environment -> import the model
stack in a sandbox -> build. Nothing is downloaded: the files are looked up where the config says
(``configs/models.yaml``), and ``scripts/fetch-models.sh`` is the only thing that fetches them.

This module does not import torch, PHALP or 4D-Humans itself (CI has none of them); the code
that does lives in ``wiring.py`` and is imported here, at load time, after the checks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from daemon.processing.backends.base import LoadProgress
from daemon.processing.backends.phalp.convert import SmplModel
from daemon.processing.backends.phalp.device import select_device
from daemon.processing.backends.phalp.environment import contained_side_effects, sandbox_dir, sandboxed_home, set_cache_environment
from daemon.processing.backends.phalp.manifest import DETECTORS, Manifest, describe_missing, load_manifest, missing_files
from daemon.config import PhalpConfig
from daemon.errors import BackendUnavailable, ConfigError

PHALP_TRACK_HISTORY = 7  # PHALP's phalp.track_history: back-filling reads that many detections
INSTALL_FIX = "install the GPU stack with scripts/setup-gpu.sh and run posed from .venv-gpu; `posed doctor` lists what is missing"
WIRING_MODULE = "daemon.processing.backends.phalp.wiring"


class ModelRuntime(Protocol):
    """What the backend may ask of the loaded models between and during videos."""

    oom_errors: tuple[type[BaseException], ...]

    def set_low_memory(self, enabled: bool) -> None: ...

    def release_cached_memory(self) -> None: ...


@dataclass(frozen=True)
class BuildRequest:
    """Everything ``wiring.build_models`` needs, resolved and checked."""

    cfg: PhalpConfig
    device: str
    paths: dict[str, Path]  # manifest key -> file
    sandbox: Path  # posed-owned directory for anything PHALP insists on creating


@dataclass
class LoadedModels:
    phalp: Any  # the PHALP tracker object (get_detections, get_human_features, tracker, cfg)
    smpl_model: SmplModel
    runtime: ModelRuntime
    device: str  # e.g. "cuda:0 (NVIDIA GeForce RTX 4060 Laptop GPU)"
    versions: dict[str, str] = field(default_factory=dict)
    mesh_faces: np.ndarray | None = None  # (13776, 3) SMPL triangles


def load_models(cfg: PhalpConfig, progress: LoadProgress) -> LoadedModels:
    """Check, then build. Raises ``BackendUnavailable`` (with the fix) or ``ConfigError``."""
    check_settings(cfg)
    progress("checking model files")
    manifest = load_manifest(cfg)
    paths = require_model_files(manifest, cfg.detector)
    torch = import_or_explain("torch")
    device = select_device(cfg.device, torch)
    set_cache_environment(cfg)
    request = BuildRequest(cfg=cfg, device=device, paths=paths, sandbox=sandbox_dir(cfg))
    with contained_side_effects():
        with sandboxed_home(request.sandbox):
            wiring = import_or_explain(WIRING_MODULE)
        return wiring.build_models(request, progress)


def check_settings(cfg: PhalpConfig) -> None:
    if cfg.detector not in DETECTORS:
        raise ConfigError(f"config key 'backend.phalp.detector': {cfg.detector!r} is not one of {', '.join(DETECTORS)}")
    if not 1 <= cfg.n_init <= PHALP_TRACK_HISTORY:
        raise ConfigError(f"config key 'backend.phalp.n_init': must be 1..{PHALP_TRACK_HISTORY} (PHALP's track history), got {cfg.n_init}")
    if cfg.max_age_track < 1:
        raise ConfigError(f"config key 'backend.phalp.max_age_track': must be >= 1, got {cfg.max_age_track}")
    if not 0.0 <= cfg.detection_score_threshold < 1.0:
        raise ConfigError(f"config key 'backend.phalp.detection_score_threshold': must be in [0, 1), got {cfg.detection_score_threshold}")
    if cfg.max_detections < 1:
        raise ConfigError(f"config key 'backend.phalp.max_detections': must be >= 1, got {cfg.max_detections}")
    if cfg.min_person_width_px < 0 or cfg.min_person_height_px < 0:
        raise ConfigError("config keys 'backend.phalp.min_person_width_px/min_person_height_px': must be >= 0")
    if cfg.fp16 and cfg.device == "cpu":
        raise ConfigError("config key 'backend.phalp.fp16': fp16 autocast needs a CUDA device")


def require_model_files(manifest: Manifest, detector: str) -> dict[str, Path]:
    required = manifest.required(detector)
    missing = missing_files(required)
    if missing:
        raise BackendUnavailable(f"{describe_missing(missing)}\n(model list: {manifest.source})")
    return {model_file.key: model_file.path for model_file in required}


def import_or_explain(name: str) -> ModuleType:
    """Import a module of the GPU stack; a missing piece becomes ``BackendUnavailable`` naming it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or name
        raise BackendUnavailable(f"cannot import {missing!r} (needed by the phalp backend): {exc}. Fix: {INSTALL_FIX}") from exc
