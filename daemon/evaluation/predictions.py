"""A published result as evaluation sees it: per frame, the people with their keypoints.

Two views of the same result: ``smoothed`` is what consumers get (the main fields, after the
motion stage); ``raw`` is the backend's own output: ``person["raw"]`` where the motion stage
changed a person and ``motion.include_raw`` kept the original, else the main fields (unchanged),
and without the people the motion stage invented (``state == "interpolated"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daemon.errors import EvaluationError
from daemon.publishing.reader import ResultFileError, open_result

VIEWS = ("smoothed", "raw")


@dataclass(frozen=True)
class PredictedPerson:
    track_id: int
    state: str
    confidence: float
    keypoints: np.ndarray  # (K, 3) x, y, confidence in Predictions.keypoint_names order


@dataclass(frozen=True)
class Predictions:
    path: Path
    keypoint_names: tuple[str, ...]
    frame_indexes: frozenset[int]  # the result's frame_index values (a frame range need not start at 0)
    has_raw: bool  # some person carried "raw": the result was made with motion.include_raw
    frames: dict[str, dict[int, tuple[PredictedPerson, ...]]]  # view -> frame_index -> people

    def people(self, view: str, frame_index: int) -> tuple[PredictedPerson, ...]:
        return self.frames[view].get(frame_index, ())


def read_predictions(path: str | Path) -> Predictions:
    try:
        result = open_result(path)
        names = tuple(result.manifest["backend"]["keypoint_names"])
        views: dict[str, dict[int, tuple[PredictedPerson, ...]]] = {view: {} for view in VIEWS}
        has_raw = False
        for frame in result.frames():
            people = frame["people"]
            has_raw |= any("raw" in person for person in people)
            views["smoothed"][frame["frame_index"]] = tuple(_person(person, person, len(names)) for person in people)
            views["raw"][frame["frame_index"]] = tuple(
                _person(person, person.get("raw") or person, len(names)) for person in people if person["state"] != "interpolated"
            )
    except (OSError, ValueError, KeyError, ResultFileError) as exc:
        raise EvaluationError(f"{path}: not a readable posed result: {exc}") from exc
    return Predictions(Path(path), names, frozenset(views["smoothed"]), has_raw, views)


def _person(person: dict[str, Any], source: dict[str, Any], count: int) -> PredictedPerson:
    keypoints = np.asarray(source["keypoints"], dtype=float)
    if keypoints.shape != (count, 3):
        raise ValueError(f"track {person.get('track_id')}: keypoints of shape {keypoints.shape}, the manifest names {count}")
    return PredictedPerson(
        track_id=person["track_id"],
        state=person["state"],
        confidence=float(person.get("confidence") or 0.0),
        keypoints=keypoints,
    )
