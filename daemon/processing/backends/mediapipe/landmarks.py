"""BlazePose's landmark network: one person's 33 keypoints, world joints and presence.

Input: the person's region (``roi.Roi``) resampled to 256x256 RGB in [0, 1]. Outputs, in the
network's order: 39 landmarks x (x, y, z, visibility, presence) in input pixels (33 body
points, then alignment points for the next frame's region), the pose presence score, a
256x256 segmentation mask (logits: > 0 is a body's pixel), 64x64 heatmaps for sub-pixel
refinement, and 39 x 3 world coordinates in metres. Decoding follows MediaPipe's
``pose_landmark_by_roi_cpu.pbtxt``.

``mirror_averaged`` reads a person a second time in the mirror image of their region and
averages the two readings, left and right swapped back (test-time flip, as pose estimation
benchmarks are run): each reading's own errors are partly independent, so the average is
closer to the truth and jitters less from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from daemon.processing.backends.mediapipe.blazepose import MIRRORED
from daemon.processing.backends.mediapipe.models import Network
from daemon.processing.backends.mediapipe.roi import Roi

BODY_POINTS = 33
HEATMAP_KERNEL = 7  # RefineLandmarksFromHeatmapCalculator's window
HEATMAP_MIN_CONFIDENCE = 0.5
CONFIDENT_VISIBILITY = 0.5  # below this a landmark is a guess (occluded or out of frame)


def confident_points(points: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The (N, 2) ``points`` whose score reaches ``CONFIDENT_VISIBILITY``; all of them when
    fewer than two do (a box, a size, an extent need two)."""
    confident = scores >= CONFIDENT_VISIBILITY
    return points[confident] if confident.sum() >= 2 else points


@dataclass(frozen=True, eq=False)
class Pose:
    """One person's landmarks in frame pixels."""

    keypoints: np.ndarray  # (33, 3): x px, y px, visibility 0..1
    world: np.ndarray  # (33, 3) metres, hip-centred, x right, y down, z away from the camera
    presence: float  # the network's belief that a whole person is in the region
    roi: Roi  # the region it was found in
    next_roi: Roi  # where to look in the next frame (from the alignment landmarks)
    body_mask: np.ndarray | None = None  # (side, side) bool over ``roi``: the pixels of a body
    heatmap_peaks: np.ndarray | None = None  # (33,) the heatmap's best confidence around each landmark

    def certainty(self) -> float:
        """How sure the network is of where this body's joints are: the mean heatmap peak at the
        keypoints it marks visible. Its heatmaps peak sharply on a body's joints and stay flat
        on an object read as one (1.0 when unknown)."""
        if self.heatmap_peaks is None:
            return 1.0
        visible = self.keypoints[:, 2] >= CONFIDENT_VISIBILITY
        return float(self.heatmap_peaks[visible].mean()) if visible.any() else 0.0

    def confident_points(self) -> np.ndarray:
        return confident_points(self.keypoints[:, :2], self.keypoints[:, 2])

    def on_body(self, points: np.ndarray) -> np.ndarray:
        """Which frame points (N, 2) lie on body pixels of this pose's region (off it: False)."""
        if self.body_mask is None:
            return np.zeros(len(points), bool)
        side = self.body_mask.shape[0]
        cells = np.floor(self.roi.to_crop(points) * side).astype(int)
        inside = ((cells >= 0) & (cells < side)).all(axis=1)
        on = np.zeros(len(points), bool)
        on[inside] = self.body_mask[cells[inside, 1], cells[inside, 0]]
        return on


