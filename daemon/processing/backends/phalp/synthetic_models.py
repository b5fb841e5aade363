"""Random weights of the real architectures, saved in upstream's file formats.

Run by ``synthetic.write_weight_files`` as a child process (``python -m`` this module with the
config overrides), after the support files exist, so that building 2.7 GB of models here never
counts in the bench's memory figures. Needs the GPU stack (torch, hmr2, phalp, detectron2):
this module is never imported where it is missing.

Two deliberate departures from "random": the camera head's weights are zeroed, so HMR 2.0's
camera is its mean (scale 0.9) instead of a random one that can put a person behind the
camera, which PHALP's location model cannot take (log of a negative depth); and the detector's
"person" class is biased up, because a randomly initialised detector scores every class near
1/81 and would report nobody at PHALP's 0.8 threshold, leaving HMR 2.0 idle.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from daemon.processing.backends.phalp import synthetic
from daemon.processing.backends.phalp.environment import contained_side_effects, sandbox_dir, sandboxed_home, set_cache_environment
from daemon.processing.backends.phalp.loader import WIRING_MODULE, BuildRequest
from daemon.config import PhalpConfig, load_config

HMAR_PREFIX = "hmar."  # HMAR.load_weights keeps matching keys and strips their first 5 characters
PERSON_LOGIT_BIAS = 12.0  # softmax score of "person" ~ 1.0 on every proposal
CAMERA_HEAD_MARKER = "deccam"  # HMR 2.0's SMPL head: pred_cam = deccam(features) + init_cam


def main(overrides: list[str]) -> int:
    cfg = load_config(overrides=overrides).backend.phalp
    paths = synthetic.model_paths(cfg)
    set_cache_environment(cfg)
    with contained_side_effects(), sandboxed_home(sandbox_dir(cfg)):
        wiring = importlib.import_module(WIRING_MODULE)
        request = BuildRequest(cfg=cfg, device="cpu", paths=paths, sandbox=sandbox_dir(cfg))
        for key, writer in _writers(wiring, request).items():
            if key in paths and not paths[key].is_file():
                writer(paths[key])
    return 0


def _writers(wiring: Any, request: BuildRequest) -> dict[str, Callable[[Path], None]]:
    detector = lambda path: _write_detector(wiring, request.cfg, path)  # noqa: E731 - same writer, two keys
    return {
        "hmr2_checkpoint": lambda path: _write_hmr2(wiring, request, path),
        "phalp_hmar_weights": lambda path: _write_hmar(wiring, request, path),
        "phalp_pose_predictor_weights": lambda path: _write_pose_predictor(wiring, request, path),
        "detector_maskrcnn": detector,
        "detector_vitdet": detector,
    }


def _write_hmr2(wiring: Any, request: BuildRequest, path: Path) -> None:
    model = wiring.HMR2(wiring.hmr2_model_config(request.paths), init_renderer=False)
    with wiring.torch.no_grad():
        for name, parameter in model.named_parameters():
            if CAMERA_HEAD_MARKER in name:
                parameter.zero_()
    _save_torch(wiring.torch, {"state_dict": model.state_dict()}, path)


def _write_hmar(wiring: Any, request: BuildRequest, path: Path) -> None:
    hmar = wiring._build_hmar_without_imagenet(wiring.phalp_config(request))
    _save_torch(wiring.torch, {"model": {HMAR_PREFIX + key: value for key, value in hmar.state_dict().items()}}, path)


def _write_pose_predictor(wiring: Any, request: BuildRequest, path: Path) -> None:
    tracker = SimpleNamespace(HMAR=SimpleNamespace(smpl=None))  # the predictor only keeps a reference to it
    predictor = wiring.Pose_transformer_v2(wiring.phalp_config(request), tracker)
    state = {"encoder." + key: value for key, value in predictor.encoder.state_dict().items()}
    _save_torch(wiring.torch, {"state_dict": state}, path)


def _write_detector(wiring: Any, cfg: PhalpConfig, path: Path) -> None:
    from detectron2.config import instantiate

    if cfg.detector == "maskrcnn":
        lazy_cfg = wiring.model_zoo.get_config(wiring.MASKRCNN_LAZY_CONFIG, trained=False)
    else:
        lazy_cfg = wiring.LazyConfig.load(str(wiring.VITDET_LAZY_CONFIG))
    model = instantiate(lazy_cfg.model)
    arrays = {key: value.detach().cpu().numpy().copy() for key, value in model.state_dict().items()}
    for key, value in arrays.items():
        if key.endswith("cls_score.bias"):
            value[0] += PERSON_LOGIT_BIAS  # class 0 is COCO's person
    _atomic_write(path, lambda handle: pickle.dump({"model": arrays, "__author__": "posed synthetic weights"}, handle, protocol=4))


def _save_torch(torch: Any, content: dict, path: Path) -> None:
    _atomic_write(path, lambda handle: torch.save(content, handle))


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """A killed run never leaves a half-written file that the next run would take as done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
