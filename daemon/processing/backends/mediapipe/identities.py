"""Who is who: a track id per person, kept through crossings, occlusions and short exits.

Norfair (tryolabs, BSD-3) does the frame-to-frame bookkeeping: a constant-velocity Kalman
filter per keypoint of each person and greedy matching of this frame's poses to the
predictions, by our distance (the mean gap between confident keypoints, in body sizes, so one
threshold fits a child far away and an athlete filling the frame).

A pose folded into the sliver of a person still visible behind someone (the landmark network
does that as they disappear) is not that person: neither norfair nor the re-identification below
gives it the id of a body that was more than ``MAX_SIZE_RATIO`` times its size a frame ago. It
gets an id of its own, which confirmation drops unless it lasts. Growth is measured against the
largest the id's body was lately, not its last sighting: a person seen in part while coming out
from behind someone keeps their id when seen whole, and a small person's id never passes to a
large one stepping in front. Someone seen only in part since they appeared (stepping into the
frame, or out from behind a person) has no earlier whole size: the network folds their pose into
the part it sees. An id seen in part within ``max_missing_frames`` (partly behind a larger body,
or reaching past the frame's edge) may therefore be re-identified with a larger pose
that holds everything its last sighting saw; a body seen only whole, in the open, never passes
its id to a larger one.

The Kalman prediction of someone unseen keeps their last velocity, which is wrong for anyone who
stopped, or turned back, while hidden or out of the frame. So a pose norfair cannot place is
offered to the people lost in the last ``max_missing_frames`` frames (or not claimed in this
one): it takes the id of the nearest one whose last sighting it could have reached since
(``REACH_PER_S``), else a new id. Only poses no live track claims are offered, so a lost id
never takes someone who is being tracked, and an id never passes to someone elsewhere in the frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from daemon.processing.backends.mediapipe.landmarks import CONFIDENT_VISIBILITY, Pose, confident_points
from daemon.processing.backends.mediapipe.people import box_area, box_overlap, keypoint_box

CONFIDENT = CONFIDENT_VISIBILITY  # keypoints below this neither steer the filter nor count in the distance
REACH_PER_S = 1.5  # body sizes an unseen person may move per second: a jog
# A body seen on the same keypoints is at most 1.5x smaller than a frame ago (more is keypoint
# noise no real body makes: the motion stage's identity guard uses the same bound), 1.5 a
# second more in |ln(size)| while unseen (half hidden, its visible part shrinks). It is at most
# 1.5x larger than the largest it was in the last max_missing frames, 0.75 a second more since
# then (walking towards the camera at 1.5 m/s from 3 m doubles a body in a second): a person
# coming out from behind someone grows back to their size, not past it. Rates are per second
# and turned into frames with the video's rate: per frame, a 15 fps video would halve them.
MAX_SIZE_RATIO = 1.5
SIZE_NOISE = float(np.log(MAX_SIZE_RATIO))
SHRINK_PER_S = 1.5
GROWTH_PER_S = 0.75
HOLD_MARGIN = 0.05  # of the body's size: keypoint jitter at the edge of a part seen before
COVERED = 0.3  # share of a body's box a larger body's box covers when it is partly behind that one


@dataclass
class _Sighting:
    points: np.ndarray
    scores: np.ndarray
    frame: int
    tracked: object  # norfair's TrackedObject that carries this id now
    largest: _Sighting | None = None  # its largest sighting in the last max_missing frames (None: this one)
    in_part_at: int | None = None  # the last frame it was seen in part: behind a larger body, or reaching past the frame's edge

    def biggest(self) -> _Sighting:
        return self.largest or self


class IdentityTracker:
    def __init__(self, *, max_distance: float, max_missing_frames: int, frame_size: tuple[int, int] | None = None,
                 fps: float = 30.0) -> None:
        from norfair import Tracker

        self._max_distance = max_distance
        self._reach_per_frame = REACH_PER_S / fps
        self._shrink_per_frame = SHRINK_PER_S / fps
        self._growth_per_frame = GROWTH_PER_S / fps
        self._max_missing = max(1, max_missing_frames)
        with _quiet_norfair():  # it suggests a vectorised distance; ours is cheap at a few people
            self._tracker = Tracker(
                distance_function=self._distance,
                distance_threshold=max_distance,
                hit_counter_max=self._max_missing,
                initialization_delay=0,
                detection_threshold=CONFIDENT,
                past_detections_length=0,
            )
        self._frame_size = frame_size  # (width, height): a body reaching past its edge is seen in part
        self._frame = 0
        self._public: dict[int, int] = {}  # norfair's id -> the id we publish
        self._seen: dict[int, _Sighting] = {}  # published id -> its last sighting
        self._next_id = 1

    def assign(self, poses: Sequence[Pose]) -> list[int]:
        """A track id for each pose, in order. Call once per frame, with no poses too."""
        from norfair import Detection

        self._frame += 1
        detections = [Detection(points=pose.keypoints[:, :2], scores=pose.keypoints[:, 2], data=i) for i, pose in enumerate(poses)]
        self._tracker.update(detections=detections)
        ids = [0] * len(poses)
        matched = [(t, t.last_detection) for t in self._tracker.tracked_objects if any(t.last_detection is d for d in detections)]
        # Tracks norfair already knew first, so their ids are taken before lost ones are offered.
        claimed: set[int] = set()
        in_part = [behind or self._cut_by_edge(pose) for behind, pose in zip(_behind_someone(poses), poses)]
        for tracked, detection in sorted(matched, key=lambda pair: pair[0].id not in self._public):
            public = self._public.get(tracked.id) or self._reidentify(detection, claimed) or self._new_id()
            claimed.add(public)
            self._public[tracked.id] = public
            self._seen[public] = self._sighting(detection, tracked, self._seen.get(public), in_part[detection.data])
            ids[detection.data] = public
        return ids

    def _sighting(self, detection, tracked, previous: _Sighting | None, in_part: bool) -> _Sighting:
        in_part_at = self._frame if in_part else previous.in_part_at if previous is not None else None
        sighting = _Sighting(detection.points, detection.scores, self._frame, tracked, in_part_at=in_part_at)
        if previous is not None:
            largest = previous.biggest()
            if self._frame - largest.frame > self._max_missing:
                largest = replace(previous, largest=None)  # too old to say what they look like now
            if _log_size_ratio(sighting.points, sighting.scores, largest.points, largest.scores) <= 0:
                sighting.largest = replace(largest, largest=None)  # not measurably larger: keep the largest
        return sighting

    def _distance(self, detection, tracked) -> float:
        """How far a pose is from a track's prediction, in body sizes; infinite for a body of
        a size that track's person cannot have now."""
        last = tracked.last_detection
        sighting = self._seen.get(self._public.get(tracked.id))
        if sighting is not None and not self._fits(detection, sighting):
            return float("inf")
        return _gap(detection.points, detection.scores, tracked.estimate, last.scores, size_of=(last.points, last.scores))

    def _fits(self, detection, sighting: _Sighting) -> bool:
        """Whether the pose's body can be the one last seen in ``sighting``, by size: not much
        smaller than then, not much larger than the largest it was lately."""
        shrunk = -_log_size_ratio(detection.points, detection.scores, sighting.points, sighting.scores)
        biggest = sighting.biggest()
        grown = _log_size_ratio(detection.points, detection.scores, biggest.points, biggest.scores)
        return (shrunk <= SIZE_NOISE + self._shrink_per_frame * (self._frame - sighting.frame - 1)
                and grown <= SIZE_NOISE + self._growth_per_frame * (self._frame - biggest.frame - 1))  # fmt: skip

    def _reidentify(self, detection, claimed: set[int]) -> int | None:
        """The id of the nearest person lost lately whose last sighting this pose could have
        reached. Lost includes "not claimed in this frame": norfair's prediction of someone seen
        last frame in part (coming out from behind a person) can miss them seen whole now."""
        best, best_distance = None, None
        for public, sighting in self._seen.items():
            unseen = self._frame - sighting.frame - 1
            if public in claimed or not 0 <= unseen <= self._max_missing:
                continue
            distance = _gap(detection.points, detection.scores, sighting.points, sighting.scores)
            if self._could_be(detection, sighting, unseen, distance) and (best is None or distance < best_distance):
                best, best_distance = public, distance
        if best is not None:
            # Norfair still predicts the old track; retire it so the id can never be on two people.
            self._seen[best].tracked.hit_counter = -1
        return best

    def _could_be(self, detection, sighting: _Sighting, unseen: int, distance: float) -> bool:
        """A body of a size they can have, ``distance`` (the keypoint gap) near enough to where
        they were; or, when they were seen in part lately, a body holding all that was seen of
        them (their keypoints were folded into that part, so neither size nor gap says anything)."""
        if self._lately_in_part(sighting) and _holds(detection.points, detection.scores, sighting):
            return True
        return distance <= self._max_distance + self._reach_per_frame * unseen and self._fits(detection, sighting)

    def _lately_in_part(self, sighting: _Sighting) -> bool:
        return sighting.in_part_at is not None and self._frame - sighting.in_part_at <= self._max_missing

    def _cut_by_edge(self, pose: Pose) -> bool:
        """The region the network looked at, or the keypoints it placed, reach past the frame's
        edge: part of the body may be outside (the network folds it into what it sees)."""
        if self._frame_size is None:
            return False
        reach = np.vstack([pose.keypoints[:, :2], pose.roi.box().reshape(2, 2)])
        return bool((reach < 0).any() or (reach > self._frame_size).any())

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


