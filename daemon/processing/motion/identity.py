"""Identity guard: a track that jumps further than a human body can move is two people.

A tracker can hand its track to somebody else (MediaPipe's single track jumps to another
pedestrian; any tracker can swap in a crowd). Gap filling would then interpolate between two
people and smoothing would blend them. The guard looks at each detection of a track against
the track's previous detection and calls it a *break* when, in the time between them,

- the body's centre (the mean of its keypoints) moved more than ``max_body_speed`` body sizes
  per second (the larger of the two bodies as seen, not the part both detections see), or
- the body's size (the larger side of its keypoints' extent) changed by more than a factor
  of 1.5 (keypoint noise: a small or half-hidden body's keypoints flail by up to ~1.4x from one
  frame to the next) plus ``max_scale_rate`` (|ln(size ratio)| per second) of real change.

A body may grow back, though: someone coming out from behind another person is seen in part
(a body a third of their size) and then whole again. Growth that fits the largest the track's
body was last seen at, within ``LARGEST_FOR_S`` seconds (a sighting within ``SAME_SIZE`` of
that size renews it), by the same bounds, is no break. Nor is a body
*coming into view*: someone who stepped out from behind another person has been seen only in
part since they appeared, folded by the network into what it saw, so there is no earlier whole
size to grow back to. When more of the body is seen now and everything seen before lies within
it (its keypoints' box, plus ``INSIDE_MARGIN`` of its size), the track keeps its id: a different
person would have to stand exactly where the part was, and the backend's tracker has already
bounded that body's size against the track's.

Both are measured on the keypoints the backend marks visible (confidence >= 0.5) in both
detections, the same ones on each side: a keypoint guessed behind an occluder, or one that
comes into view, must not look like the body moving. With fewer than 4 such keypoints the
detections cannot say, and the track keeps its id.

Why these bounds: the fastest sprinters run about 12.4 m/s, 6.4 body heights per second; the
default 10 leaves room for camera pans and limbs that change the keypoints' spread. A body
changes its apparent size by coming towards the camera: running at 6 m/s 3 m away is 2 per
second, the default. A jump to a body of half or twice the size in one frame is caught.
The keypoints, not the box, are measured: a box shrinks by half in one frame when the legs go
out of view.

After a break the track continues under a NEW track id, one never used in this video, so an id
never stands for two people: the stage then neither fills the gap across the jump nor carries
filter state over it.

One bad detection is not another person. As someone disappears behind a nearer person, the
backend can fold their whole pose into the sliver still visible: a body a third of its size for
a frame, then the real one again. So a break is first a *suspect*: if the track's next
detection could be the body from before the break, and not the one after it, the detections
under the new id were the backend's mistake. The track then keeps its old id, and the stage
drops those detections from its look-ahead buffer. This is undone only while all of them are
still in that buffer. After that, the break stands.

Nor is a bad first sighting: a person stepping into the frame, or out from behind someone, is
first seen in part and folded into it, and where they move far between frames (a low frame
rate, a fast pan) the whole body no longer holds that part. When the track before a break is
only its first ``YOUNG_SIGHTINGS`` detections, all still in the look-ahead buffer, those are
dropped as the backend's misreading and the body goes on under a fresh id with no break: a
person's first frame or two are worth less than an id that changes under them.

Ids the backend hands out later that collide with an id the guard gave
are renamed the same way. Memory: the last detection's keypoints per track seen in the last
``FORGET_AFTER_S`` seconds, two ids per backend track ever seen and two numbers per output id
(the same order as the per-track counters of the summary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from daemon.records import Person

STATE_DETECTED = "detected"
VISIBLE = 0.5  # keypoint confidence from which a keypoint counts as seen
MIN_SHARED_KEYPOINTS = 4  # fewer keypoints seen in both detections say nothing about the body
SIZE_NOISE = math.log(1.5)  # |ln(size ratio)| allowed between any two detections, however close
FORGET_AFTER_S = 10.0  # at 10 body sizes/s nothing this old can be an impossible jump any more
# How long a track's largest size stays the size it may grow back to. The backend gives someone
# unseen for up to ``backend.mediapipe.max_missing_s`` (1 s by default) their id back, and their
# first sightings after that can be a part of them (folded into what is in view), so the size
# they grow back to outlives that second by half a second.
LARGEST_FOR_S = 1.5
# A detection within this much of the largest size (|ln(size ratio)|) is the body at that size
# seen again: it becomes the largest, so the size is as old as its last sighting, not its first.
SAME_SIZE = 0.1
INSIDE_MARGIN = 0.05  # of the body's size: keypoint jitter at the edge of the part seen before
YOUNG_SIGHTINGS = 2  # a track's first detections that a break may drop instead of splitting


@dataclass(frozen=True)
class IdentityBounds:
    max_body_speed: float  # body sizes per second
    max_scale_rate: float  # |ln(size ratio)| per second
    min_dt_s: float  # one frame: timestamps that do not advance still count as one step


@dataclass
class _Detection:
    keypoints: np.ndarray  # (K, 3) x, y, confidence
    timestamp_s: float
    position: int  # frames pushed before it


@dataclass
class _Suspect:
    """A break not yet believed: the id before it, its last detection, and what came since."""

    old_id: int
    before: _Detection
    new_id: int
    positions: list[int]  # the detections under new_id so far


class IdentityGuard:
    """Maps the backend's track ids to output ids, opening a new id at every impossible jump."""

    def __init__(self, bounds: IdentityBounds) -> None:
        self.bounds = bounds
        self.breaks = 0
        self._output_id: dict[int, int] = {}  # backend id -> the output id it currently feeds
        self._last: dict[int, _Detection] = {}  # backend id -> its last detection
        self._largest: dict[int, _Detection] = {}  # backend id -> its largest detection lately
        self._used: set[int] = set()
        self._suspects: dict[int, _Suspect] = {}  # backend id -> its break not yet believed
        self.split_from: dict[int, int] = {}  # new output id -> the id it broke away from
        self.retracted: list[int] = []  # output ids found to be the backend's mistakes: drop them wherever buffered
        self._first_sightings: dict[int, tuple[int, int]] = {}  # output id -> (detections up to 3, first position)
        self._first_buffered = 0

    def relabel(self, people: list[Person], timestamp_s: float, position: int = 0, first_buffered: int = 0) -> list[Person]:
        """The frame's people under their output ids (new Person objects only where the id
        changes). ``position`` counts the frames pushed before this one; ``first_buffered`` is the
        oldest position still in the caller's buffer. Output ids found since to be mistakes are
        added to ``retracted``: the caller drops their people from its buffer."""
        for backend_id in [b for b, suspect in self._suspects.items() if min(suspect.positions) < first_buffered]:
            del self._suspects[backend_id]  # out of the buffer: those breaks stand
        self._first_buffered = first_buffered
        relabelled = []
        for person in people:
            output_id = self._output_for(person.track_id)
            if person.state == STATE_DETECTED:
                detection = _Detection(np.asarray(person.keypoints, dtype=np.float64), timestamp_s, position)
                output_id = self._check_jump(person.track_id, detection, output_id)
                self._count_sighting(output_id, position)
            relabelled.append(person if output_id == person.track_id else replace(person, track_id=output_id))
        return relabelled

    def _output_for(self, backend_id: int) -> int:
        output_id = self._output_id.get(backend_id)
        if output_id is None:
            output_id = backend_id if backend_id not in self._used else self._fresh_id()
            self._output_id[backend_id] = output_id
            self._used.add(output_id)
        return output_id

    def _check_jump(self, backend_id: int, detection: _Detection, output_id: int) -> int:
        last, largest = self._last.get(backend_id), self._largest.get(backend_id)
        self._last[backend_id] = detection
        self._forget_older_than(detection.timestamp_s - FORGET_AFTER_S)
        suspect = self._suspects.pop(backend_id, None)
        jump = last is not None and self._impossible(last, detection) and not self._grows_back(largest, last, detection)
        if jump and suspect is not None and not self._impossible(suspect.before, detection):
            return self._undo(backend_id, suspect)
        if not jump or _comes_into_view(last, detection):
            self._remember_largest(backend_id, largest, detection)
            if suspect is not None:  # keeps following the body after the break
                suspect.positions.append(detection.position)
                self._suspects[backend_id] = suspect
            return output_id
        self._largest[backend_id] = detection  # someone else from here on
        new_id = self._fresh_id()
        self._used.add(new_id)
        self._output_id[backend_id] = new_id
        if self._only_a_first_sighting(output_id):
            self.retracted.append(output_id)  # the misread start goes; the body goes on, unbroken
            self._carry_break(backend_id, output_id, new_id, suspect, detection)
            return new_id
        self.breaks += 1
        self.split_from[new_id] = output_id
        self._suspects[backend_id] = _Suspect(output_id, last, new_id, [detection.position])
        return new_id

    def _carry_break(self, backend_id: int, dropped: int, new_id: int, suspect: _Suspect | None, detection: _Detection) -> None:
        """A dropped start that began at a break (its id split from another): the break now
        leads to ``new_id``, and may still be taken back while its detections are buffered."""
        if dropped in self.split_from:
            self.split_from[new_id] = self.split_from.pop(dropped)
        if suspect is not None and suspect.new_id == dropped:
            self._suspects[backend_id] = _Suspect(suspect.old_id, suspect.before, new_id, [detection.position])

    def _count_sighting(self, output_id: int, position: int) -> None:
        count, first = self._first_sightings.get(output_id, (0, position))
        self._first_sightings[output_id] = (min(count + 1, YOUNG_SIGHTINGS + 1), first)

    def _only_a_first_sighting(self, output_id: int) -> bool:
        """``output_id`` has no more than ``YOUNG_SIGHTINGS`` detections, all still buffered."""
        count, first = self._first_sightings.get(output_id, (0, -1))
        return 0 < count <= YOUNG_SIGHTINGS and first >= self._first_buffered

    def _undo(self, backend_id: int, suspect: _Suspect) -> int:
        """The detections since the break were mistakes: retract their id (used for nothing
        else: every break takes a fresh one), go on under the old id."""
        self.breaks -= 1
        del self.split_from[suspect.new_id]
        self.retracted.append(suspect.new_id)
        self._output_id[backend_id] = suspect.old_id
        return suspect.old_id

    def _impossible(self, before: _Detection, after: _Detection) -> bool:
        change = self._change(before, after)
        if change is None:
            return False
        moved, resized, dt = change
        return moved > self.bounds.max_body_speed * dt or abs(resized) > SIZE_NOISE + self.bounds.max_scale_rate * dt

    def _grows_back(self, largest: _Detection | None, last: _Detection, after: _Detection) -> bool:
        """The jump from ``last`` is growth only, and to a size the body had lately."""
        if largest is None or largest is last or after.timestamp_s - largest.timestamp_s > LARGEST_FOR_S:
            return False
        change = self._change(last, after)
        if change is None or change[1] <= 0:
            return False
        moved, _, dt = change
        return moved <= self.bounds.max_body_speed * dt and not self._impossible(largest, after)

    def _remember_largest(self, backend_id: int, largest: _Detection | None, detection: _Detection) -> None:
        stale = largest is None or detection.timestamp_s - largest.timestamp_s > LARGEST_FOR_S
        change = None if stale else self._change(largest, detection)
        if stale or (change is not None and change[1] >= -SAME_SIZE):
            self._largest[backend_id] = detection

    def _change(self, before: _Detection, after: _Detection) -> tuple[float, float, float] | None:
        """(body sizes the centre moved, ln(size after / size before), seconds between) over the
        keypoints seen in both; None when too few. The distance is counted in the larger of the
        two bodies as each is seen (all its visible keypoints), not in the part both see: someone
        half out of the frame or half hidden is as large as they were, and in a pan the part
        seen in both can be a pair of legs a few dozen pixels tall, which the camera alone
        sweeps past in a frame."""
        bodies = _bodies(before.keypoints, after.keypoints)
        if bodies is None:
            return None
        (centre_before, size_before), (centre_after, size_after) = bodies
        dt = max(after.timestamp_s - before.timestamp_s, self.bounds.min_dt_s)
        body = max(size_before, size_after, _seen_size(before.keypoints), _seen_size(after.keypoints))
        moved = float(np.linalg.norm(centre_after - centre_before)) / body
        return moved, math.log(size_after / size_before), dt

    def _forget_older_than(self, timestamp_s: float) -> None:
        for backend_id in [b for b, d in self._last.items() if d.timestamp_s < timestamp_s]:
            del self._last[backend_id]
            self._largest.pop(backend_id, None)

    def _fresh_id(self) -> int:
        return max(self._used, default=0) + 1


