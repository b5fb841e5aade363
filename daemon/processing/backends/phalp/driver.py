"""Drives PHALP one frame at a time, the way ``PHALP.track()`` does inside its loop, minus the loop.

``track()`` cannot be used by a daemon: it keeps every frame's results in memory, reads only
``.mp4`` through its IO manager, stops at 1300 frames or 10 s, shells out with unquoted paths and
swallows exceptions (reference §2-3, §8). This driver calls the same per-frame steps
(reference §2.2, §2.7) on frames from our decoder:

    get_detections -> run_additional_models -> get_human_features -> tracker.predict/update

and reads the confirmed tracks (§2.5). Memory is constant in video length: it clears the
tracker's per-frame cost log, keeps no per-frame lists, and holds back only the last
``n_init - 1`` frames. Holding back is what makes back-filling work: when a track is confirmed
(its ``n_init``-th consecutive match), PHALP adds it retroactively to the previous
``n_init - 1`` frames, so a frame is final only ``n_init - 1`` frames later.

The driver only handles numpy arrays and Python objects; models are behind the PHALP object.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daemon.processing.backends.phalp.convert import NonFiniteOutput, PersonConverter, TrackRecord
from daemon.processing.backends.phalp.geometry import PaddedSquare
from daemon.errors import ErrorCode, JobError
from daemon.records import Frame, FrameResult, Person

NO_SHOT_CHANGE = 0  # PHALP's shot flag; shot detection needs the whole video up front


@dataclass
class _HeldFrame:
    index: int
    timestamp_s: float
    processing_ms: float
    people: list[Person] = field(default_factory=list)

    def result(self) -> FrameResult:
        people = sorted(self.people, key=lambda person: person.track_id)
        return FrameResult(index=self.index, timestamp_s=self.timestamp_s, people=people, processing_ms=self.processing_ms)


class StreamingDriver:
    """One video through PHALP's tracker. Not thread-safe; ``start`` before each video.

    ``phalp`` is a PHALP tracker object (4D-Humans' ``HMR2_4dhuman`` or our subclass of it);
    ``oom_errors`` are the exception types that mean "out of (GPU) memory" and ``on_oom`` frees
    what can be freed before the job is failed with ``E_OUT_OF_MEMORY``.
    """

    def __init__(
        self,
        phalp: Any,
        converter: PersonConverter,
        *,
        oom_errors: tuple[type[BaseException], ...] = (MemoryError,),
        on_oom: Callable[[], None] = lambda: None,
    ) -> None:
        self._phalp = phalp
        self._converter = converter
        self._oom_errors = oom_errors
        self._on_oom = on_oom
        self._n_init = int(phalp.cfg.phalp.n_init)
        self._held: deque[_HeldFrame] = deque()
        self._time = 0  # PHALP's t_: frames processed in this video, 0-based

    @property
    def hold_back(self) -> int:
        """How many frames stay pending until later frames may no longer change them."""
        return self._n_init - 1

    def start(self) -> None:
        """Fresh tracker (ids restart at 1), eval mode, nothing pending."""
        self._phalp.setup_deepsort()
        self._phalp.eval()
        self._phalp.cfg.phalp.shot = NO_SHOT_CHANGE
        self._held.clear()
        self._time = 0

    def step(self, frame: Frame) -> list[FrameResult]:
        """Track one frame; return the frames that became final, oldest first."""
        started = time.perf_counter()
        held = _HeldFrame(index=frame.index, timestamp_s=frame.timestamp_s, processing_ms=0.0)
        self._held.append(held)
        try:
            self._track(frame)
            self._read_tracks()
        except self._oom_errors as exc:
            self._on_oom()
            raise JobError(ErrorCode.OUT_OF_MEMORY, f"out of memory in PHALP/HMR2: {exc}", stage="inference", frame_index=frame.index) from exc
        except NonFiniteOutput as exc:
            raise JobError(ErrorCode.BACKEND, f"{exc} (frame {frame.index})", stage="inference", frame_index=frame.index) from exc
        finally:
            self._time += 1
        held.processing_ms = (time.perf_counter() - started) * 1000.0
        return self._release(keep=self.hold_back)

    def finish(self) -> list[FrameResult]:
        """Everything still held: no later frame can back-fill into them any more."""
        return self._release(keep=0)

    def _track(self, frame: Frame) -> None:
        phalp, t = self._phalp, self._time
        image = frame.image
        square = PaddedSquare.of_frame(image.shape[0], image.shape[1])
        measurements = square.measurements()
        frame_name = f"frame_{frame.index:09d}"
        # additional_data must be a dict: get_detections calls .keys() on it (reference §2.7).
        bbox, bbox_pad, masks, scores, classes, gt_tids, gt_annots = phalp.get_detections(image, frame_name, t, {}, measurements)
        extra = phalp.run_additional_models(image, bbox, masks, scores, classes, frame_name, t, measurements, gt_tids, gt_annots)
        detections = phalp.get_human_features(
            image, masks, bbox, bbox_pad, scores, frame_name, classes, t, measurements, gt_tids, gt_annots, extra
        )
        _reject_invalid(detections)
        phalp.tracker.predict()
        phalp.tracker.update(detections, t, frame_name, NO_SHOT_CHANGE)
        # One cost matrix per frame, kept forever by Tracker.update (tracker.py:78); we never read it.
        phalp.tracker.tracked_cost.clear()

    def _read_tracks(self) -> None:
        """Read confirmed tracks as track() does; back-fill newly confirmed ones."""
        records: list[tuple[_HeldFrame, TrackRecord]] = []
        for track in self._phalp.tracker.tracks:
            if not track.is_confirmed():
                continue  # tentative tracks are never emitted
            history = track.track_data["history"]
            since = int(track.time_since_update)
            if since > 0:
                prediction = track.track_data["prediction"]
                record = TrackRecord(track.track_id, since, history[-1], prediction["pose"][-1], prediction["loca"][-1])
                records.append((self._held[-1], record))
                continue
            records.append((self._held[-1], TrackRecord(track.track_id, 0, history[-1])))
            if track.hits == self._n_init:
                # Confirmed on this frame after n_init consecutive matches: those earlier
                # matches are history[-2], history[-3], ... and belong to the held frames.
                for back in range(1, self._n_init):
                    records.append((self._held[-1 - back], TrackRecord(track.track_id, 0, history[-1 - back])))
        people = self._converter.convert([record for _, record in records])
        for (held, _), person in zip(records, people, strict=True):
            if person is not None:
                held.people.append(person)

    def _release(self, keep: int) -> list[FrameResult]:
        released = []
        while len(self._held) > keep:
            released.append(self._held.popleft().result())
        return released


def _reject_invalid(detections: list[Any]) -> None:
    """Stop before the tracker sees a camera it would crash on (log of a negative depth).

    Real weights are not known to produce this; a broken checkpoint or fp16 overflow can.
    """
    for detection in detections:
        camera = np.asarray(detection.detection_data["camera"], dtype=np.float64)
        pose = np.asarray(detection.detection_data["pose"], dtype=np.float64)
        if not (np.all(np.isfinite(camera)) and np.all(np.isfinite(pose)) and camera[2] > 0):
            raise NonFiniteOutput(f"HMR2 returned an unusable camera {camera.tolist()} (depth must be finite and > 0)")
