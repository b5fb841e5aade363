"""A person between two detections of the same track: linear for positions, slerp for rotations.

Used by gap filling: when a track is missed for a few frames and then detected again, each
frame in between gets the pose at its place in time between the two detections. Positions
(keypoints, box, 3D joints, camera translation, SMPL shape) are interpolated linearly; SMPL
rotations along the shorter great-circle arc between the two quaternions (slerp), so a joint
turns at constant speed and never takes the long way round.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from daemon.processing.motion.rotations import slerp_matrices
from daemon.records import Person, SmplParams

STATE_INTERPOLATED = "interpolated"

# Person.extra entries computed from the geometry the motion stage rewrites (PHALP: angles from
# the joints). Left on a rewritten person they would contradict its main fields, so they stay
# only in ``raw``; the legacy fields recompute joint angles from the joints. The mesh is kept on
# a smoothed person (the model's mesh of that very frame; re-posing it would need the SMPL model
# here). SMPL and the camera translation are Person fields, rewritten by the stage itself.
DERIVED_EXTRA_KEYS = frozenset({"joint_angles_3d"})
# An interpolated person is built from the detection before the gap: what described only that
# frame (its mesh, its detector score) does not describe the interpolated one.
FRAME_ONLY_EXTRA_KEYS = frozenset({"mesh_vertices", "detector_score"})


def can_interpolate(before: Person, after: Person) -> bool:
    """Both detections carry the same fields in the same shapes (a backend never changes them
    within a track, but a mismatch must leave the gap alone, not crash the job)."""
    if before.keypoints.shape != after.keypoints.shape:
        return False
    if (before.joints_3d is None) != (after.joints_3d is None):
        return False
    if before.joints_3d is not None and before.joints_3d.shape != after.joints_3d.shape:
        return False
    return (before.smpl is None) == (after.smpl is None) and (before.camera_translation is None) == (
        after.camera_translation is None
    )


def interpolate_person(
    before: Person, after: Person, fraction: float, *, frames_since_detection: int, raw: Person | None
) -> Person:
    """The person ``fraction`` (0..1) of the way from ``before`` to ``after``; ``raw`` is the
    backend's own output for that frame (a prediction) or None when it reported nobody."""

    def lerp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (1.0 - fraction) * np.asarray(a, dtype=np.float64) + fraction * np.asarray(b, dtype=np.float64)

    smpl = None
    if before.smpl is not None and after.smpl is not None:
        smpl = SmplParams(
            global_orient=slerp_matrices(before.smpl.global_orient, after.smpl.global_orient, fraction),
            body_pose=slerp_matrices(before.smpl.body_pose, after.smpl.body_pose, fraction),
            betas=lerp(before.smpl.betas, after.smpl.betas),
        )
    translation = None
    if before.camera_translation is not None and after.camera_translation is not None:
        translation = lerp(before.camera_translation, after.camera_translation)
    joints = None
    if before.joints_3d is not None and after.joints_3d is not None:
        joints = lerp(before.joints_3d, after.joints_3d)
    return replace(
        before,
        state=STATE_INTERPOLATED,
        confidence=float(lerp(before.confidence, after.confidence)),
        bbox_xywh=tuple(float(v) for v in lerp(before.bbox_xywh, after.bbox_xywh)),
        keypoints=lerp(before.keypoints, after.keypoints),
        joints_3d=joints,
        frames_since_detection=frames_since_detection,
        extra={k: v for k, v in before.extra.items() if k not in DERIVED_EXTRA_KEYS | FRAME_ONLY_EXTRA_KEYS},
        smpl=smpl,
        camera_translation=translation,
        raw=raw,
    )


def without_derived_extras(extra: dict) -> dict:
    return {key: value for key, value in extra.items() if key not in DERIVED_EXTRA_KEYS}


__all__ = ["DERIVED_EXTRA_KEYS", "STATE_INTERPOLATED", "can_interpolate", "interpolate_person", "without_derived_extras"]
