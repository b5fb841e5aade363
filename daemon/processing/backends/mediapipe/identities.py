"""Who is who: a track id per person, kept through crossings and short occlusions.

Norfair (tryolabs, BSD-3) does the bookkeeping: a constant-velocity Kalman filter per keypoint
of each person, greedy matching of this frame's poses to the predictions, and a grace period
(``max_missing_frames``) during which a person nobody sees is still predicted, so that someone
who reappears after an occlusion or a crossing gets their old id back. The distance is ours:
the mean distance between a pose's confident keypoints and the prediction, in body sizes, so
one threshold fits a child far away and an athlete filling the frame. A pose further than
``max_distance`` body sizes from every prediction starts a new track: an id is never stretched
onto someone elsewhere in the frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from daemon.processing.backends.mediapipe.landmarks import CONFIDENT_VISIBILITY, Pose

CONFIDENT = CONFIDENT_VISIBILITY  # keypoints below this neither steer the filter nor count in the distance


class IdentityTracker:
    def __init__(self, *, max_distance: float, max_missing_frames: int) -> None:
        from norfair import Tracker

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # norfair suggests a vectorised distance; ours is cheap enough
            self._tracker = Tracker(
                distance_function=_body_size_distance,
                distance_threshold=max_distance,
                hit_counter_max=max(1, max_missing_frames),
                initialization_delay=0,
                detection_threshold=CONFIDENT,
                past_detections_length=0,
            )

    def assign(self, poses: Sequence[Pose]) -> list[int]:
        """A track id for each pose, in order. Call once per frame, with no poses too."""
        from norfair import Detection

        detections = [Detection(points=pose.keypoints[:, :2], scores=pose.keypoints[:, 2], data=i) for i, pose in enumerate(poses)]
        self._tracker.update(detections=detections)
        ids = [0] * len(poses)
        for tracked in self._tracker.tracked_objects:
            detection = tracked.last_detection
            if tracked.id is not None and any(detection is d for d in detections):
                ids[detection.data] = int(tracked.id)
        return ids


def _body_size_distance(detection, tracked) -> float:
    points, scores = detection.points, detection.scores
    confident = (scores >= CONFIDENT) & (tracked.last_detection.scores >= CONFIDENT)
    if confident.sum() < 4:
        confident = np.ones(len(points), bool)
    visible = points[scores >= CONFIDENT] if (scores >= CONFIDENT).sum() >= 2 else points
    size = max(float(np.linalg.norm(visible.max(axis=0) - visible.min(axis=0))), 1.0)
    gaps = np.linalg.norm(points[confident] - tracked.estimate[confident], axis=1)
    return float(gaps.mean() / size)
