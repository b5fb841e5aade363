"""Drives PHALP frame by frame, the way ``PHALP.track()`` does inside its loop, minus the loop.

``track()`` cannot be used by a daemon: it keeps every frame's results in memory, reads only
``.mp4`` through its IO manager, stops at 1300 frames or 10 s, shells out with unquoted paths and
swallows exceptions (reference §2-3, §8). This driver calls the same per-frame steps
(reference §2.2, §2.7) on frames from our decoder:

    get_detections -> run_additional_models -> get_human_features -> tracker.predict/update

and reads the confirmed tracks (§2.5). Memory is constant in video length: it clears the
tracker's per-frame cost log, keeps no per-frame lists, and holds only the window being filled
and the last ``n_init - 1`` tracked frames. Holding back is what makes back-filling work: when a track is confirmed
(its ``n_init``-th consecutive match), PHALP adds it retroactively to the previous
``n_init - 1`` frames, so a frame is final only ``n_init - 1`` frames later.

Perception runs ahead of tracking (``window.py``): frames are buffered into windows of
``batch_frames``; the detector and HMR 2.0 run once per window, batched, and the tracker then
consumes the window frame by frame, in order, exactly as it would have one frame at a time.
A window of 1 is the stock per-frame loop. With ``detect_every_n`` > 1 the detector (and so
HMR 2.0) runs on every n-th frame only; on the frames between the tracker only ages its tracks
(``Tracker.predict``), so confirmed people are reported from PHALP's prediction and a person
still being confirmed is not dropped (``update`` with no detections would delete it).

The driver only handles numpy arrays and Python objects; models are behind the PHALP object.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daemon.processing.backends.phalp.convert import NonFiniteOutput, PersonConverter, TrackRecord
from daemon.processing.backends.phalp.geometry import PaddedSquare
from daemon.processing.backends.phalp.window import (
    NO_ADDITIONAL_DATA,
    WindowMismatch,
    PerceivedFrame,
    crop_people,
    replaying_detector,
    replaying_features,
)
from daemon.errors import ErrorCode, JobError
from daemon.records import Frame, FrameResult, Person

NO_SHOT_CHANGE = 0  # PHALP's shot flag; shot detection needs the whole video up front


@dataclass
class _HeldFrame:
    index: int
    t: int  # PHALP's t_ of this frame: back-filled detections say which frame they came from
    timestamp_s: float
    processing_ms: float
    people: list[Person] = field(default_factory=list)

    def result(self) -> FrameResult:
        people = sorted(self.people, key=lambda person: person.track_id)
        return FrameResult(index=self.index, timestamp_s=self.timestamp_s, people=people, processing_ms=self.processing_ms)


class StreamingDriver:
    """One video through PHALP's tracker. Not thread-safe; ``start`` before each video.

    ``phalp`` is a PHALP tracker object (our subclass of 4D-Humans' ``HMR2_4dhuman``, or a fake)
    that also offers ``window.WindowModels``. ``batch_frames`` (K) frames are perceived at once:
    results come out up to K - 1 frames later than frame by frame, and at most K frames and
    their crops are in memory. ``oom_errors`` are the exception types that mean "out of (GPU)
    memory"; ``on_oom`` frees what can be freed before the job fails with ``E_OUT_OF_MEMORY``.
    """

    def __init__(
        self,
        phalp: Any,
        converter: PersonConverter,
        *,
        batch_frames: int = 1,
        detect_every_n: int = 1,
        oom_errors: tuple[type[BaseException], ...] = (MemoryError,),
        on_oom: Callable[[], None] = lambda: None,
    ) -> None:
        if batch_frames < 1 or detect_every_n < 1:
            raise ValueError(f"batch_frames and detect_every_n must be >= 1, got {batch_frames} and {detect_every_n}")
        self._phalp = phalp
        self._converter = converter
        self._batch_frames = batch_frames
        self._detect_every_n = detect_every_n
        self._oom_errors = oom_errors
        self._on_oom = on_oom
        self._n_init = int(phalp.cfg.phalp.n_init)
        self._window: list[Frame] = []
        self._held: deque[_HeldFrame] = deque()
        self._time = 0  # PHALP's t_ of the next frame: frames perceived in this video, 0-based

    @property
    def hold_back(self) -> int:
        """How many tracked frames stay pending until later frames may no longer change them:
        a track confirmed now back-fills its n_init - 1 earlier detections, which lie
        ``detect_every_n`` frames apart."""
        return (self._n_init - 1) * self._detect_every_n

    @property
    def buffered(self) -> int:
        """Frames in memory: waiting for their window, or tracked and held back."""
        return len(self._window) + len(self._held)

    def start(self) -> None:
        """Fresh tracker (ids restart at 1), eval mode, nothing pending."""
        self._phalp.setup_deepsort()
        self._phalp.eval()
        self._phalp.cfg.phalp.shot = NO_SHOT_CHANGE
        self._window.clear()
        self._held.clear()
        self._time = 0

    def step(self, frame: Frame) -> list[FrameResult]:
        """Buffer one frame; once the window is full, run it. Returns the frames that became final."""
        self._window.append(frame)
        if len(self._window) < self._batch_frames:
            return []
        return self._run_window()

    def finish(self) -> list[FrameResult]:
        """Run the partial last window, then release everything: nothing can back-fill any more."""
        released = self._run_window() if self._window else []
        return released + self._release(keep=0)

    def _run_window(self) -> list[FrameResult]:
        frames, self._window = self._window, []
        started = time.perf_counter()
        with self._failing_job_on(frames[0].index):
            perceived = self._perceive(frames)
        perception_ms = (time.perf_counter() - started) * 1000.0 / len(frames)
        for frame, seen in zip(frames, perceived, strict=True):
            started = time.perf_counter()
            held = _HeldFrame(index=frame.index, t=seen.t, timestamp_s=frame.timestamp_s, processing_ms=0.0)
            self._held.append(held)
            with self._failing_job_on(frame.index):
                self._track(seen)
                self._read_tracks()
            held.processing_ms = perception_ms + (time.perf_counter() - started) * 1000.0
        return self._release(keep=self.hold_back)

    @contextmanager
    def _failing_job_on(self, frame_index: int) -> Iterator[None]:
        try:
            yield
        except self._oom_errors as exc:
            self._on_oom()
            raise JobError(ErrorCode.OUT_OF_MEMORY, f"out of memory in PHALP/HMR2: {exc}", stage="inference", frame_index=frame_index) from exc
        except NonFiniteOutput as exc:
            raise JobError(ErrorCode.BACKEND, f"{exc} (frame {frame_index})", stage="inference", frame_index=frame_index) from exc
        except (JobError, WindowMismatch):
            raise  # already a report; a replay mismatch is posed's own bug and must stay one
        except Exception as exc:  # inside PHALP: name the frame being tracked, not the one that arrived
            if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
                raise  # the worker reports those
            raise tracker_failure(exc, frame_index) from exc

    def _perceive(self, frames: list[Frame]) -> list[PerceivedFrame]:
        """Detector over the window's images, then HMR 2.0 over all their crops: one batch each."""
        phalp = self._phalp
        perceived = [self._perceived_frame(frame) for frame in frames]
        to_detect = [seen for seen in perceived if seen.t % self._detect_every_n == 0]
        outputs = phalp.detect_window([seen.image for seen in to_detect])
        for seen, output in zip(to_detect, outputs, strict=True):
            with replaying_detector(phalp, seen.image, output):
                seen.detections = phalp.get_detections(seen.image, seen.frame_name, seen.t, NO_ADDITIONAL_DATA, seen.measurements)
            bbox, _, masks, scores, classes, gt_tids, gt_annots = seen.detections
            seen.extra = phalp.run_additional_models(seen.image, bbox, masks, scores, classes, seen.frame_name, seen.t, seen.measurements, gt_tids, gt_annots)
            seen.crops = crop_people(phalp, seen)
        features = phalp.features_window([[crop[0] for crop in seen.crops] for seen in to_detect])
        for seen, frame_features in zip(to_detect, features, strict=True):
            seen.features = frame_features
        return perceived

    def _perceived_frame(self, frame: Frame) -> PerceivedFrame:
        image = frame.image
        t, self._time = self._time, self._time + 1
        measurements = PaddedSquare.of_frame(image.shape[0], image.shape[1]).measurements()
        return PerceivedFrame(t=t, frame_name=f"frame_{frame.index:09d}", image=image, measurements=measurements)

    def _track(self, seen: PerceivedFrame) -> None:
        phalp, t = self._phalp, seen.t
        if not seen.detected:
            phalp.tracker.predict()  # ages every track; update() without detections would delete tentative ones
            return
        bbox, bbox_pad, masks, scores, classes, gt_tids, gt_annots = seen.detections
        with replaying_features(phalp, seen):
            detections = phalp.get_human_features(
                seen.image, masks, bbox, bbox_pad, scores, seen.frame_name, classes, t, seen.measurements, gt_tids, gt_annots, seen.extra
            )
        _reject_invalid(detections)
        phalp.tracker.predict()
        phalp.tracker.update(detections, t, seen.frame_name, NO_SHOT_CHANGE)
        # One cost matrix per frame, kept forever by Tracker.update (tracker.py:78); we never read it.
        phalp.tracker.tracked_cost.clear()

    def _read_tracks(self) -> None:
        """Read confirmed tracks as track() does; back-fill newly confirmed ones."""
        current = self._held[-1]
        records: list[tuple[_HeldFrame, TrackRecord]] = []
        for track in self._phalp.tracker.tracks:
            if not track.is_confirmed():
                continue  # tentative tracks are never emitted
            history = track.track_data["history"]
            since = int(track.time_since_update)
            if since > 0:
                prediction = track.track_data["prediction"]
                record = TrackRecord(track.track_id, since, history[-1], prediction["pose"][-1], prediction["loca"][-1])
                records.append((current, record))
                continue
            records.append((current, TrackRecord(track.track_id, 0, history[-1])))
            if track.hits == self._n_init:
                # Confirmed on this frame after n_init consecutive matches: those earlier
                # matches are history[-2], history[-3], ...; each names its frame's t_.
                for back in range(1, self._n_init):
                    detection = history[-1 - back]
                    records.append((self._held_at(int(detection["time"])), TrackRecord(track.track_id, 0, detection)))
        people = self._converter.convert([record for _, record in records])
        for (held, _), person in zip(records, people, strict=True):
            if person is not None:
                held.people.append(person)

    def _held_at(self, t: int) -> _HeldFrame:
        for held in reversed(self._held):
            if held.t == t:
                return held
        raise RuntimeError(f"back-fill into frame t={t}, which is no longer held (hold_back {self.hold_back})")

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


def tracker_failure(exc: Exception, frame_index: int) -> JobError:
    """An exception from inside PHALP (its pose predictor's ``predict_next`` crashes on short
    tracks upstream) as an ``E_BACKEND`` report naming the frame and the function that raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].name} ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else "PHALP"
    return JobError(
        ErrorCode.BACKEND,
        f"PHALP failed on frame {frame_index} in {where}: {type(exc).__name__}: {exc}",
        stage="inference",
        frame_index=frame_index,
        details={"function": frames[-1].name if frames else None,
                 "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])},
    )
