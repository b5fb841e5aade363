"""How steady the output is: mean keypoint acceleration, the figure smoothing must lower.

Per track, over every run of three consecutive frames in which it appears, the length of the
second difference ``p[t+1] - 2 p[t] + p[t-1]`` in pixels per frame squared, averaged over the
shared keypoints; then the mean over all such triples. Computed on every frame of the result
(not only the annotated ones), on the same keypoint names as OKS, for each view, so "smoothing
lowers acceleration by X % and costs Y OKS" comes from one command.
"""

from __future__ import annotations

import numpy as np

from daemon.evaluation import skeleton


def acceleration(frames: dict[int, tuple], keypoint_names: tuple[str, ...], names: tuple[str, ...]) -> tuple[float, int]:
    """(sum of per-triple mean accelerations, number of triples) for one view of one result."""
    tracks: dict[int, dict[int, np.ndarray]] = {}
    for index, people in frames.items():
        for person in people:
            tracks.setdefault(person.track_id, {})[index] = skeleton.select(person.keypoints, keypoint_names, names)[:, :2]
    total, count = 0.0, 0
    for positions in tracks.values():
        for index, here in positions.items():
            before, after = positions.get(index - 1), positions.get(index + 1)
            if before is None or after is None:
                continue
            total += float(np.linalg.norm(after - 2 * here + before, axis=1).mean())
            count += 1
    return total, count
