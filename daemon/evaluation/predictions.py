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
    frame_count: int
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
        count = 0
        for frame in result.frames():
            count += 1
            people = frame["people"]
            has_raw |= any("raw" in person for person in people)
            views["smoothed"][frame["frame_index"]] = tuple(_person(person, person) for person in people)
            views["raw"][frame["frame_index"]] = tuple(
                _person(person, person.get("raw") or person) for person in people if person["state"] != "interpolated"
            )
    except (OSError, ValueError, KeyError, ResultFileError) as exc:
        raise EvaluationError(f"{path}: not a readable posed result: {exc}") from exc
    return Predictions(Path(path), names, count, has_raw, views)


def _person(person: dict[str, Any], source: dict[str, Any]) -> PredictedPerson:
    return PredictedPerson(
        track_id=person["track_id"],
        state=person["state"],
        confidence=float(person.get("confidence") or 0.0),
        keypoints=np.asarray(source["keypoints"], dtype=float).reshape(-1, 3),
    )
