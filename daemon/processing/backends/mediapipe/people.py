"""One frame's people: where to look, which looks found a person, and who is a duplicate.

Each frame the landmark network looks (1) where every person of the previous frame should be
now (the region their own landmarks point to, as BlazePose tracks) and (2) around the person
detector's new finds whose face is nobody's followed already (and, when a find's own region
shows nobody, below its face). Looks that found a person are then thinned: two looks that
landed on the same body (two regions drifting onto one person in a crossing) keep the more
confident pose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daemon.processing.backends.mediapipe.blazepose import MIRRORED
from daemon.processing.backends.mediapipe.detector import Detection
from daemon.processing.backends.mediapipe.landmarks import CONFIDENT_VISIBILITY, Pose
from daemon.processing.backends.mediapipe.roi import Roi

FACE_POINTS = 11  # BlazePose's nose, eyes, ears and mouth come first
SAME_BODY_DISTANCE = 0.15  # two poses whose keypoints are this close (in body sizes) are one person
# A person fills most of the region built around them (their size decides the region's), from
# 0.65 to 0.8 on real people; a pose crumpled into a quarter of it is the network seeing a
# body where there is none.
MIN_REGION_FILL = 0.4
PART_INSIDE = 0.7  # a pose this much inside a person twice its size is a part of that person
# A hand, a phone or a bag can be read as a small whole person standing on someone's body. On
# the public stills every pose whose confident points lay mostly on the body pixels of a person
# over 2.5x its size was such a phantom (OKS <= 0.16, 5 of 5). A real person that much smaller
# is farther away: where they overlap a nearer body they are hidden, so what is seen of them is
# not on it.
ON_BODY_SHARE = 0.5
ON_BODY_SIZE_RATIO = 2.5


# Where a find's second look goes, in widths of its face box: an upright square centred this far
# below the face and this wide. On the public stills the regions the landmark network settles on
# are centred a median 2.0 face widths below the face; 8 widths hold the head, trunk and lap of
# someone seated or crouched (a standing body's region is ~14), and the pose found there
# points to the whole body's region in the next frame.
BODY_BELOW_FACE = 2.0
BODY_REGION_FACES = 8.0


@dataclass(frozen=True)
class Look:
    """A region for the landmark network; for a new find, also its face box, below which a
    second look goes when the first shows nobody (what it shows counts only with its head in
    that box)."""

    region: Roi
    face: np.ndarray | None = None  # the find's face box (x0, y0, x1, y1); None for a tracked person

    @property
    def fallback(self) -> Roi | None:
        return None if self.face is None else region_below_face(self.face)


def region_below_face(face: np.ndarray) -> Roi:
    """An upright region hung below a face box (x0, y0, x1, y1). A find's own region is built on
    the detector's guess of the hips, which misses people seated (a wheelchair), crouched, cut by
    the frame's edge or hidden below the waist; their face is still found, and so is their body
    when the network is shown what is below the face."""
    x0, y0, x1, y1 = face
    width = x1 - x0
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2 + BODY_BELOW_FACE * width])
    return Roi(centre=centre, size=BODY_REGION_FACES * width, rotation=0.0)


def regions_to_look(tracked: Sequence[Pose], found: Sequence[Detection], limit: int) -> list[Look]:
    """Tracked people's next regions first, then new finds by score, at most ``limit`` in all;
    a find's look falls back to the region below its face.

    The detector finds faces (its box is around the head, with the body's alignment points): a
    find is someone already followed when a tracked pose's head is in its box. Regions are no
    test: in a crowd a neighbour's region covers most of a person's, so a person lost there
    would never be looked for again."""
    looks = [Look(pose.next_roi) for pose in tracked][:limit]
    heads = [_head(pose) for pose in tracked]
    for detection in sorted(found, key=lambda d: -d.score):
        if len(looks) >= limit:
            break
        if any(_in_box(head, detection.box) for head in heads):
            continue
        looks.append(Look(Roi.from_alignment(detection.keypoints[0], detection.keypoints[1]), face=detection.box))
        x0, y0, x1, y1 = detection.box
        heads.append(((x0 + x1) / 2, (y0 + y1) / 2))  # two finds of one face are one look
    return looks


def has_face_in(pose: Pose, box: np.ndarray) -> bool:
    """The pose's head is in ``box``: it is the person whose face the detector found there, not a
    neighbour or a body read into someone's legs below it."""
    return _in_box(_head(pose), box)


def _in_box(point: tuple[float, float], box: np.ndarray) -> bool:
    x, y = point
    return bool(box[0] <= x <= box[2] and box[1] <= y <= box[3])


def _head(pose: Pose) -> tuple[float, float]:
    """The middle of the face landmarks (nose, eyes, ears, mouth: BlazePose's first 11)."""
    x, y = pose.keypoints[:FACE_POINTS, :2].mean(axis=0)
    return float(x), float(y)


def is_body(pose: Pose) -> bool:
    return body_size(pose) >= MIN_REGION_FILL * pose.roi.size


def distinct_people(poses: Sequence[Pose], limit: int, *, tracked: Sequence[bool] = ()) -> list[Pose]:
    """One pose per body, at most ``limit`` bodies; no pose that is only a small part of another
    person (a look that landed on someone's legs). People already tracked (``tracked[i]``) come
    first, then the most confident: a new find never displaces someone being followed, so with
    ``limit`` 1 the person followed stays the one published, as MediaPipe's own graph did."""
    following = list(tracked) + [False] * (len(poses) - len(tracked))
    order = sorted(range(len(poses)), key=lambda i: (not following[i], -pose_score(poses[i])))
    kept: list[Pose] = []
    for index in order:
        if all(body_distance(poses[index], other) > SAME_BODY_DISTANCE for other in kept):
            kept.append(poses[index])
    boxes = [keypoint_box(pose) for pose in kept]
    whole = [pose for pose, box in zip(kept, boxes) if not any(_is_part_of(box, other) for other in boxes if other is not box)]
    return [pose for pose in whole if not any(lies_on(pose, other) for other in whole if other is not pose)][:limit]


def keypoint_box(pose: Pose) -> np.ndarray:
    """(x0, y0, x1, y1) around the pose's confident keypoints."""
    points = pose.confident_points()
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _is_part_of(box: np.ndarray, other: np.ndarray) -> bool:
    """``box`` lies mostly inside ``other``, which is more than twice its area."""
    area = max(box_area(box), 1e-9)
    return box_overlap(box, other) / area > PART_INSIDE and box_area(other) > 2 * area


def lies_on(pose: Pose, other: Pose) -> bool:
    """``pose`` stands on the body of ``other``, a person over 2.5x its size: most of its confident
    points are on body pixels of ``other``'s region."""
    if body_size(other) <= ON_BODY_SIZE_RATIO * body_size(pose):
        return False
    return float(other.on_body(pose.confident_points()).mean()) >= ON_BODY_SHARE


def box_area(box: np.ndarray) -> float:
    """Area of an (x0, y0, x1, y1) box."""
    return float((box[2] - box[0]) * (box[3] - box[1]))


def box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Area two (x0, y0, x1, y1) boxes share."""
    return float(np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0.0, None)))


def pose_score(pose: Pose) -> float:
    return pose.presence * float(pose.keypoints[:, 2].mean())


def body_distance(a: Pose, b: Pose) -> float:
    """Mean distance between two poses' keypoints that both see, in the larger body's size;
    the nearer of ``b`` as read and ``b`` mirrored."""
    size = max(body_size(a), body_size(b), 1.0)
    return min(_keypoint_gap(a.keypoints, b.keypoints), _keypoint_gap(a.keypoints, b.keypoints[list(MIRRORED)])) / size


def _keypoint_gap(a: np.ndarray, b: np.ndarray) -> float:
    both = (a[:, 2] >= CONFIDENT_VISIBILITY) & (b[:, 2] >= CONFIDENT_VISIBILITY)
    if both.sum() < 4:
        both = np.ones(len(a), bool)
    return float(np.linalg.norm(a[both, :2] - b[both, :2], axis=1).mean())


def body_size(pose: Pose) -> float:
    """The diagonal of the box around the pose's confident keypoints, pixels."""
    box = keypoint_box(pose)
    return float(np.hypot(box[2] - box[0], box[3] - box[1]))
