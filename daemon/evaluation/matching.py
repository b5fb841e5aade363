"""Who is who in one frame: OKS between annotated and predicted people, Hungarian matching.

OKS is COCO's object keypoint similarity (pycocotools' ``computeOks``): over the annotated
person's labelled keypoints, the mean of ``exp(-d^2 / (2 * area * (2 * sigma)^2))``, ``d`` the
pixel distance, ``area`` the annotation's area. A pair counts as a match when OKS >= 0.1; per
frame the pairs are chosen by the Hungarian algorithm to maximise the summed OKS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH_OKS = 0.1


@dataclass(frozen=True)
class Match:
    annotated: int  # index into the frame's annotated people
    predicted: int  # index into the frame's predicted people
    oks: float


def oks(annotated: np.ndarray, predicted: np.ndarray, area: float, sigmas: np.ndarray) -> float:
    """``annotated`` (K, 3) x, y, v; ``predicted`` (K, >=2); same keypoint order as ``sigmas``."""
    labelled = annotated[:, 2] > 0
    if not labelled.any():
        return 0.0
    squared = ((predicted[:, :2] - annotated[:, :2]) ** 2).sum(axis=1)
    variances = (2 * sigmas) ** 2
    similarity = np.exp(-squared / variances / (area + np.spacing(1)) / 2)
    return float(similarity[labelled].mean())


def oks_matrix(annotated: list[tuple[np.ndarray, float]], predicted: list[np.ndarray], sigmas: np.ndarray) -> np.ndarray:
    """(A, P) OKS of every annotated (keypoints, area) against every predicted keypoint array."""
    matrix = np.zeros((len(annotated), len(predicted)))
    for a, (keypoints, area) in enumerate(annotated):
        for p, candidate in enumerate(predicted):
            matrix[a, p] = oks(keypoints, candidate, area, sigmas)
    return matrix


def match(matrix: np.ndarray, threshold: float = MATCH_OKS) -> list[Match]:
    if matrix.size == 0:
        return []
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return [Match(int(r), int(c), float(matrix[r, c])) for r, c in zip(rows, cols) if matrix[r, c] >= threshold]


@dataclass(frozen=True)
class EvaluatedFrame:
    """One video frame against its annotated image, keypoints cut down to the shared names."""

    frame_index: int
    image_id: int
    sequence: str
    annotated: tuple  # AnnotatedPerson, scored (not ignored)
    ignored: tuple  # AnnotatedPerson: crowd regions, people without labelled keypoints
    predicted: tuple  # PredictedPerson
    matches: tuple[Match, ...]


def evaluate_frame(frame_index: int, image, predicted: tuple, sigmas: np.ndarray) -> EvaluatedFrame:
    """``image`` and ``predicted`` already hold shared-name keypoints (see runner)."""
    annotated = image.scored_people
    matrix = oks_matrix([(person.keypoints, person.area) for person in annotated], [person.keypoints for person in predicted], sigmas)
    return EvaluatedFrame(
        frame_index=frame_index,
        image_id=image.image_id,
        sequence=image.sequence,
        annotated=annotated,
        ignored=tuple(person for person in image.people if person.ignored),
        predicted=predicted,
        matches=tuple(match(matrix)),
    )
