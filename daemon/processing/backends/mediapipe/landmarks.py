"""BlazePose's landmark network: one person's 33 keypoints, world joints and presence.

Input: the person's region (``roi.Roi``) resampled to 256x256 RGB in [0, 1]. Outputs, in the
network's order: 39 landmarks x (x, y, z, visibility, presence) in input pixels (33 body
points, then alignment points for the next frame's region), the pose presence score, a
segmentation mask (unused), 64x64 heatmaps for sub-pixel refinement, and 39 x 3 world
coordinates in metres. Decoding follows MediaPipe's ``pose_landmark_by_roi_cpu.pbtxt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.processing.backends.mediapipe.models import Network
from daemon.processing.backends.mediapipe.roi import Roi

BODY_POINTS = 33
HEATMAP_KERNEL = 7  # RefineLandmarksFromHeatmapCalculator's window
HEATMAP_MIN_CONFIDENCE = 0.5
CONFIDENT_VISIBILITY = 0.5  # below this a landmark is a guess (occluded or out of frame)


@dataclass(frozen=True)
class Pose:
    """One person's landmarks in frame pixels."""

    keypoints: np.ndarray  # (33, 3): x px, y px, visibility 0..1
    world: np.ndarray  # (33, 3) metres, hip-centred, x right, y down, z away from the camera
    presence: float  # the network's belief that a whole person is in the region
    roi: Roi  # the region it was found in
    next_roi: Roi  # where to look in the next frame (from the alignment landmarks)


class LandmarkNetwork:
    def __init__(self, network: Network) -> None:
        self._network = network
        self._side = network.input_size

    def estimate(self, rgb: np.ndarray, roi: Roi) -> Pose:
        crop = roi.crop(rgb, self._side).astype(np.float32) / 255.0
        landmarks, flag, _mask, heatmap, world = self._network(crop)
        landmarks = landmarks.reshape(-1, 5)
        normalised = _refine(landmarks[:, :2] / self._side, heatmap)
        points = roi.to_frame(normalised)
        visibility = _sigmoid(landmarks[:BODY_POINTS, 3])
        keypoints = np.column_stack([points[:BODY_POINTS], visibility])
        return Pose(
            keypoints=keypoints.astype(np.float64),
            world=_rotate_world(world.reshape(-1, 3)[:BODY_POINTS], roi.rotation),
            presence=float(np.asarray(flag).ravel()[0]),
            roi=roi,
            next_roi=Roi.from_alignment(points[BODY_POINTS], points[BODY_POINTS + 1]),
        )


def _refine(points: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Each landmark moved to the confidence-weighted centre of its heatmap window, when sure."""
    rows, cols, channels = heatmap.shape
    refined = points.copy()
    half = HEATMAP_KERNEL // 2
    for index in range(min(channels, len(points))):
        col, row = int(points[index, 0] * cols), int(points[index, 1] * rows)
        if not (0 <= col < cols and 0 <= row < rows):
            continue
        r0, r1 = max(0, row - half), min(rows, row + half + 1)
        c0, c1 = max(0, col - half), min(cols, col + half + 1)
        confidence = _sigmoid(heatmap[r0:r1, c0:c1, index])
        total = confidence.sum()
        if confidence.max() >= HEATMAP_MIN_CONFIDENCE and total > 0:
            grid_rows, grid_cols = np.mgrid[r0:r1, c0:c1]
            refined[index] = ((grid_cols * confidence).sum() / total / cols, (grid_rows * confidence).sum() / total / rows)
    return refined


def _rotate_world(world: np.ndarray, rotation: float) -> np.ndarray:
    """The network's joints are in the upright crop's frame; turn them back by the region's angle."""
    cos, sin = np.cos(rotation), np.sin(rotation)
    x, y = world[:, 0], world[:, 1]
    return np.column_stack([cos * x - sin * y, sin * x + cos * y, world[:, 2]]).astype(np.float64)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))
