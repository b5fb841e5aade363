"""Test-only backend that fails on purpose: signals, exits, hangs, leaks, OOM, slowness.

Selected with ``backend.name=fault``. It makes every supervision path reachable with real
processes, real signals and real timeouts. People it reports are a fixed synthetic skeleton:
this backend is never a pose estimator and says so in its model version.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from daemon.processing.backends.base import Backend, LoadProgress
from daemon.config import FaultConfig
from daemon.log import get_logger
from daemon.records import BackendInfo, Frame, FrameResult, JobOptions, Person, VideoMeta

log = get_logger(__name__)
KEYPOINTS = ("head", "left_hand", "right_hand", "left_foot", "right_foot")


class FaultBackend(Backend):
    def __init__(self, cfg: FaultConfig) -> None:
        self._cfg = cfg
        self._armed = False
        self._low_memory = False
        self._leak: list[bytearray] = []

    def load(self, progress: LoadProgress) -> BackendInfo:
        progress("fault-injection backend (test only)")
        marker = self._cfg.crash_on_load_while_exists
        if marker and Path(marker).exists():
            log.error("fault.crash_on_load", marker=marker)
            self._die()
        if self._cfg.load_seconds:
            time.sleep(self._cfg.load_seconds)
        hang_marker = self._cfg.hang_on_load_while_exists
        if hang_marker and Path(hang_marker).exists():
            log.error("fault.hang_on_load", marker=hang_marker)
            while True:
                time.sleep(3600)
        return BackendInfo(
            name="fault",
            version="0",
            model_version="fault-injection-test-backend (synthetic skeleton, not a pose model)",
            device="cpu",
            keypoint_names=KEYPOINTS,
            keypoint_format="synthetic-5",
        )

    def start_video(self, meta: VideoMeta, options: JobOptions) -> None:
        self._armed = self._cfg.trigger in Path(meta.path).name
        self._low_memory = options.low_memory
        self._leak.clear()

    def process(self, frame: Frame) -> list[FrameResult]:
        if self._armed:
            self._inject(frame.index)
        height, width = frame.image.shape[:2]
        people = [_synthetic_person(i + 1, width, height) for i in range(self._cfg.people)]
        return [FrameResult(index=frame.index, timestamp_s=frame.timestamp_s, people=people)]

    def _inject(self, index: int) -> None:
        cfg = self._cfg
        if cfg.slow_ms_per_frame:
            time.sleep(cfg.slow_ms_per_frame / 1000.0)
        if cfg.leak_mb_per_frame:
            self._leak.append(bytearray(int(cfg.leak_mb_per_frame * 1024 * 1024)))
        if index == cfg.crash_at_frame:
            log.error("fault.crash", frame_index=index)
            self._die()
        if index == cfg.raise_at_frame:
            raise RuntimeError(f"injected failure at frame {index}")
        if index == cfg.oom_at_frame and not self._low_memory:
            raise MemoryError(f"injected out-of-memory at frame {index}")
        if index == cfg.hang_at_frame:
            log.error("fault.hang", frame_index=index)
            while True:
                time.sleep(3600)

    def _die(self) -> None:
        if self._cfg.exit_code >= 0:
            os._exit(self._cfg.exit_code)
        signum = getattr(signal, self._cfg.crash_signal or "SIGSEGV")
        # faulthandler would print a traceback for SIGSEGV/SIGABRT, as a real crash does.
        os.kill(os.getpid(), signum)
        time.sleep(60)  # a handled signal must not let the job carry on


def _synthetic_person(track_id: int, width: int, height: int) -> Person:
    x0, y0 = width * 0.1 * track_id, height * 0.1
    w, h = width * 0.2, height * 0.8
    keypoints = np.array(
        [(x0 + w / 2, y0, 1.0), (x0, y0 + h / 2, 1.0), (x0 + w, y0 + h / 2, 1.0), (x0 + w * 0.3, y0 + h, 1.0), (x0 + w * 0.7, y0 + h, 1.0)]
    )
    return Person(track_id=track_id, state="detected", confidence=1.0, bbox_xywh=(x0, y0, w, h), keypoints=keypoints)
