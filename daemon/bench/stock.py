"""``posed bench --baseline stock``: PHALP's stock per-frame loop, for the GPU backend's 2x target.

Issue 6 asks the GPU backend for at least twice the throughput of "a faithful re-creation of
PHALP's stock per-frame loop on the same GPU and the same frames". ``stock_loop`` is that loop:
the body of ``PHALP.track()`` (reference phalp-hmr2-api.md §2.2 and §2.5, PHALP@96f7e6c
``phalp/trackers/PHALP.py:179-264``) with rendering off, one frame at a time, nothing overlapped
or batched across frames, every frame's records kept in ``final_visuals_dic`` and pickled with
``joblib.dump(..., compress=3)`` at the end, as upstream does. It drives the same PHALP object
(same models, same weights) the phalp backend loaded, so the two figures differ only by the
loop around the models. Decoding is done inline by the same decoder; upstream's JPEG
extraction pass is left out, which flatters the baseline.

The GPU stack (torch with CUDA, phalp, 4D-Humans' hmr2, detectron2) cannot be installed on
the CPU CI machines, so ``check_stock_baseline`` fails fast there with a message saying so.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.processing.backends.base import Backend
from daemon.config import PosedConfig
from daemon.errors import BackendUnavailable
from daemon.records import Frame

if TYPE_CHECKING:
    from daemon.bench.types import LoopedClip

GPU_STACK = ("torch", "phalp", "hmr2", "detectron2")
EVAL_KEYS = ("tracked_ids", "tracked_bbox", "tid", "bbox", "tracked_time")
HISTORY_KEYS = (  # PHALP.track() history_keys with render.enable=False (no 'uv')
    "appe", "loca", "pose", "center", "scale", "size", "img_path", "img_name", "class_name", "conf",
    "annotations", "smpl", "camera", "camera_bbox", "3d_joints", "2d_joints", "mask", "extra_data",
)  # fmt: skip
Dump = Callable[[Any, Path], None]
DESCRIPTION = "PHALP.track() per-frame loop re-created (render off), same models and frames"


def check_stock_baseline(cfg: PosedConfig) -> None:
    """Raise ``BackendUnavailable`` unless the stock baseline can run here."""
    missing = [name for name in GPU_STACK if importlib.util.find_spec(name) is None]
    stack_note = (
        f"the GPU stack is not installed here (missing: {', '.join(missing)}); the stock baseline needs "
        "torch with CUDA, phalp, 4D-Humans (hmr2) and detectron2, as for the phalp backend"
        if missing
        else ""
    )
    if cfg.backend.name != "phalp":
        reason = f"--baseline stock re-creates PHALP's stock per-frame loop; run it with --backend phalp (configured: {cfg.backend.name!r})"
        raise BackendUnavailable(f"{reason}; also, {stack_note}" if stack_note else reason)
    if missing:
        raise BackendUnavailable(f"--baseline stock cannot run: {stack_note}")
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("--baseline stock cannot run: torch is installed but CUDA is not available")


def measure_stock_baseline(backend: Backend, clip: LoopedClip, frames: int) -> dict[str, Any]:
    """Run ``stock_loop`` on the backend's loaded PHALP object over the same ``frames`` frames."""
    phalp = _phalp_object(backend)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="posed-bench-stock-") as tmp:
        count = stock_loop(phalp, clip.frames(limit=frames), Path(tmp) / "stock.pkl")
    seconds = time.perf_counter() - started
    return {"fps": round(count / seconds, 3) if seconds > 0 else 0.0, "seconds": round(seconds, 3), "frames": count, "description": DESCRIPTION}


def _phalp_object(backend: Backend) -> Any:
    """The PHALP tracker object behind the phalp backend, through its public accessor."""
    accessor = getattr(backend, "stock_phalp", None)
    if accessor is None:
        raise BackendUnavailable(
            "--baseline stock needs the phalp backend to expose its loaded PHALP object as stock_phalp(); "
            f"{type(backend).__name__} does not"
        )
    return accessor()


def stock_loop(phalp: Any, frames: Iterable[Frame], pkl_path: Path, *, dump: Dump | None = None) -> int:
    """PHALP.track()'s per-frame body on decoded frames; returns the number of frames done.

    ``dump`` writes the final dict; upstream's ``joblib.dump(..., compress=3)`` by default
    (joblib comes with PHALP, not with posed).
    """
    cfg = phalp.cfg
    phalp.eval()
    phalp.setup_deepsort()
    n_init = int(cfg.phalp.n_init)
    tracked_frames: list[str] = []
    final_visuals_dic: dict[str, dict[str, Any]] = {}
    count = 0
    for t_, frame in enumerate(frames):
        frame_name = f"{t_:06d}.jpg"
        _stock_step(phalp, frame.image, frame_name, t_)
        record = final_visuals_dic.setdefault(frame_name, {"time": t_, "shot": 0, "frame_path": frame_name})
        for key in (*EVAL_KEYS, *HISTORY_KEYS):
            record[key] = []
        for track in phalp.tracker.tracks:
            if frame_name not in tracked_frames:  # upstream's O(N) list search, kept on purpose
                tracked_frames.append(frame_name)
            if not track.is_confirmed():
                continue
            _record_track(record, track, track.track_data["history"][-1], track.time_since_update)
            if track.time_since_update == 0:
                record["tracked_ids"].append(track.track_id)
                record["tracked_bbox"].append(track.track_data["history"][-1]["bbox"])
                if track.hits == n_init:
                    _back_fill(final_visuals_dic, tracked_frames, track, n_init)
        count += 1
    (dump or _joblib_dump)(final_visuals_dic, pkl_path)
    return count


def _joblib_dump(value: Any, path: Path) -> None:
    import joblib

    joblib.dump(value, path, compress=3)


def _stock_step(phalp: Any, image: Any, frame_name: str, t_: int) -> None:
    height, width = image.shape[:2]
    size = max(height, width)
    measurments = [height, width, size, (size - width) // 2, (size - height) // 2]  # upstream spelling
    phalp.cfg.phalp.shot = 0
    bbox, bbox_pad, masks, scores, classes, gt_tids, gt_annots = phalp.get_detections(image, frame_name, t_, {}, measurments)
    extra = phalp.run_additional_models(image, bbox, masks, scores, classes, frame_name, t_, measurments, gt_tids, gt_annots)
    detections = phalp.get_human_features(
        image, masks, bbox, bbox_pad, scores, frame_name, classes, t_, measurments, gt_tids, gt_annots, extra
    )
    phalp.tracker.predict()
    phalp.tracker.update(detections, t_, frame_name, 0)


def _record_track(record: dict[str, Any], track: Any, history: dict[str, Any], tracked_time: int) -> None:
    record["tid"].append(track.track_id)
    record["bbox"].append(history["bbox"])
    record["tracked_time"].append(tracked_time)
    for key in HISTORY_KEYS:
        record[key].append(history[key])


def _back_fill(final_visuals_dic: dict[str, dict[str, Any]], tracked_frames: list[str], track: Any, n_init: int) -> None:
    for pt in range(n_init - 1):
        history = track.track_data["history"][-2 - pt]
        record = final_visuals_dic[tracked_frames[-2 - pt]]
        _record_track(record, track, history, 0)
        record["tracked_ids"].append(track.track_id)
        record["tracked_bbox"].append(history["bbox"])
