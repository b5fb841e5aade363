"""Streaming quality figures of the motion stage, for the result summary and ``posed bench``.

- Mean acceleration, the standard jitter measure for pose sequences: the norm of the second
  difference x[t+1] - 2 x[t] + x[t-1] per keypoint, averaged over keypoints and over every
  three consecutive frames in which the backend detected the track. Raw and smoothed are
  measured on exactly the same triples. 2D in px/frame^2, 3D in mm/frame^2.
- Mean displacement between smoothed and raw positions over detected frames (px, mm): what
  smoothing costs in faithfulness, so over-smoothing shows.
- Frames per output state per track.

Memory is constant in video length: per live track the last two samples; per track ever seen
three counters.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daemon.records import Person

MM_PER_METRE = 1000.0
FIGURE_DECIMALS = 4
STATES = ("detected", "predicted", "interpolated")


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        if not math.isfinite(value):  # a figure must never turn the summary into invalid JSON
            return
        self.total += value
        self.count += 1

    def value(self) -> float | None:
        return round(self.total / self.count, FIGURE_DECIMALS) if self.count else None


@dataclass
class _Figures:
    """Accumulated figures of one kind of point (2D keypoints or 3D joints)."""

    scale: float  # to the reported unit: px -> px, m -> mm
    raw_acceleration: _Mean = field(default_factory=_Mean)
    smoothed_acceleration: _Mean = field(default_factory=_Mean)
    displacement: _Mean = field(default_factory=_Mean)

    def to_json(self, unit: str) -> dict[str, Any]:
        return {
            f"raw_mean_acceleration_{unit}": self.raw_acceleration.value(),
            f"smoothed_mean_acceleration_{unit}": self.smoothed_acceleration.value(),
            f"mean_displacement_{unit}": self.displacement.value(),
            "acceleration_samples": self.raw_acceleration.count,
            "displacement_samples": self.displacement.count,
        }


@dataclass
class _Sample:
    position: int
    raw_2d: np.ndarray
    out_2d: np.ndarray
    raw_3d: np.ndarray | None
    out_3d: np.ndarray | None


class MotionQuality:
    """Feed it every output person with the backend's person for the same frame."""

    def __init__(self) -> None:
        self._points_2d = _Figures(scale=1.0)
        self._points_3d = _Figures(scale=MM_PER_METRE)
        self._history: dict[int, list[_Sample]] = {}
        self._states: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATES, 0))

    def observe(self, position: int, output: Person, raw: Person | None) -> None:
        """``raw`` is the backend's person in this frame (None where it reported nobody)."""
        counts = self._states[output.track_id]
        counts[output.state] = counts.get(output.state, 0) + 1
        if output.state != "detected" or raw is None:
            self._history.pop(output.track_id, None)  # a triple must be three real detections
            return
        sample = _Sample(position, raw.keypoints[:, :2], output.keypoints[:, :2], raw.joints_3d, output.joints_3d)
        self._points_2d.displacement.add(_mean_distance(sample.out_2d, sample.raw_2d) * self._points_2d.scale)
        if sample.raw_3d is not None and sample.out_3d is not None:
            self._points_3d.displacement.add(_mean_distance(sample.out_3d, sample.raw_3d) * self._points_3d.scale)
        history = [s for s in self._history.get(output.track_id, []) if s.position >= position - 2]
        history.append(sample)
        if len(history) == 3 and history[0].position == position - 2 and history[1].position == position - 1:
            self._add_acceleration(*history)
        self._history[output.track_id] = history[-2:]

    def end_frame(self, position: int) -> None:
        """Forget the samples of tracks not seen in this frame (dead tracks must not pile up)."""
        for track_id in [t for t, h in self._history.items() if h[-1].position < position]:
            del self._history[track_id]

    @property
    def tracks_held(self) -> int:
        return len(self._history)

    def _add_acceleration(self, first: _Sample, middle: _Sample, last: _Sample) -> None:
        figures = self._points_2d
        figures.raw_acceleration.add(_mean_norm(last.raw_2d - 2 * middle.raw_2d + first.raw_2d) * figures.scale)
        figures.smoothed_acceleration.add(_mean_norm(last.out_2d - 2 * middle.out_2d + first.out_2d) * figures.scale)
        if all(s.raw_3d is not None and s.out_3d is not None for s in (first, middle, last)):
            figures = self._points_3d
            figures.raw_acceleration.add(_mean_norm(last.raw_3d - 2 * middle.raw_3d + first.raw_3d) * figures.scale)
            figures.smoothed_acceleration.add(_mean_norm(last.out_3d - 2 * middle.out_3d + first.out_3d) * figures.scale)

    def to_json(self, split_from: dict[int, int] | None = None) -> dict[str, Any]:
        """``split_from``: track id -> the id it broke away from (identity guard), shown per track."""
        split_from = split_from or {}
        tracks = []
        for track_id, counts in sorted(self._states.items()):
            entry = {"track_id": track_id, **counts}
            if track_id in split_from:
                entry["split_from"] = split_from[track_id]
            tracks.append(entry)
        return {"keypoints_2d": self._points_2d.to_json("px"), "joints_3d": self._points_3d.to_json("mm"), "tracks": tracks}


def _mean_norm(vectors: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(vectors, axis=-1)))


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return _mean_norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


__all__ = ["MotionQuality"]
