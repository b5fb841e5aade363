"""Reduced precision for HMR 2.0 and the detector, and how far it moves the joints.

``backend.phalp.precision`` (fp32 | fp16 | bf16) selects autocast around the two big networks;
the legacy key ``fp16: true`` means fp16. Reduced precision is only worth turning on by default
once measured: ``joint_differences_mm`` compares two runs over the same frames (fp32 as the
reference) person by person, so the cost in accuracy is a number, not a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from daemon.processing.backends.phalp.skeleton import SMPL_ORIGIN_INDEX
from daemon.config import PhalpConfig
from daemon.records import FrameResult

METRES_TO_MM = 1000.0


def precision_of(cfg: PhalpConfig) -> str:
    return "fp16" if cfg.fp16 else cfg.precision


@dataclass(frozen=True)
class JointDifferences:
    """Per-joint Euclidean distances between two runs, over people present in both."""

    people_compared: int
    people_unmatched: int  # a (frame, track id) in only one run: tracking diverged there
    mean_mm: float
    median_mm: float
    p95_mm: float
    max_mm: float
    root_relative_mean_mm: float  # after moving both skeletons' SMPL origins together: pose only

    def summary(self) -> str:
        return (
            f"{self.people_compared} people compared ({self.people_unmatched} unmatched): joints differ by mean "
            f"{self.mean_mm:.2f} mm, median {self.median_mm:.2f}, p95 {self.p95_mm:.2f}, max {self.max_mm:.2f}; "
            f"root-relative mean {self.root_relative_mean_mm:.2f} mm"
        )


def joint_differences_mm(reference: Iterable[FrameResult], candidate: Iterable[FrameResult], *, root_index: int = SMPL_ORIGIN_INDEX) -> JointDifferences:
    """Compare ``joints_3d`` of the same (frame, track id) in two runs of the same frames."""
    ref = _joints_by_person(reference)
    cand = _joints_by_person(candidate)
    shared = sorted(ref.keys() & cand.keys())
    unmatched = len(ref.keys() ^ cand.keys())
    if not shared:
        return JointDifferences(0, unmatched, *([float("nan")] * 5))
    a = np.stack([ref[key] for key in shared])
    b = np.stack([cand[key] for key in shared])
    distances = np.linalg.norm(a - b, axis=-1).ravel() * METRES_TO_MM
    relative = a - a[:, root_index : root_index + 1] - (b - b[:, root_index : root_index + 1])
    return JointDifferences(
        people_compared=len(shared),
        people_unmatched=unmatched,
        mean_mm=float(distances.mean()),
        median_mm=float(np.median(distances)),
        p95_mm=float(np.percentile(distances, 95)),
        max_mm=float(distances.max()),
        root_relative_mean_mm=float(np.linalg.norm(relative, axis=-1).mean() * METRES_TO_MM),
    )


def _joints_by_person(results: Iterable[FrameResult]) -> dict[tuple[int, int], np.ndarray]:
    return {
        (result.index, person.track_id): np.asarray(person.joints_3d, dtype=np.float64)
        for result in results
        for person in result.people
        if person.joints_3d is not None
    }