def _comes_into_view(before: _Detection, after: _Detection) -> bool:
    """The body seen in part before is seen more fully now, soon after."""
    return after.timestamp_s - before.timestamp_s <= LARGEST_FOR_S and seen_more_of(before.keypoints, after.keypoints)


def seen_more_of(before: np.ndarray, after: np.ndarray) -> bool:
    """More of a body is seen in ``after`` than in ``before`` ((K, 3) keypoints): more keypoints,
    over an area more than the size noise larger (1.5x each way; not a standing body with a
    keypoint or two more in view), and all that was seen before lies within it: a part of the
    body, then more of it."""
    seen_before, seen_after = before[:, 2] >= VISIBLE, after[:, 2] >= VISIBLE
    if before.shape != after.shape or not MIN_SHARED_KEYPOINTS <= seen_before.sum() < seen_after.sum():
        return False
    low, high = _extent(before[seen_before, :2])
    new_low, new_high = _extent(after[seen_after, :2])
    if np.prod(new_high - new_low) <= math.exp(2 * SIZE_NOISE) * np.prod(high - low):
        return False
    margin = INSIDE_MARGIN * float(np.max(new_high - new_low))
    return bool(np.all(low >= new_low - margin) and np.all(high <= new_high + margin))


def _extent(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points.min(axis=0), points.max(axis=0)


def _span(points: np.ndarray) -> float:
    """The larger side of the extent of (N, 2) points: a body's size."""
    low, high = _extent(points)
    return float(np.max(high - low))


def _seen(keypoints: np.ndarray) -> np.ndarray:
    """Which (K, 3) keypoints are seen: visible, at finite coordinates."""
    return (keypoints[:, 2] >= VISIBLE) & np.all(np.isfinite(keypoints[:, :2]), axis=1)


def _seen_size(keypoints: np.ndarray) -> float:
    """The size of a detection's seen keypoints; 0 with none."""
    seen = _seen(keypoints)
    return _span(keypoints[seen, :2]) if seen.any() else 0.0


def _bodies(before: np.ndarray, after: np.ndarray) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float]] | None:
    """(centre, size) of both detections over the keypoints seen in both; None when too few."""
    if before.shape != after.shape or before.ndim != 2 or before.shape[1] < 3:
        return None
    shared = _seen(before) & _seen(after)
    if np.count_nonzero(shared) < MIN_SHARED_KEYPOINTS:
        return None
    bodies = []
    for keypoints in (before, after):
        points = keypoints[shared, :2]
        size = _span(points)
        if not size > 0:
            return None
        bodies.append((points.mean(axis=0), size))
    return bodies[0], bodies[1]


__all__ = ["IdentityBounds", "IdentityGuard", "seen_more_of"]