class LandmarkNetwork:
    def __init__(self, network: Network) -> None:
        self._network = network
        self._side = network.input_size

    def estimate(self, rgb: np.ndarray, roi: Roi) -> Pose:
        normalised, visibility, world, flag, mask, peaks = self._read(self._crop(rgb, roi))
        points = roi.to_frame(normalised)
        keypoints = np.column_stack([points[:BODY_POINTS], visibility])
        return Pose(
            keypoints=keypoints.astype(np.float64),
            world=_rotate_world(world, roi.rotation),
            presence=float(np.asarray(flag).ravel()[0]),
            roi=roi,
            next_roi=Roi.from_alignment(points[BODY_POINTS], points[BODY_POINTS + 1]),
            body_mask=mask[:, :, 0] > 0.0,
            heatmap_peaks=peaks,
        )

    def mirror_averaged(self, rgb: np.ndarray, pose: Pose) -> Pose:
        """``pose`` averaged with the network's reading of its region mirrored left to right
        (keypoints, visibilities, world joints and heatmap peaks; where to look next, presence and
        body pixels stay the first reading's)."""
        normalised, visibility, world, _, _, peaks = self._read(np.ascontiguousarray(self._crop(rgb, pose.roi)[:, ::-1]))
        normalised = normalised[:BODY_POINTS]
        normalised[:, 0] = 1.0 - normalised[:, 0]  # back from the mirror image
        mirrored = list(MIRRORED)  # its left is the person's right
        points = pose.roi.to_frame(normalised[mirrored])
        world = world[mirrored] * np.array([-1.0, 1.0, 1.0])
        keypoints = np.column_stack([points, visibility[mirrored]])
        return replace(pose, keypoints=(pose.keypoints + keypoints) / 2,
                       world=(pose.world + _rotate_world(world, pose.roi.rotation)) / 2,
                       heatmap_peaks=(pose.heatmap_peaks + peaks[mirrored]) / 2)  # fmt: skip

    def _crop(self, rgb: np.ndarray, roi: Roi) -> np.ndarray:
        return roi.crop(rgb, self._side).astype(np.float32) / 255.0

    def _read(self, crop: np.ndarray) -> tuple[np.ndarray, ...]:
        """The network's reading of a crop: all 39 landmarks in [0, 1] crop coordinates (refined
        from the heatmaps), the body points' visibilities and world joints, the presence score,
        the segmentation mask and the body points' heatmap peaks."""
        landmarks, flag, mask, heatmap, world = self._network(crop)
        landmarks = landmarks.reshape(-1, 5)
        normalised, peaks = _refine(landmarks[:, :2] / self._side, heatmap)
        return (normalised, _sigmoid(landmarks[:BODY_POINTS, 3]), world.reshape(-1, 3)[:BODY_POINTS], flag, mask,
                peaks[:BODY_POINTS])  # fmt: skip


def _refine(points: np.ndarray, heatmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each landmark moved to the confidence-weighted centre of its heatmap window, when sure;
    and each landmark's best confidence in its window (0 outside the heatmap, or without one).

    MediaPipe's RefineLandmarksFromHeatmapCalculator, all landmarks at once: a 7x7 window
    around each landmark's heatmap cell (clipped at the borders), sigmoid confidences, and the
    landmark moves only where the window's best confidence reaches 0.5.
    """
    rows, cols, channels = heatmap.shape
    count = min(channels, len(points))
    half = HEATMAP_KERNEL // 2
    centre_cols = (points[:count, 0] * cols).astype(int)
    centre_rows = (points[:count, 1] * rows).astype(int)
    inside = (centre_cols >= 0) & (centre_cols < cols) & (centre_rows >= 0) & (centre_rows < rows)
    offsets = np.arange(-half, half + 1)
    window_rows = centre_rows[:, None] + offsets  # (count, 7)
    window_cols = centre_cols[:, None] + offsets
    valid = ((window_rows >= 0) & (window_rows < rows))[:, :, None] & ((window_cols >= 0) & (window_cols < cols))[:, None, :]
    r = np.clip(window_rows, 0, rows - 1)[:, :, None]
    c = np.clip(window_cols, 0, cols - 1)[:, None, :]
    confidence = _sigmoid(heatmap[r, c, np.arange(count)[:, None, None]]) * valid  # (count, 7, 7)
    total = confidence.sum(axis=(1, 2))
    sure = inside & (confidence.max(axis=(1, 2)) >= HEATMAP_MIN_CONFIDENCE) & (total > 0)
    refined = points.copy()
    safe_total = np.where(total > 0, total, 1.0)
    refined_x = (confidence * window_cols[:, None, :]).sum(axis=(1, 2)) / safe_total / cols
    refined_y = (confidence * window_rows[:, :, None]).sum(axis=(1, 2)) / safe_total / rows
    refined[:count][sure] = np.column_stack([refined_x, refined_y])[sure]
    peaks = np.zeros(len(points))
    peaks[:count] = np.where(inside, confidence.max(axis=(1, 2)), 0.0)
    return refined, peaks


def _rotate_world(world: np.ndarray, rotation: float) -> np.ndarray:
    """The network's joints are in the upright crop's frame; turn them back by the region's angle."""
    cos, sin = np.cos(rotation), np.sin(rotation)
    x, y = world[:, 0], world[:, 1]
    return np.column_stack([cos * x - sin * y, sin * x + cos * y, world[:, 2]]).astype(np.float64)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    """The logistic function without exp's overflow (and its log warning) on large logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(values, dtype=np.float64)))
