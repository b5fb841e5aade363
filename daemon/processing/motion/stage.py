"""The motion stage: per-frame backend output in, smoothed and gap-filled motion out.

Sits between the backend and the result writer, for every backend (issues 13, 19). Contract:

- exactly one output per input, in the same order, each with the input's index and timestamp;
- latency: an input comes out ``latency_frames`` pushes later, or at ``finish``: the larger of
  what gap filling needs (``max_gap_frames``) and what two-sided smoothing needs (its reach,
  3 sigma, in frames). With PHALP this adds to its own n_init - 1 frames of hold-back; at
  30 fps and the default 0.5 s that is 15 frames, half a second of video;
- memory is constant in video length: the look-ahead buffer, and per live track one
  remembered detection, the samples within the smoothing reach and two quality samples.

Order of work: each frame, as it arrives, first goes through the identity guard (a track that
jumped further than a body can move continues under a new id; a break the track's next
detection shows to be one bad detection is taken back, its people dropped from the buffer), then
gap filling (a
re-detection rewrites the missed frames still waiting in the buffer). Smoothing runs as frames
leave the buffer, in frame order: it fits each person from its track's samples on both sides,
the past ones kept, the future ones still in the buffer, so interpolated frames are smoothed
like detected ones. Predicted people in gaps too long to fill are the backend's guess and pass
unchanged.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Any

from daemon.config import MotionConfig
from daemon.processing.motion.gaps import GapFiller, PendingFrame
from daemon.processing.motion.identity import IdentityGuard
from daemon.processing.motion.interpolate import STATE_INTERPOLATED
from daemon.processing.motion.quality import MotionQuality
from daemon.processing.motion.settings import effective_fps, identity_bounds, max_gap_frames, smoothing_params
from daemon.processing.motion.smoothing import Sample, smooth_person
from daemon.records import FrameResult, Person

STATE_PREDICTED = "predicted"


class MotionStage:
    """Push every ``FrameResult`` of one video in order; write what ``push`` and ``finish`` return."""

    def __init__(self, settings: MotionConfig, nominal_fps: float) -> None:
        self.settings = settings
        self.max_gap_frames = max_gap_frames(settings.max_gap_s, nominal_fps)
        self._smoothing = smoothing_params(settings, nominal_fps) if settings.smoothing else None
        # Frames each side a fit looks at (timestamps weigh them; this bounds what is held).
        self.smoothing_frames = math.ceil(self._smoothing.reach_s() * effective_fps(nominal_fps)) if self._smoothing else 0
        self.latency_frames = max(self.max_gap_frames if settings.fill_gaps else 0, self.smoothing_frames)
        self._identity = IdentityGuard(identity_bounds(settings, nominal_fps))
        self._gaps = GapFiller(self.max_gap_frames) if settings.fill_gaps else None
        self._history: dict[int, deque[tuple[int, Sample]]] = {}  # track -> (position, sample) already released
        self._buffer: deque[PendingFrame] = deque()
        self._pushed = 0
        self.quality = MotionQuality()

    @property
    def buffered_frames(self) -> int:
        return len(self._buffer)

    @property
    def tracks_held(self) -> int:
        """Per-track state of any kind (smoothing samples, remembered detections, quality samples)."""
        remembered = self._gaps.tracks_remembered if self._gaps is not None else 0
        return max(len(self._history), remembered, self.quality.tracks_held)

    def push(self, result: FrameResult) -> list[FrameResult]:
        """Take one frame; return the frames now final (in order, possibly none)."""
        # A new list (the gap filler rewrites it, never the caller's), under ids that never
        # stand for two people: an impossible jump opens a new track before gaps are looked at.
        first_buffered = self._buffer[0].position if self._buffer else self._pushed
        people = self._identity.relabel(result.people, result.timestamp_s, self._pushed, first_buffered)
        self._drop_retracted()
        self._buffer.append(PendingFrame(self._pushed, replace(result, people=people)))
        self._pushed += 1
        if self._gaps is not None:
            self._gaps.observe(self._buffer)
        released = []
        while len(self._buffer) > self.latency_frames:
            released.append(self._release(self._buffer.popleft()))
        return released

    def _drop_retracted(self) -> None:
        """Detections the identity guard found to be the backend's mistakes leave the buffer:
        the frames they were in then show a gap, which the re-detection fills if it is short."""
        if self._identity.retracted:
            gone = set(self._identity.retracted)
            for pending in self._buffer:
                pending.result.people = [p for p in pending.result.people if p.track_id not in gone]
            self._identity.retracted.clear()

    def finish(self) -> list[FrameResult]:
        """The frames still held (end of video: no more re-detections can come)."""
        released = []
        while self._buffer:
            released.append(self._release(self._buffer.popleft()))
        return released

    def summary(self) -> dict[str, Any]:
        """The ``motion`` block of the result summary: what ran, and the quality figures."""
        return {
            "smoothing": self.settings.smoothing,
            "fill_gaps": self.settings.fill_gaps,
            "include_raw": self.settings.include_raw,
            "max_gap_frames": self.max_gap_frames,
            "smoothing_frames": self.smoothing_frames,
            "latency_frames": self.latency_frames,
            "identity_breaks": self._identity.breaks,
            **self.quality.to_json(split_from=self._identity.split_from),
        }

    def _release(self, pending: PendingFrame) -> FrameResult:
        """Finish the oldest frame; the buffer holds the frames after it."""
        future = self._future_samples(pending.position) if self._smoothing is not None else {}
        people = [self._finished_person(person, pending, future.get(person.track_id, [])) for person in pending.result.people]
        self._forget_history(pending.position)
        self.quality.end_frame(pending.position)
        return replace(pending.result, people=people)

    def _future_samples(self, position: int) -> dict[int, list[Sample]]:
        future: dict[int, list[Sample]] = {}
        for later in self._buffer:
            if later.position > position + self.smoothing_frames:
                break
            for person in later.result.people:
                if person.state != STATE_PREDICTED:
                    future.setdefault(person.track_id, []).append(Sample(later.result.timestamp_s, person))
        return future

    def _finished_person(self, person: Person, pending: PendingFrame, future: list[Sample]) -> Person:
        raw = person.raw if person.state == STATE_INTERPOLATED else person
        if self._smoothing is not None and person.state != STATE_PREDICTED:
            sample = Sample(pending.result.timestamp_s, person)
            past = self._history.setdefault(person.track_id, deque())
            # A filled frame is already a straight line between two detections: nothing to
            # smooth, and a curve fitted through it and the detections around it overshoots
            # the span of its two detections. It still serves its neighbours' fits.
            if person.state != STATE_INTERPOLATED:
                person = smooth_person(self._smoothing, [s for _, s in past] + [sample] + future, len(past))
            past.append((pending.position, sample))
            while past and past[0][0] <= pending.position - self.smoothing_frames:
                past.popleft()
        self.quality.observe(pending.position, person, raw)
        if not self.settings.include_raw and person.raw is not None:
            person = replace(person, raw=None)
        return person

    def _forget_history(self, position: int) -> None:
        """Tracks with no sample within reach any more (ended, or gone for long) are dropped."""
        for track_id in [t for t, past in self._history.items() if not past or past[-1][0] <= position - self.smoothing_frames]:
            del self._history[track_id]


__all__ = ["MotionStage"]
