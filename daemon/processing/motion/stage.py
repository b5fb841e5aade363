"""The motion stage: per-frame backend output in, smoothed and gap-filled motion out.

Sits between the backend and the result writer, for every backend (issue 13). Contract:

- exactly one output per input, in the same order, each with the input's index and timestamp;
- latency: an input comes out ``latency_frames`` pushes later (``max_gap_frames`` with gap
  filling on, 0 without), or at ``finish``. With PHALP this adds to its own n_init - 1 frames
  of hold-back; at 30 fps and the default 0.5 s that is 15 frames, half a second of video;
- memory is constant in video length: the look-ahead buffer, one remembered detection, one set
  of filters and two quality samples per live track.

Order of work: gap filling sees each frame as it arrives (a re-detection rewrites the missed
frames still waiting in the buffer); smoothing runs as frames leave the buffer, in frame order,
so interpolated frames flow through the same filters as detected ones. Predicted people in gaps
too long to fill are the backend's guess and pass unchanged; the track's filters restart at its
next detection, as they do at its birth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from daemon.config import MotionConfig
from daemon.processing.motion.gaps import GapFiller, PendingFrame
from daemon.processing.motion.identity import IdentityGuard
from daemon.processing.motion.interpolate import STATE_INTERPOLATED
from daemon.processing.motion.quality import MotionQuality
from daemon.processing.motion.settings import identity_bounds, max_gap_frames, smoothing_params
from daemon.processing.motion.smoothing import TrackSmoother
from daemon.records import FrameResult, Person

STATE_PREDICTED = "predicted"


class MotionStage:
    """Push every ``FrameResult`` of one video in order; write what ``push`` and ``finish`` return."""

    def __init__(self, settings: MotionConfig, nominal_fps: float, *, frame_height: int | None = None) -> None:
        """``frame_height`` in pixels converts the 2D ``beta`` from frame heights to pixels
        (None: the configured 2D beta is taken as per pixel)."""
        self.settings = settings
        self.max_gap_frames = max_gap_frames(settings.max_gap_s, nominal_fps)
        self.latency_frames = self.max_gap_frames if settings.fill_gaps else 0
        self._identity = IdentityGuard(identity_bounds(settings, nominal_fps))
        self._gaps = GapFiller(self.max_gap_frames) if settings.fill_gaps else None
        self._smoothing = smoothing_params(settings, nominal_fps, frame_height) if settings.smoothing else None
        self._smoothers: dict[int, TrackSmoother] = {}
        self._buffer: deque[PendingFrame] = deque()
        self._pushed = 0
        self.quality = MotionQuality()

    @property
    def buffered_frames(self) -> int:
        return len(self._buffer)

    @property
    def tracks_held(self) -> int:
        """Per-track state of any kind (filters, remembered detections, quality samples)."""
        remembered = self._gaps.tracks_remembered if self._gaps is not None else 0
        return max(len(self._smoothers), remembered, self.quality.tracks_held)

    def push(self, result: FrameResult) -> list[FrameResult]:
        """Take one frame; return the frames now final (in order, possibly none)."""
        # A new list (the gap filler rewrites it, never the caller's), under ids that never
        # stand for two people: an impossible jump opens a new track before gaps are looked at.
        people = self._identity.relabel(result.people, result.timestamp_s)
        self._buffer.append(PendingFrame(self._pushed, replace(result, people=people)))
        self._pushed += 1
        if self._gaps is not None:
            self._gaps.observe(self._buffer)
        released = []
        while len(self._buffer) > self.latency_frames:
            released.append(self._release(self._buffer.popleft()))
        return released

    def finish(self) -> list[FrameResult]:
        """The frames still held (end of video: no more re-detections can come)."""
        released = [self._release(pending) for pending in self._buffer]
        self._buffer.clear()
        return released

    def summary(self) -> dict[str, Any]:
        """The ``motion`` block of the result summary: what ran, and the quality figures."""
        return {
            "smoothing": self.settings.smoothing,
            "fill_gaps": self.settings.fill_gaps,
            "include_raw": self.settings.include_raw,
            "max_gap_frames": self.max_gap_frames,
            "latency_frames": self.latency_frames,
            "identity_breaks": self._identity.breaks,
            **self.quality.to_json(split_from=self._identity.split_from),
        }

    def _release(self, pending: PendingFrame) -> FrameResult:
        people = [self._finished_person(person, pending) for person in pending.result.people]
        for track_id in [t for t, s in self._smoothers.items() if s.position != pending.position]:
            del self._smoothers[track_id]  # missed (or only predicted) here: restart at the next detection
        self.quality.end_frame(pending.position)
        return replace(pending.result, people=people)

    def _finished_person(self, person: Person, pending: PendingFrame) -> Person:
        raw = person.raw if person.state == STATE_INTERPOLATED else person
        if self._smoothing is not None and person.state != STATE_PREDICTED:
            smoother = self._smoothers.get(person.track_id)
            if smoother is None or smoother.position != pending.position - 1:
                smoother = self._smoothers[person.track_id] = TrackSmoother(self._smoothing)
            person = smoother.smooth(person, pending.result.timestamp_s, pending.position)
        self.quality.observe(pending.position, person, raw)
        if not self.settings.include_raw and person.raw is not None:
            person = replace(person, raw=None)
        return person


__all__ = ["MotionStage"]
