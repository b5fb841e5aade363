"""Identity guard: a track that jumps further than a human body can move is two people.

A tracker can hand its track to somebody else (MediaPipe's single track jumps to another
pedestrian; any tracker can swap in a crowd). Gap filling would then interpolate between two
people and smoothing would blend them. The guard looks at each detection of a track against
the track's previous detection and calls it a *break* when, in the time between them,

- the body's centre (the mean of its keypoints) moved more than ``max_body_speed`` body sizes
  per second, or
- the body's size (the larger side of its keypoints' extent) changed faster than
  ``max_scale_rate`` (|ln(size ratio)| per second).

Why these bounds: the fastest sprinters run about 12.4 m/s, 6.4 body heights per second; the
default 10 leaves room for camera pans and limbs that change the keypoints' spread. A body
changes its apparent size by walking towards the camera or by changing pose; on the shared
running clips that stays under 2 per second, the default allows 5 (18 % per frame at 30 fps).
The keypoints, not the box, are measured: MediaPipe's box shrinks by half in one frame when the
legs go out of view, while the model still places every keypoint.

After a break the track continues under a NEW track id, one never used in this video, so an id
never stands for two people: the stage then neither fills the gap across the jump nor carries
filter state over it. Ids the backend hands out later that collide with an id the guard gave
are renamed the same way. Memory: a few numbers per backend track ever seen (the same order as
the per-track counters of the summary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from daemon.records import Person

STATE_DETECTED = "detected"


@dataclass(frozen=True)
class IdentityBounds:
    max_body_speed: float  # body sizes per second
    max_scale_rate: float  # |ln(size ratio)| per second
    min_dt_s: float  # one frame: timestamps that do not advance still count as one step


@dataclass
class _Body:
    centre: np.ndarray
    size: float
    timestamp_s: float


class IdentityGuard:
    """Maps the backend's track ids to output ids, opening a new id at every impossible jump."""

    def __init__(self, bounds: IdentityBounds) -> None:
        self.bounds = bounds
        self.breaks = 0
        self._output_id: dict[int, int] = {}  # backend id -> the output id it currently feeds
        self._last_body: dict[int, _Body] = {}  # backend id -> its last detected body
        self._used: set[int] = set()
        self.split_from: dict[int, int] = {}  # new output id -> the id it broke away from

    def relabel(self, people: list[Person], timestamp_s: float) -> list[Person]:
        """The frame's people under their output ids (new Person objects only where the id changes)."""
        relabelled = []
        for person in people:
            output_id = self._output_for(person.track_id)
            if person.state == STATE_DETECTED:
                output_id = self._check_jump(person, output_id, timestamp_s)
            relabelled.append(person if output_id == person.track_id else replace(person, track_id=output_id))
        return relabelled

    def _output_for(self, backend_id: int) -> int:
        output_id = self._output_id.get(backend_id)
        if output_id is None:
            output_id = backend_id if backend_id not in self._used else self._fresh_id()
            self._output_id[backend_id] = output_id
            self._used.add(output_id)
        return output_id

    def _check_jump(self, person: Person, output_id: int, timestamp_s: float) -> int:
        body = _body(person, timestamp_s)
        if body is None:
            return output_id
        last = self._last_body.get(person.track_id)
        self._last_body[person.track_id] = body
        if last is not None and self._impossible(last, body):
            self.breaks += 1
            new_id = self._fresh_id()
            self._used.add(new_id)
            self._output_id[person.track_id] = new_id
            self.split_from[new_id] = output_id
            return new_id
        return output_id

    def _impossible(self, before: _Body, after: _Body) -> bool:
        dt = max(after.timestamp_s - before.timestamp_s, self.bounds.min_dt_s)
        moved = float(np.linalg.norm(after.centre - before.centre)) / max(before.size, after.size)
        resized = abs(math.log(after.size / before.size))
        return moved > self.bounds.max_body_speed * dt or resized > self.bounds.max_scale_rate * dt

    def _fresh_id(self) -> int:
        return max(self._used, default=0) + 1


def _body(person: Person, timestamp_s: float) -> _Body | None:
    """Centre and size of a detection's keypoints; None when they cannot say (NaN, one point)."""
    points = np.asarray(person.keypoints, dtype=np.float64)[:, :2]
    if len(points) < 2 or not np.all(np.isfinite(points)):
        return None
    size = float(np.max(points.max(axis=0) - points.min(axis=0)))
    if not size > 0:
        return None
    return _Body(points.mean(axis=0), size, timestamp_s)


__all__ = ["IdentityBounds", "IdentityGuard"]
