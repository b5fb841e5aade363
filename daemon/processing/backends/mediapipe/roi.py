"""The rotated square a person's landmarks are computed in, as BlazePose defines it.

Both the detector and the landmark network give two alignment points: the hip centre and a
point that, with it, spans the body. The region is centred on the hips, twice their distance
wide, turned so that the body stands upright in it, then enlarged by 1.25 (MediaPipe's
``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator``). Everything here is in
frame pixels, so the crop and the mapping back are exact inverses.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ENLARGE = 1.25
MIN_SIZE_PX = 24.0  # smaller regions hold no usable pose at 256x256


@dataclass(frozen=True)
class Roi:
    centre: np.ndarray  # (2,) pixels
    size: float  # side of the square, pixels
    rotation: float  # radians; 0 = upright

    @classmethod
    def from_alignment(cls, hip_centre: np.ndarray, body_point: np.ndarray) -> Roi:
        delta = body_point - hip_centre
        size = 2.0 * float(np.hypot(delta[0], delta[1])) * ENLARGE
        rotation = _normalise(np.pi / 2 - np.arctan2(-delta[1], delta[0]))
        return cls(centre=np.asarray(hip_centre, np.float64), size=max(size, MIN_SIZE_PX), rotation=rotation)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) points in [0, 1] crop coordinates -> frame pixels."""
        return (points - 0.5) * self.size @ self._rotation_matrix().T + self.centre

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) frame pixels -> [0, 1] crop coordinates (outside the region: beyond [0, 1])."""
        return (np.asarray(points, np.float64) - self.centre) @ self._rotation_matrix() / self.size + 0.5

    def crop(self, image: np.ndarray, side: int) -> np.ndarray:
        """The region resampled to ``side`` x ``side``; outside the frame, edge pixels repeat."""
        linear = self._rotation_matrix() * (self.size / side)
        offset = self.centre - linear @ np.array([side / 2, side / 2])
        to_source = np.hstack([linear, offset[:, None]])
        return cv2.warpAffine(
            image, to_source, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )

    def box(self) -> np.ndarray:
        """The axis-aligned box (x0, y0, x1, y1) around the rotated square."""
        corners = self.to_frame(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64))
        return np.concatenate([corners.min(axis=0), corners.max(axis=0)])

    def _rotation_matrix(self) -> np.ndarray:
        cos, sin = np.cos(self.rotation), np.sin(self.rotation)
        return np.array([[cos, -sin], [sin, cos]])


def _normalise(angle: float) -> float:
    return float(angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi)))
