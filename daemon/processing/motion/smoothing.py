"""Causal smoothing of one track: One-Euro on positions, quaternion One-Euro on rotations.

What is filtered, and in which frame:

- 2D keypoints (x, y; confidences pass unchanged) and the box, in pixels;
- 3D joints: relative to the person's own origin when the backend gives a camera translation
  (PHALP), so the depth jitter of the translation, by far the largest, is filtered once as
  the translation and not 45 times; as they come otherwise (MediaPipe: hip-centred);
- the camera translation;
- SMPL rotations (root and 23 joints) as sign-continuous unit quaternions.

SMPL shape (betas) and confidences are left as the model gave them. A smoother lives as long as
its track is seen in consecutive frames; the stage drops it at a gap, so state restarts at the
next detection instead of dragging the old pose into the new one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from daemon.processing.motion.interpolate import STATE_INTERPOLATED, without_derived_extras
from daemon.processing.motion.one_euro import OneEuroFilter, OneEuroParams
from daemon.processing.motion.rotations import QuaternionSmoother, matrix_to_quaternion, quaternion_to_matrix
from daemon.records import Person, SmplParams


@dataclass(frozen=True)
class SmoothingParams:
    keypoints_2d: OneEuroParams  # beta per pixel/s
    joints_3d: OneEuroParams  # beta per metre/s; also used for the camera translation
    rotations: OneEuroParams  # beta per (quaternion unit)/s
    fallback_dt_s: float  # when timestamps do not advance: one nominal frame


class TrackSmoother:
    """The filters of one track; ``position`` is the last frame position it smoothed."""

    def __init__(self, params: SmoothingParams) -> None:
        dt = params.fallback_dt_s
        self._keypoints = OneEuroFilter(params.keypoints_2d, fallback_dt_s=dt)
        self._bbox = OneEuroFilter(params.keypoints_2d, fallback_dt_s=dt)
        self._joints = OneEuroFilter(params.joints_3d, fallback_dt_s=dt)
        self._translation = OneEuroFilter(params.joints_3d, fallback_dt_s=dt)
        self._rotations = QuaternionSmoother(params.rotations, fallback_dt_s=dt)
        self.position = -1

    def smooth(self, person: Person, timestamp_s: float, position: int) -> Person:
        """The smoothed person; its ``raw`` is the backend's person (for an interpolated one,
        whatever the backend reported in that frame, kept by the gap filler)."""
        self.position = position
        keypoints = np.array(person.keypoints, dtype=np.float64)
        keypoints[:, :2] = self._keypoints(keypoints[:, :2], timestamp_s)
        bbox = self._bbox(np.asarray(person.bbox_xywh, dtype=np.float64), timestamp_s)
        translation = None
        if person.camera_translation is not None:
            translation = self._translation(person.camera_translation, timestamp_s)
        return replace(
            person,
            keypoints=keypoints,
            bbox_xywh=tuple(float(v) for v in bbox),
            joints_3d=self._smooth_joints(person, translation, timestamp_s),
            camera_translation=translation,
            smpl=self._smooth_smpl(person.smpl, timestamp_s),
            extra=without_derived_extras(person.extra),
            raw=person.raw if person.state == STATE_INTERPOLATED else person,
        )

    def _smooth_joints(self, person: Person, translation: np.ndarray | None, timestamp_s: float) -> np.ndarray | None:
        if person.joints_3d is None:
            return None
        if person.camera_translation is None or translation is None:
            return self._joints(person.joints_3d, timestamp_s)
        local = np.asarray(person.joints_3d, dtype=np.float64) - person.camera_translation
        return self._joints(local, timestamp_s) + translation

    def _smooth_smpl(self, smpl: SmplParams | None, timestamp_s: float) -> SmplParams | None:
        if smpl is None:
            return None
        matrices = np.concatenate([np.reshape(smpl.global_orient, (-1, 3, 3)), np.reshape(smpl.body_pose, (-1, 3, 3))])
        smoothed = quaternion_to_matrix(self._rotations(matrix_to_quaternion(matrices), timestamp_s))
        roots = len(np.reshape(smpl.global_orient, (-1, 3, 3)))
        return SmplParams(global_orient=smoothed[:roots], body_pose=smoothed[roots:], betas=smpl.betas)


__all__ = ["SmoothingParams", "TrackSmoother"]