def _behind_someone(poses: Sequence[Pose]) -> list[bool]:
    """Per pose: whether a larger body covers at least ``COVERED`` of its box."""
    boxes = [keypoint_box(pose) for pose in poses]
    areas = [max(box_area(box), 1e-9) for box in boxes]
    return [any(areas[j] > areas[i] and box_overlap(boxes[i], boxes[j]) >= COVERED * areas[i] for j in range(len(boxes)) if j != i)
            for i in range(len(boxes))]  # fmt: skip


def _holds(points, scores, sighting: _Sighting) -> bool:
    """The pose's body holds everything ``sighting`` saw (the box of its confident keypoints,
    give or take ``HOLD_MARGIN`` of the body): someone seen in part, often folded into the part,
    then whole, by no growth rule."""
    low, high = _extent(points, scores)
    seen_low, seen_high = _extent(sighting.points, sighting.scores)
    margin = HOLD_MARGIN * float(np.max(high - low))
    return bool(np.all(seen_low >= low - margin) and np.all(seen_high <= high + margin))


def _extent(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    visible = confident_points(points, scores)
    return visible.min(axis=0), visible.max(axis=0)


def _log_size_ratio(points, scores, other_points, other_scores) -> float:
    """ln(size / other size), by the extent of the keypoints both poses see confidently (not all
    of them: half of a body going out of view is not a smaller body); 0 when too few to tell."""
    shared = (scores >= CONFIDENT) & (other_scores >= CONFIDENT)
    if shared.sum() < 4:
        return 0.0
    size, other = _size(points[shared], scores[shared]), _size(other_points[shared], other_scores[shared])
    return float(np.log(size / other)) if min(size, other) > 0 else 0.0


def _gap(points, scores, other_points, other_scores, size_of=None) -> float:
    """Mean gap between keypoints both sides see confidently, in body sizes. The size is the
    larger of the two poses': someone half out of the frame, or half hidden, is as large as
    they were, not as large as what is left of them."""
    confident = (scores >= CONFIDENT) & (other_scores >= CONFIDENT)
    if confident.sum() < 4:
        confident = np.ones(len(scores), bool)
    reference = size_of or (other_points, other_scores)
    size = max(_size(points, scores), _size(*reference), 1.0)
    return float(np.linalg.norm(points[confident] - other_points[confident], axis=1).mean() / size)


def _size(points: np.ndarray, scores: np.ndarray) -> float:
    low, high = _extent(points, scores)
    return float(np.linalg.norm(high - low))


class _quiet_norfair:
    """Norfair logs a performance hint through the root logger when given a scalar distance."""

    def __enter__(self) -> None:
        logging.disable(logging.WARNING)

    def __exit__(self, *exc) -> None:
        logging.disable(logging.NOTSET)
